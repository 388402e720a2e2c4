"""Built-in profile `a800-flux`: a FLUX.1-dev-class cluster (28 steps, 1024x1024) with steps
levels, feature-cache levels and approximate-cache (latent reuse) levels, from published numbers
where there are some. Sources: ../shared/reference/serving-landscape-2026.md §3.

PUBLISHED (quality = ImageReward on DrawBench relative to the uncached 1.041; speed = the paper's
speedup over the full run; figures collected by cache-dit, step reduction from FoCa):
- Fewer steps: 60% / 34% / 22% of the steps -> 1.67x / 3.13x / 4.55x, ImageReward 0.966 /
  0.945 / 0.818 (levels flux-17, flux-10, flux-6).
- Feature caching, dynamic (cache-dit DBCache): F8B0 1.80x, ImageReward 1.037; F4B0 2.66x,
  1.007 (flux-fbc-1.8x, flux-fbc-2.7x). Static TaylorSeer N=7: 5.54x, 0.913 (flux-ts7).
- Full run: about 18 s per image at batch 1 (TeaCache's FLUX.1-dev figure on an A800).
MODELLED (no published number):
- Which Argus setting stands for each cache-dit configuration: DBCache's F8B0/F4B0 keep 8/4
  front blocks, diffusers' First-Block-Cache keeps one; the `fbc` thresholds named here are the
  nearest diffusers hooks, not the measured configuration. Measure them with `argus profile`.
- Latent reuse on FLUX (levels flux-k*): NIRVANA's SDXL quality per skipped share of the steps
  (`SDXL_K_QUALITY`, K of 50 -> K of 28 in the same similarity band). Evidence that trajectory
  reuse carries over to flow-matching DiTs: on SD3, 2.31x at >95% prompt similarity, 1.10x at 85%.
- Batches: a 12B DiT at 4096 tokens is compute-bound, so batching buys little (`BATCH_RATIO`);
  throughput on big DiTs comes from approximation, not batching (§5 of the same notes).
- Load time and memory of the variant (bf16 transformer + T5-XXL + CLIP + VAE).
- Dynamic caches skip a prompt-dependent number of steps: each feature-cache level's computed
  steps are drawn around the published mean (N / speedup, spread `COMPUTED_SPREAD`) and its
  service time is costed at their `COST_QUANTILE`, as `argus profile` does for measured ones.
- Per-prompt spread (`quality_std`): a dynamic cache with one fixed threshold degrades complex
  scenes most (PromptTea, 2507.06739; a fitted TeaCache predictor reaches R^2 ~ 0.20 across
  prompts, vLLM-Omni #6517), so its spread is about twice a steps level's of the same loss: the
  right level depends on the prompt. The per-prompt table is `argus.control.quality_model`'s
  (mean - std x difficulty) over the shipped PartiPrompts.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from argus.control.profile import LevelProfile, Profile, VariantProfile
from argus.control.quality_model import modelled_prompt_table

STEPS = 28
FULL_B1_S = 18.0
"""Published: FLUX.1-dev, batch 1, uncached (TeaCache's A800 figure)."""
FULL_IMAGE_REWARD = 1.041
BATCH_RATIO = {1: 1.0, 2: 1.92, 4: 3.8}
"""Modelled: batch time over batch-1 time (compute-bound DiT)."""
COST_QUANTILE = 0.9
"""Feature-cache levels are costed at this quantile of their computed steps: the value of
`argus.profiling.COST_QUANTILE` (the control plane may not import the profiler)."""
COMPUTED_SPREAD = 0.15
"""Modelled: standard deviation of a dynamic cache's computed steps over prompts, as a share of
their mean."""
COMPUTED_SAMPLES = 200

# (name, steps, published speedup, published ImageReward, modelled quality_std)
STEPS_LEVELS = [
    ("flux-17", 17, 1.67, 0.966, 0.03),
    ("flux-10", 10, 3.13, 0.945, 0.04),
    ("flux-6", 6, 4.55, 0.818, 0.07),
]
# (name, setting, published speedup, published ImageReward, modelled std, dynamic)
FEATURE_LEVELS = [
    ("flux-fbc-1.8x", "fbc:0.08", 1.80, 1.037, 0.02, True),
    ("flux-fbc-2.7x", "fbc:0.16", 2.66, 1.007, 0.07, True),
    ("flux-ts7", "taylorseer:7:1", 5.54, 0.913, 0.06, False),
]
# (skipped steps K of 28, relative quality in its band: NIRVANA's SDXL K of 50 at that band)
CACHE_LEVELS = [(2, 0.97046), (5, 0.95808), (8, 0.94378), (11, 0.93235), (14, 0.9152)]


def _times(b1: float) -> dict[int, float]:
    return {b: round(b1 * r, 4) for b, r in BATCH_RATIO.items()}


def computed_histogram(speedup: float, rng: np.random.Generator) -> dict[int, int]:
    """Modelled full transformer steps per prompt of a dynamic cache: around STEPS / speedup."""
    mean = STEPS / speedup
    draws = np.clip(np.rint(rng.normal(mean, COMPUTED_SPREAD * mean, COMPUTED_SAMPLES)),
                    1, STEPS).astype(int)
    values, counts = np.unique(draws, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def histogram_quantile(histogram: dict[int, int], q: float = COST_QUANTILE) -> int:
    """Nearest-rank quantile of a {value: count} histogram."""
    rank = math.ceil(q * sum(histogram.values()))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def _feature_level(name: str, setting: str, speedup: float, reward: float, std: float,
                   dynamic: bool, rng: np.random.Generator) -> LevelProfile:
    computed: dict[int, int] = {}
    b1 = FULL_B1_S / speedup
    if dynamic:  # costed at the quantile, not the published mean
        computed = computed_histogram(speedup, rng)
        b1 *= max(1.0, histogram_quantile(computed) / (STEPS / speedup))
    return LevelProfile(
        name=name, variant="flux-dev", steps=STEPS, feature_cache=setting,
        service_time_s=_times(b1), mean_quality=round(reward / FULL_IMAGE_REWARD, 4),
        quality_std=std, computed_steps=computed,
    )


def _levels() -> list[LevelProfile]:
    rng = np.random.default_rng(0)
    levels = [LevelProfile(name=f"flux-{STEPS}", variant="flux-dev", steps=STEPS,
                           service_time_s=_times(FULL_B1_S), mean_quality=1.0)]
    levels += [
        LevelProfile(name=name, variant="flux-dev", steps=steps,
                     service_time_s=_times(FULL_B1_S / speedup),
                     mean_quality=round(reward / FULL_IMAGE_REWARD, 4), quality_std=std)
        for name, steps, speedup, reward, std in STEPS_LEVELS
    ]
    levels += [_feature_level(*spec, rng) for spec in FEATURE_LEVELS]
    levels += [
        LevelProfile(name=f"flux-k{k}", variant="flux-dev", steps=STEPS, cache_k=k,
                     service_time_s=_times(FULL_B1_S * (STEPS - k) / STEPS),
                     mean_quality=quality, quality_std=0.02)
        for k, quality in CACHE_LEVELS
    ]
    return levels


def _flux_levels() -> Profile:
    from argus.control.builtin import PUBLISHED_SIMILARITY

    return Profile(
        name="a800-flux",
        hardware="NVIDIA A800 (published FLUX.1-dev numbers)",
        quality_source="modelled",
        full_level=f"flux-{STEPS}",
        variants=[VariantProfile(name="flux-dev", load_time_s=60.0, memory_gb=33.0)],
        levels=_levels(),
        similarity_distribution=PUBLISHED_SIMILARITY,
        notes=__doc__ or "",
    )


@lru_cache(maxsize=1)
def _flux_prompt_rows() -> tuple:
    from argus.control.builtin import builtin_prompts

    table = modelled_prompt_table(_flux_levels(), builtin_prompts(), seed=0, in_band=True)
    return tuple(table.prompts)


def a800_flux(with_prompts: bool = True) -> Profile:
    """The profile with its modelled per-prompt table (built once per process)."""
    levels = _flux_levels()
    return levels.model_copy(update={"prompts": list(_flux_prompt_rows())}) if with_prompts \
        else levels
