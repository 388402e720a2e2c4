"""The engine: Argus' denoising loop over diffusers components (contract B).

    pipe = load_pipeline(variant)                      # once per worker and variant
    results = generate(pipe, [GenerationSpec(...)], callback)
    keys = embed_prompts(pipe, prompts)                # approximate-cache embeddings
"""

from argus.engine.generate import (
    GenerationCancelled,
    GenerationResult,
    GenerationSpec,
    StepCallback,
    decode_latents,
    embed_prompts,
    encode_prompts,
    generate,
)
from argus.engine.pipeline import Pipeline, is_random, load_pipeline, size_multiple

__all__ = [
    "GenerationCancelled",
    "GenerationResult",
    "GenerationSpec",
    "Pipeline",
    "StepCallback",
    "decode_latents",
    "embed_prompts",
    "encode_prompts",
    "generate",
    "is_random",
    "load_pipeline",
    "size_multiple",
]
