"""Approximate cache (contract D): reuse intermediate latents of similar earlier prompts.

`ApproximateCache(config, embed_fn)` lives in the API process; workers never touch it. See
`argus.cache.cache` for the lookup rules and `argus.cache.store` for the on-disk format.
"""

from argus.cache.bands import band_k, capture_steps
from argus.cache.cache import (
    MISS_INFO,
    ApproximateCache,
    CacheHit,
    EmbedderNotReady,
    EmbedFn,
    Generation,
)
from argus.cache.store import CorruptEntry, EntryMeta

__all__ = [
    "MISS_INFO",
    "ApproximateCache",
    "CacheHit",
    "CorruptEntry",
    "EmbedFn",
    "EmbedderNotReady",
    "EntryMeta",
    "Generation",
    "band_k",
    "capture_steps",
]
