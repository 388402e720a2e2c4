"""Built-in profiles: `a100-sdxl` from published numbers, and a modelled profile for any config.

`a100-sdxl` (sources: ../shared/reference/papers.md §1.3, §1.4, §5.2):
- SDXL with approximate caching, skip K in {0,5,10,15,20,25} of 50 steps: relative quality
  {100, 97.05, 95.81, 94.38, 93.24, 91.52}% (Argus code, `candidate_machine_acc`); batch-1
  service time 4.2 s x (50-K)/50 (Argus code); larger batches scale like DiffServe's A100 SDXL
  profile (6.10/10.65/20.92/40.23 s at batch 1/2/4/8).
- SD1.5 50 steps: DiffServe's A100 profile (1.78/2.16/3.68/6.79 s).
- Load times (Argus notebook): tiny-sd 11.78 s, small-sd 15.05 s, SD1.5 21.70 s, SDXL 46.98 s;
  sizes 0.63/2.32/3.44/5.14 GB.
- Cache hits: the published top-1 similarity distribution of a 20,000-query log.
MODELLED (no published number): the quality of SD1.5, small-sd, tiny-sd and of step reduction
relative to SDXL, the service times of small-sd (0.65 x SD1.5) and tiny-sd (0.5 x SD1.5) and of
step-reduced levels (proportional to steps), and the per-prompt spread (`quality_std`). The
profile is therefore labelled `quality_source="modelled"`.
Per-prompt table (modelled): the 1,632 PartiPrompts (Apache-2.0, Yu et al. 2022, shipped in
`argus/assets/prompts/`), each with a quality per level from its text complexity
(`argus.control.quality_model`: mean_l - std_l x difficulty, difficulty 0.8-correlated with the
text); cache levels hold their in-band value, discounted per request by its cache similarity.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from argus.config import ArgusConfig, parse_config
from argus.control.builtin_flux import a800_flux
from argus.control.profile import LevelProfile, Profile, VariantProfile
from argus.control.quality_model import modelled_prompt_table

SDXL_BATCH_RATIO = {1: 1.0, 2: 10.65 / 6.10, 4: 20.92 / 6.10, 8: 40.23 / 6.10}
SD15_BATCH_S = {1: 1.78, 2: 2.16, 4: 3.68, 8: 6.79}
SDXL_K_QUALITY = {0: 1.0, 5: 0.97046, 10: 0.95808, 15: 0.94378, 20: 0.93235, 25: 0.9152}
PUBLISHED_SIMILARITY = [(0.65, 0.775), (0.75, 0.349), (0.85, 0.136), (0.90, 0.091), (0.95, 0.059)]

NOMINAL_STEP_S = 0.05
"""Modelled seconds per denoising step at 512x512, batch 1 (profile_from_config)."""
BATCH_GROWTH = 0.75
"""Modelled extra time per additional image in a batch, as a share of the batch-1 time."""


def _level(
    name: str, variant: str, steps: int, k: int, times: dict[int, float], quality: float,
    std: float, feature_cache: str = "",
) -> LevelProfile:
    return LevelProfile(
        name=name, variant=variant, steps=steps, cache_k=k, feature_cache=feature_cache,
        service_time_s={b: round(t, 4) for b, t in times.items()},
        mean_quality=quality, quality_std=std,
    )


def a100_sdxl(with_prompts: bool = True) -> Profile:
    """The profile with its modelled per-prompt table (built once per process); without it,
    per-level means only (predictors then see cache similarity alone)."""
    levels = _a100_levels()
    return levels.model_copy(update={"prompts": list(_a100_prompt_rows())}) if with_prompts \
        else levels


def _a100_levels() -> Profile:
    sdxl_b1 = 4.2
    levels = [
        _level(
            f"sdxl-k{k}", "sdxl", 50, k,
            {b: sdxl_b1 * (50 - k) / 50 * r for b, r in SDXL_BATCH_RATIO.items()}, q,
            0.02 if k else 0.0,
        )
        for k, q in SDXL_K_QUALITY.items()
    ]

    def scaled(base: dict[int, float], factor: float) -> dict[int, float]:
        return {b: t * factor for b, t in base.items()}

    sdxl_times = {b: sdxl_b1 * r for b, r in SDXL_BATCH_RATIO.items()}
    levels += [
        _level("sdxl-s30", "sdxl", 30, 0, scaled(sdxl_times, 30 / 50), 0.88, 0.04),
        _level("sdxl-s20", "sdxl", 20, 0, scaled(sdxl_times, 20 / 50), 0.82, 0.06),
        _level("sd15", "sd15", 50, 0, SD15_BATCH_S, 0.86, 0.06),
        _level("sd15-s25", "sd15", 25, 0, scaled(SD15_BATCH_S, 0.5), 0.80, 0.07),
        _level("small-sd", "small-sd", 50, 0, scaled(SD15_BATCH_S, 0.65), 0.82, 0.07),
        _level("tiny-sd", "tiny-sd", 50, 0, scaled(SD15_BATCH_S, 0.5), 0.78, 0.08),
    ]
    return Profile(
        name="a100-sdxl",
        hardware="NVIDIA A100 (published numbers)",
        quality_source="modelled",
        full_level="sdxl-k0",
        variants=[
            VariantProfile(name="sdxl", load_time_s=46.98, memory_gb=5.14),
            VariantProfile(name="sd15", load_time_s=21.70, memory_gb=3.44),
            VariantProfile(name="small-sd", load_time_s=15.05, memory_gb=2.32),
            VariantProfile(name="tiny-sd", load_time_s=11.78, memory_gb=0.63),
        ],
        levels=levels,
        similarity_distribution=PUBLISHED_SIMILARITY,
        notes=__doc__ or "",
    )


PROMPT_SET = Path(__file__).resolve().parents[1] / "assets" / "prompts" / "PartiPrompts.tsv"


def builtin_prompts() -> list[str]:
    """The shipped PartiPrompts texts (1,632)."""
    with PROMPT_SET.open(newline="") as handle:
        return [row["Prompt"] for row in csv.DictReader(handle, delimiter="\t") if row["Prompt"]]


@lru_cache(maxsize=1)
def _a100_prompt_rows() -> tuple:
    table = modelled_prompt_table(_a100_levels(), builtin_prompts(), seed=0, in_band=True)
    return tuple(table.prompts)


BUILTIN_PROFILES = {"a100-sdxl": a100_sdxl, "a800-flux": a800_flux}
"""`a800-flux`: a FLUX-class cluster with feature-cache levels (`argus.control.builtin_flux`)."""


def _work_per_image(config: ArgusConfig, level_name: str) -> float:
    level = config.level(level_name)
    variant = config.variant(level.variant)
    share = FEATURE_CACHE_WORK if level.feature_cache else 1.0
    return share * (level.steps - level.cache_k) * (variant.resolution / 512) ** 2


FEATURE_CACHE_WORK = 0.6
"""Modelled share of a feature-cache level's steps that run the transformer in full."""
FEATURE_CACHE_QUALITY = 0.97
"""Modelled relative quality of a feature-cache level (measure it with `argus profile`)."""


def profile_from_config(config: ArgusConfig) -> Profile:
    """A modelled profile: service time proportional to the steps run (steps - K) at a nominal
    per-step cost scaled by resolution; quality modelled from the variant (the full level's
    variant = 1.0, others 0.85), the share of its default steps and the skipped share."""
    full = max(
        (lv for lv in config.levels if lv.cache_k == 0 and not lv.feature_cache),
        key=lambda lv: _work_per_image(config, lv.name),
        default=config.levels[0],
    )
    levels = []
    for lv in config.levels:
        variant = config.variant(lv.variant)
        t1 = NOMINAL_STEP_S * _work_per_image(config, lv.name)
        base = 1.0 if lv.variant == full.variant else 0.85
        steps_q = 1 - 0.25 * max(0.0, 1 - lv.steps / variant.default_steps) ** 2
        cache_q = 1 - 0.17 * lv.cache_k / lv.steps
        cache_q *= FEATURE_CACHE_QUALITY if lv.feature_cache else 1.0
        levels.append(
            _level(
                lv.name, lv.variant, lv.steps, lv.cache_k,
                {b: t1 * (1 + BATCH_GROWTH * (b - 1)) for b in (1, 2, 4, 8)},
                round(base * steps_q * cache_q, 4), 0.03, lv.feature_cache,
            )
        )
    return Profile(
        name="modelled-from-config",
        hardware="nominal",
        quality_source="modelled",
        full_level=full.name,
        variants=[
            VariantProfile(name=v.name, load_time_s=v.load_time_s, memory_gb=v.memory_gb)
            for v in config.variants
        ],
        levels=levels,
        similarity_distribution=PUBLISHED_SIMILARITY,
        notes="modelled by argus.control.builtin.profile_from_config; measure with `argus profile`",
    )


def resolve_profile(spec: str | Path | None, config: ArgusConfig | None = None) -> Profile:
    """A built-in profile by name, a profile JSON by path, or (None) the config's profile file,
    else one modelled from the config."""
    if spec is None and config is not None:
        spec = config.control.profile
        if spec is None:
            return profile_from_config(config)
    if spec is None:
        raise ValueError("no profile given")
    if str(spec) in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[str(spec)]()
    path = Path(spec)
    if not path.exists():
        raise ValueError(
            f"profile {spec!r} is neither a file nor a built-in ({', '.join(BUILTIN_PROFILES)})"
        )
    return Profile.load(path)


def config_for_profile(profile: Profile, **sections: object) -> ArgusConfig:
    """A deployment config whose variants and levels are the profile's (simulator, tests);
    `sections` override config sections, e.g. `server={"queue_capacity": 10_000}`."""
    full = profile.level(profile.full_level)
    data: dict[str, object] = {
        "variants": [
            {
                "name": v.name, "source": f"profile:{profile.name}",
                "default_steps": max(lv.steps for lv in profile.levels if lv.variant == v.name),
                "resolution": 512, "load_time_s": v.load_time_s, "memory_gb": v.memory_gb,
            }
            for v in profile.variants
        ],
        "levels": [
            {"name": lv.name, "variant": lv.variant, "steps": lv.steps, "cache_k": lv.cache_k,
             "feature_cache": lv.feature_cache}
            for lv in profile.levels
        ],
    }
    data.update(sections)
    del full
    return parse_config(data, f"<profile {profile.name}>")
