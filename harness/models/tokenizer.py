"""A real CLIP BPE tokenizer (transformers ``CLIPTokenizer``) built offline from open_clip's vocabulary.

open_clip ships OpenAI's ``bpe_simple_vocab_16e6.txt.gz``; we turn it into the ``vocab.json`` +
``merges.txt`` pair that ``CLIPTokenizer`` reads, so ids match OpenAI CLIP exactly.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from harness.paths import cache_dir

# OpenAI CLIP uses the first 49152 - 256 - 2 merges of the BPE file (after its header line).
_N_MERGES = 49152 - 256 - 2


def _write_vocab_files(folder: Path) -> None:
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_json = json.dumps({token: i for i, token in enumerate(vocab)})
    merges_txt = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (folder / "vocab.json").write_text(vocab_json, encoding="utf-8")
    (folder / "merges.txt").write_text(merges_txt, encoding="utf-8")


def build_clip_tokenizer(max_length: int = 77):
    """``CLIPTokenizer`` with OpenAI's vocabulary, padding to ``max_length`` with ``<|endoftext|>``."""
    from transformers import CLIPTokenizer

    folder = cache_dir() / "clip_bpe_tokenizer"
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        _write_vocab_files(folder)
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length, pad_token="<|endoftext|>")
