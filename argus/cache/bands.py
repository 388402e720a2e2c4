"""Similarity bands: how many steps a cached latent lets a new prompt skip.

NIRVANA's published bands are stated for 50 steps (similarity > 0.95 -> K=25, ..., > 0.65 -> K=5).
A variant with N steps scales K to round(K * N / band_steps), so a 20-step variant skips the same
share of its trajectory. The scaled Ks are also the steps whose latents a generation captures.
"""

from __future__ import annotations

from argus.config import CacheConfig


def scaled_k(k: int, steps: int, band_steps: int) -> int:
    """K of `band_steps` scaled to `steps`, kept inside [0, steps - 1]."""
    return max(0, min(steps - 1, round(k * steps / band_steps)))


def band_k(similarity: float, steps: int, config: CacheConfig) -> int:
    """Steps to skip for a cached neighbour at this cosine similarity (0 = miss)."""
    for threshold, k in sorted(config.similarity_bands, reverse=True):
        if similarity > threshold:
            return scaled_k(k, steps, config.band_steps)
    return 0


def capture_steps(steps: int, config: CacheConfig) -> list[int]:
    """Step indices whose pre-step latents a full generation of `steps` steps should keep."""
    ks = {scaled_k(k, steps, config.band_steps) for _, k in config.similarity_bands}
    return sorted(k for k in ks if k > 0)


def deepest_at_most(stored: tuple[int, ...] | list[int], limit: int) -> int:
    """Largest stored step <= limit (0 if none): the cap never rounds a K up."""
    return max((k for k in stored if 0 < k <= limit), default=0)
