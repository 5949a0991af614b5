"""``textual_inversion``: one new token whose embedding row is the only thing that trains.

The token is added to the tokenizer, the text encoder's embedding matrix grows by one row,
initialised from the mean embedding of the init word's tokens (the class noun unless
``params.init_word`` says otherwise). The whole matrix is handed to the optimizer (that is how the
row gets gradients), and after every step every other row is copied back from a snapshot, so
AdamW's weight decay cannot move them either. The result is saved as ``learned_embeds.safetensors``
``{token: [1, dim]}``, the format diffusers' ``load_textual_inversion`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from harness.methods.base import FitContext, Method, Modules, Params
from harness.models.common import DiffusionBundle
from harness.specs import TaskSpec

EMBEDS_FILE = "learned_embeds.safetensors"


def add_token(bundle: DiffusionBundle, token: str, init_word: str) -> int:
    """Add ``token`` to the tokenizer and a row to the text encoder, initialised from ``init_word``; its id."""
    import torch

    if bundle.tokenizer.add_tokens(token) != 1:
        raise ValueError(f"textual inversion: token '{token}' is already in the tokenizer; choose a new one")
    token_id = bundle.tokenizer.convert_tokens_to_ids(token)
    init_ids = bundle.tokenizer.encode(init_word, add_special_tokens=False)
    if not init_ids:
        raise ValueError(f"textual inversion: init word '{init_word}' gives no tokens")
    bundle.text_encoder.resize_token_embeddings(len(bundle.tokenizer), mean_resizing=False)
    weight = bundle.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_ids].mean(dim=0)
    return token_id


class TextualInversionParams(Params):
    token: str = Field(default="<sks>", pattern=r"^\S+$", max_length=100)
    init_word: str | None = Field(default=None, min_length=1, max_length=100)


class TextualInversionMethod(Method):
    """Trains the embedding row of ``params.token`` only, one subject at a time."""

    params_schema = TextualInversionParams

    per_subject = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.token_ids: list[int] = []
        self._snapshot: Any = None

    @property
    def component(self) -> str:
        return "text_encoder"

    @property
    def token(self) -> str:
        return str(self.spec.params.get("token", "<sks>"))

    def targets(self) -> str:
        return f"the input-embedding row of the new token '{self.token}' in the text encoder"

    def identifier(self, task: TaskSpec) -> str:
        return self.token

    def bind(self, ctx: FitContext) -> None:
        """Add the token to the unit's tokenizer and text encoder (a fresh base per subject)."""
        init_word = str(self.spec.params.get("init_word") or ctx.unit.subject.class_noun)
        self.token_ids = [add_token(ctx.bundle, self.token, init_word)]

    def attach(self, modules: Modules) -> None:
        weight = modules["text_encoder"].get_input_embeddings().weight
        weight.requires_grad_(True)
        if self.token_ids:
            self._snapshot = weight.detach().clone()

    def trainable_count(self, params: list[Any]) -> int:
        """One row per new token (the optimizer holds the matrix, but every other row is restored)."""
        embedding_dim = params[0].shape[1] if params else 0
        return max(len(self.token_ids), 1) * embedding_dim

    def after_step(self, modules: Modules) -> None:
        import torch

        weight = modules["text_encoder"].get_input_embeddings().weight
        keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
        keep[self.token_ids] = False
        if self._snapshot.device != weight.device:  # the loop moved the text encoder after attach
            self._snapshot = self._snapshot.to(weight.device)
        with torch.no_grad():
            weight[keep] = self._snapshot[keep]

    def save(self, modules: Modules, folder: Path) -> Path | None:
        from safetensors.torch import save_file

        weight = modules["text_encoder"].get_input_embeddings().weight
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / EMBEDS_FILE
        rows = weight.detach()[self.token_ids].to("cpu").contiguous()
        save_file({self.token: rows}, str(path), metadata={"method": self.spec.name, "token": self.token})
        return path

