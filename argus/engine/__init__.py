"""The engine: Argus' denoising loop over diffusers components (contract B).

    from argus.engine.generate import GenerationSpec, generate, embed_prompts
    from argus.engine.pipeline import load_pipeline

    pipe = load_pipeline(variant)                      # once per worker and variant
    results = generate(pipe, [GenerationSpec(...)], callback)
    keys = embed_prompts(pipe, prompts)                # approximate-cache embeddings

Modules: `generate` (the loop; imports torch), `pipeline` (loading; imports torch and
diffusers), `variants` (what the front end needs, no torch), `random_models` (seeded
random-weight components). This package imports nothing heavy by itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# NOTE: the loop function itself is `argus.engine.generate.generate`; the package attribute
# `generate` is that module, so import the function from the module.
_EXPORTS = {
    "GenerationCancelled": "generate",
    "GenerationResult": "generate",
    "GenerationSpec": "generate",
    "StepCallback": "generate",
    "decode_latents": "generate",
    "embed_prompts": "generate",
    "encode_prompts": "generate",
    "Pipeline": "pipeline",
    "load_pipeline": "pipeline",
    "is_random": "variants",
    "size_multiple": "variants",
}

__all__ = [
    "GenerationCancelled",
    "GenerationResult",
    "GenerationSpec",
    "Pipeline",
    "StepCallback",
    "decode_latents",
    "embed_prompts",
    "encode_prompts",
    "is_random",
    "load_pipeline",
    "size_multiple",
]

if TYPE_CHECKING:
    from argus.engine.generate import (
        GenerationCancelled,
        GenerationResult,
        GenerationSpec,
        StepCallback,
        decode_latents,
        embed_prompts,
        encode_prompts,
    )
    from argus.engine.pipeline import Pipeline, load_pipeline
    from argus.engine.variants import is_random, size_multiple


def __getattr__(name: str) -> Any:
    """Lazy exports: importing the package must not import torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'argus.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"argus.engine.{_EXPORTS[name]}"), name)
