"""Model family SD 1.5: real tokenizer, tiny sibling classes, real-architecture accounting, missing weights."""

from __future__ import annotations

import open_clip
import pytest

from harness.accounting import count_params
from harness.errors import WeightsMissingError
from harness.models import sd15
from harness.models.tokenizer import build_clip_tokenizer
from harness.plan import build_plan

SENTENCES = [
    "a photo of a cat",
    "A close-up photo of an Automobile, on a plain background!!",
    "café 123, don't stop: a blue-orange bar chart graphic",
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_tokenizer_ids_match_openai_clip(sentence: str) -> None:
    reference = open_clip.get_tokenizer("ViT-B-32")([sentence])[0].tolist()  # OpenAI's BPE, padded with 0
    ids = build_clip_tokenizer()(sentence).input_ids
    assert ids == reference[: len(ids)]
    assert all(x == 0 for x in reference[len(ids):])
    assert ids[0] == 49406 and ids[-1] == 49407


def test_tokenizer_pads_to_77_with_end_token() -> None:
    ids = build_clip_tokenizer()("a dog", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[:4] == [49406, 320, 1929, 49407] and set(ids[4:]) == {49407}


def test_tiny_sibling_uses_the_real_classes() -> None:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    bundle = sd15.build_tiny()
    assert isinstance(bundle.unet, UNet2DConditionModel) and isinstance(bundle.vae, AutoencoderKL)
    assert isinstance(bundle.text_encoder, CLIPTextModel) and isinstance(bundle.tokenizer, CLIPTokenizer)
    assert isinstance(bundle.noise_scheduler, DDPMScheduler)
    assert bundle.latent_scale == 0.18215
    assert bundle.noise_scheduler.config.beta_schedule == "scaled_linear"
    assert "random-init" in bundle.weights_identity


def test_tiny_sibling_is_deterministic() -> None:
    first, second = sd15.build_tiny(), sd15.build_tiny()
    for (name, a), (_, b) in zip(first.unet.state_dict().items(), second.unet.state_dict().items(), strict=True):
        assert a.equal(b), name


def test_real_sd15_architecture_on_meta_device() -> None:
    modules = sd15.build_meta()
    counts = {role: sum(p.numel() for p in m.parameters()) for role, m in modules.items()}
    # Published sizes of SD 1.5's components.
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    assert all(p.device.type == "meta" for p in modules["unet"].parameters())


def test_xattn_ft_count_on_real_architecture() -> None:
    count = count_params(build_plan("cifar_alignment", "xattn_ft", "full"))
    assert count.trainable == 43_962_560  # 16 attn2 blocks of the real UNet
    assert count.component_total == 859_520_964
    assert round(100 * count.share_of_component, 3) == 5.115


def test_lora_r1_count_on_real_architecture() -> None:
    import torch

    count = count_params(build_plan("cifar_alignment", "lora_unet_r1", "full"))
    frozen = count_params(build_plan("cifar_alignment", "frozen", "full"))
    assert frozen.trainable == 0
    # Independent count: rank 1 adds (in + out) parameters to every targeted Linear of the real UNet.
    targets = ("to_q", "to_k", "to_v", "to_out.0")
    expected = sum(m.in_features + m.out_features for name, m in sd15.build_meta()["unet"].named_modules()
                   if isinstance(m, torch.nn.Linear) and name.endswith(targets))
    assert count.trainable == expected == 199_296


def test_missing_weights_raise_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsMissingError) as info:
        sd15.load_real("runwayml/stable-diffusion-v1-5", None)
    message = str(info.value)
    assert "runwayml/stable-diffusion-v1-5" in message and "--model-path" in message
    assert "--profile tiny" in message and "HF_HOME" in message


def test_incomplete_local_folder(tmp_path) -> None:
    with pytest.raises(WeightsMissingError, match="not a complete diffusers folder"):
        sd15.load_real(str(tmp_path), None)
