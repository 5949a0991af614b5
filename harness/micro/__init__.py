"""The microworld: a procedural 32x32 world, a tiny SD-shaped base model and judge models, all trained on CPU
by ``python -m harness.micro.build`` and shipped in ``harness/micro/weights``.

Importing this package never imports torch; the names below load their module on first use.

* ``world``: attributes, ``HELD_OUT``, ``sample_attributes``, ``render``, ``caption``, ``make_dataset``.
* ``base``: ``load_base() -> DiffusionBundle(family="micro")``, ``sample(bundle, prompts, seeds)``.
* ``judges``: ``load_clip_model()``, ``load_dino()``, ``load_face()``, ``register_feature_extractor()``.
* ``quality``: the measurements behind the manifest; ``build``: training and ``manifest.json``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "load_base": "base", "sample": "base",
    "load_clip_model": "judges", "load_dino": "judges", "load_face": "judges", "load_clip_image_encoder": "judges",
    "register_feature_extractor": "judges", "create_feature_extractor": "judges",
    "HELD_OUT": "world", "make_dataset": "world", "make_arrays": "world", "sample_attributes": "world",
    "render": "world", "caption": "world", "all_captions": "world",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"harness.micro.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'harness.micro' has no attribute {name!r}")
