"""A T5 tokenizer for the tiny FLUX sibling, built offline.

The real FLUX tokenizer (``tokenizer_2``: T5's 32k SentencePiece ``spiece.model``) ships with the
FLUX weights only, and no installed package carries a T5 vocabulary. transformers 5 builds its
``T5Tokenizer`` (a ``tokenizers`` Unigram model) straight from a list of (piece, log-probability)
pairs without sentencepiece, so the tiny sibling uses that same class with a vocabulary derived
here from OpenAI CLIP's BPE word list (shipped by open_clip): whole words as ``▁word`` pieces,
plus single characters so that every string (e.g. a trigger word like ``cr7man``) is covered.
Ids differ from real T5's, which is fine for random-init tiny weights; the real path loads
``tokenizer_2`` from the FLUX repository.
"""

from __future__ import annotations

import gzip
import string

N_WORDS = 6000  # most frequent CLIP whole words kept as pieces
SPECIALS = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]  # T5's ids 0, 1, 2


def _clip_words(limit: int) -> list[str]:
    from open_clip.tokenizer import default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:]
    words: list[str] = []
    seen: set[str] = set()
    for line in lines:
        merged = "".join(line.split())
        if merged.endswith("</w>"):
            word = merged[: -len("</w>")]
            if word.isalpha() and word.isascii() and word not in seen:
                seen.add(word)
                words.append(word)
                if len(words) == limit:
                    break
    return words


def build_t5_tokenizer(max_length: int = 512):
    """``transformers.T5Tokenizer`` over a CLIP-derived word vocabulary (offline, no sentencepiece)."""
    from transformers import T5Tokenizer

    words = _clip_words(N_WORDS)
    # Unigram log-probabilities: earlier (more frequent) merges score higher; characters are a fallback.
    vocab = list(SPECIALS) + [("\u2581" + w, -2.0 - i / len(words)) for i, w in enumerate(words)]
    chars = string.ascii_letters + string.digits + string.punctuation
    vocab += [("\u2581" + c, -3.0) for c in string.ascii_lowercase]  # one-letter words ("a")
    vocab += [("\u2581", -8.0)] + [(c, -10.0) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)
