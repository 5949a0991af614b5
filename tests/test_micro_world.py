"""The microworld generator: determinism, captions, held-out values (numpy only, fast)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.micro import world


def test_dataset_is_deterministic_in_its_seed():
    a = world.make_dataset(12, seed=3)
    b = world.make_dataset(12, seed=3)
    c = world.make_dataset(12, seed=4)
    assert all(np.array_equal(x.image, y.image) and x.caption == y.caption for x, y in zip(a, b, strict=True))
    assert [x.caption for x in a] != [x.caption for x in c]
    assert a[0].image.shape == (32, 32, 3) and a[0].image.dtype == np.uint8


def test_render_depends_only_on_attributes():
    sample = world.make_dataset(1, seed=11)[0]
    assert np.array_equal(world.render(dict(sample.attrs)), sample.image)


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"shape": "circle", "colour": "red", "texture": "plain", "background": "gray", "person": None},
     "a red circle on a gray background"),
    ({"shape": "star", "colour": "purple", "texture": "striped", "background": "navy", "person": None},
     "a striped purple star on a navy background"),
    ({"shape": "face", "colour": None, "texture": "plain", "background": "black", "person": 3},
     "a face of person 3 on a black background"),
])
def test_caption_format_and_parse_round_trip(attrs, expected):
    assert world.caption(attrs) == expected
    assert world.parse_caption(expected) == attrs


def test_every_caption_parses_back_and_fits_16_tokens():
    from harness.models.tokenizer import build_clip_tokenizer

    captions = world.all_captions()
    assert len(captions) == len(set(captions)) == 4 * (10 * 9 * 4 + 8)
    assert all(world.caption(world.parse_caption(c)) == c for c in captions)
    tokenizer = build_clip_tokenizer(max_length=16)
    lengths = [len(ids) for ids in tokenizer(captions).input_ids]  # BOS + words + EOS, unpadded
    assert max(lengths) <= 16


def test_jitter_is_not_captioned_but_varies():
    samples = world.make_dataset(6, seed=5, shape="circle", colour="red", background="gray", texture="plain")
    assert {s.caption for s in samples} == {"a red circle on a gray background"}
    assert len({s.image.tobytes() for s in samples}) == 6
    assert len({round(s.attrs["radius"], 3) for s in samples}) == 6


def test_background_words_never_name_an_object_colour():
    assert not set(world.BACKGROUNDS) & set(world.COLOURS)


def test_held_in_only_never_produces_held_out_values():
    rng = np.random.default_rng(0)
    seen = {name: set() for name in world.CAPTIONED}
    for _ in range(3000):
        attrs = world.sample_attributes(rng, held_in_only=True)
        assert not world.is_held_out(attrs), attrs
        for name in world.CAPTIONED:
            seen[name].add(attrs[name])
    for name in world.CAPTIONED:  # ... while every held-in value does occur
        assert set(world.held_in(name)) <= seen[name]
    full = [world.sample_attributes(rng) for _ in range(3000)]
    assert sum(world.is_held_out(a) for a in full) > 1000  # held-out values do occur without the flag


def test_held_out_values_cover_new_concept_tasks():
    assert world.HELD_OUT["colour"] and world.HELD_OUT["shape"] and world.HELD_OUT["texture"]
    for name, values in world.HELD_OUT.items():
        assert set(values) <= set(world.ATTRIBUTE_VALUES[name])
    with pytest.raises(ValueError, match="held out"):
        world.sample_attributes(np.random.default_rng(0), held_in_only=True, colour="purple")
    a = world.sample_attributes(np.random.default_rng(0), colour="purple")
    assert a["colour"] == "purple" and a["shape"] != world.FACE


def test_fixed_values_and_faces():
    faces = world.make_dataset(16, seed=2, person=3)
    assert all(s.attrs["shape"] == world.FACE and s.caption.startswith("a face of person 3 on a ") for s in faces)
    stars = world.make_dataset(8, seed=2, shape="star", colour="orange")
    assert all("orange star" in s.caption for s in stars)


def test_identities_render_differently():
    rng = np.random.default_rng(0)
    means = []
    for person in world.PERSONS:
        attrs = world.sample_attributes(rng, person=person, background="gray")
        attrs.update(rotation=0.0, cx=16.0, cy=16.0, radius=13.0, jitter_object=[0, 0, 0], jitter_background=[0, 0, 0])
        means.append(world.render(attrs).astype(float))
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            assert np.abs(means[i] - means[j]).mean() > 3.0, (i, j)


def test_package_import_does_not_import_torch():
    code = "import sys, harness.micro, harness.micro.world; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
