"""Measure a deployment's profile on this machine (`argus profile`).

Per variant: load time, cold (a fresh process's first load, weight files evicted from the page
cache where the OS allows: a worker starting) and warm (a running worker switching: the
planner's switch cost), and weight memory.
Per level and batch size: the service time of a whole batch through the serving core's engine
(median of repeats, after a warm-up). Per prompt and level: the scorer's quality value (mean over
seeds) and metrics; relative quality = value at the level / value at the full level.

Relative quality when the full level itself scores (near) zero: the denominator is floored at
`QUALITY_FLOOR`; when both the level and the full level are below the floor the level lost
nothing (relative 1.0); ratios are capped at `RELATIVE_CAP` so one lucky seed cannot dominate.

Cache levels (K > 0) are measured as the approximate cache serves them: a prompt resumes at step K
from the latents its most similar other profiled prompt (pooled text embedding, same seed) had
before step K, then finishes under its own prompt.

Feature-cache levels (`LevelConfig.feature_cache`): a dynamic cache decides per batch how many
steps run the transformer in full, so each prompt's quality run is a batch of one and records
its computed steps (`LevelProfile.computed_steps`). Their service times are costed at the
`COST_QUANTILE` of that distribution: each timed batch's time is scaled up by (quantile / the
steps that batch computed) when it computed fewer. Why an upper quantile, and why 0.9:
admission promises a deadline per request, and the prompts that skip least (complex scenes) are
the ones a mean would under-cost, half of the time; the maximum would cost every prompt as the
worst one and erase most of the cache's gain; the 10% above the quantile are absorbed by the
queueing headroom the planner keeps (half the SLO, `UTILISATION_CAP`). Scaling by computed steps
ignores a skipped step's own cost (head block, embeddings), so the estimate errs high.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from argus.config import ArgusConfig, LevelConfig, VariantConfig
from argus.control.profile import LevelProfile, Profile, PromptQuality, VariantProfile
from argus.engine.generate import GenerationSpec, embed_prompts, generate
from argus.engine.pipeline import Pipeline, load_pipeline
from argus.engine.variants import variant_folder
from argus.scorers import ImageScorer, ScoredImage, make_scorer

QUALITY_FLOOR = 0.05
RELATIVE_CAP = 2.0
SIMILARITY_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
COST_QUANTILE = 0.9
"""Quantile of a feature-cache level's computed steps its service time is costed at."""


def upper_quantile(values: Sequence[int], q: float = COST_QUANTILE) -> int:
    """The nearest-rank q-quantile (a value that occurred, never below the share q)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


@dataclass
class ProfileSpec:
    config: ArgusConfig
    prompts: list[str]
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    seeds: list[int] = field(default_factory=lambda: [0])
    scorer: str = "shapes"
    repeats: int = 3
    full_level: str | None = None
    levels: list[str] | None = None
    """Subset of the config's levels to profile (None: all)."""
    name: str = "measured"
    quality_batch: int = 16
    threads: int = 1


def relative_quality(value: float, full: float) -> float:
    if value < QUALITY_FLOOR and full < QUALITY_FLOOR:
        return 1.0
    return min(value / max(full, QUALITY_FLOOR), RELATIVE_CAP)


def pick_full_level(config: ArgusConfig, levels: Sequence[LevelConfig]) -> LevelConfig:
    """The first variant at its default steps without cache reuse, else the first level."""
    first = config.variants[0]
    for level in levels:
        plain = not level.cache_k and not level.feature_cache
        if level.variant == first.name and level.steps == first.default_steps and plain:
            return level
    return levels[0]


class _Runner:
    """Generates through the engine for one loaded variant."""

    def __init__(self, config: ArgusConfig, pipe: Pipeline) -> None:
        self.pipe = pipe
        self.variant = config.variant(pipe.name)
        self.computed: dict[str, list[int]] = {}
        """Feature-cache level -> full transformer steps of each quality generation."""
        self.timed_computed: dict[tuple[str, int], int] = {}
        """(level, batch) -> full steps the timed batch ran."""

    def specs(self, level: LevelConfig, prompts: Sequence[str], seeds: Sequence[int],
              capture: Sequence[int] = ()) -> list[GenerationSpec]:
        size = self.variant.resolution
        return [
            GenerationSpec(p, s, level.steps, size, size, self.variant.guidance_scale,
                           capture_steps=capture, feature_cache=level.feature_cache)
            for p, s in zip(prompts, seeds, strict=True)
        ]

    def run(self, level: LevelConfig, prompts: Sequence[str], seeds: Sequence[int],
            start_from: Sequence[str] | None = None) -> list[np.ndarray]:
        """Images for (prompt, seed) pairs; cache levels resume from `start_from` prompts."""
        if level.feature_cache:  # one at a time: the cache decides per batch
            results = [generate(self.pipe, [spec])[0] for spec in self.specs(level, prompts, seeds)]
            self.computed.setdefault(level.name, []).extend(
                r.computed_steps or r.steps_run for r in results)
            return [r.image for r in results]
        if not level.cache_k:
            return [r.image for r in generate(self.pipe, self.specs(level, prompts, seeds))]
        donors = generate(self.pipe, self.specs(level, start_from or prompts, seeds,
                                                capture=[level.cache_k]))
        specs = self.specs(level, prompts, seeds)
        for spec, donor in zip(specs, donors, strict=True):
            spec.start_step = level.cache_k
            spec.start_latents = donor.captured[level.cache_k]
        return [r.image for r in generate(self.pipe, specs)]

    def service_time(self, level: LevelConfig, batch: int, prompts: Sequence[str],
                     repeats: int) -> float:
        """Median seconds for one batch (cache levels: the resumed part only)."""
        chosen = [prompts[i % len(prompts)] for i in range(batch)]
        specs = self.specs(level, chosen, list(range(batch)))
        if level.cache_k:
            donors = generate(self.pipe, self.specs(level, chosen, list(range(batch)),
                                                    capture=[level.cache_k]))
            for spec, donor in zip(specs, donors, strict=True):
                spec.start_step = level.cache_k
                spec.start_latents = donor.captured[level.cache_k]
        warm = generate(self.pipe, specs)[0]  # warm-up
        self.timed_computed[(level.name, batch)] = warm.computed_steps or warm.steps_run
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            generate(self.pipe, specs)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def _costed_times(level: LevelConfig, times: dict[int, float], runner: _Runner,
                  computed: list[int]) -> dict[int, float]:
    """Measured batch times; a feature-cache level's at the `COST_QUANTILE` of its computed
    steps (see the module docstring)."""
    if not level.feature_cache or not computed:
        return times
    q = upper_quantile(computed)
    return {b: round(t * max(1.0, q / max(runner.timed_computed[(level.name, b)], 1)), 5)
            for b, t in times.items()}


def _nearest_other(pipe: Pipeline, prompts: Sequence[str]) -> tuple[list[int], list[float]]:
    """Index and cosine similarity of each prompt's most similar other prompt."""
    emb = embed_prompts(pipe, list(prompts))
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    idx = sims.argmax(1)
    return idx.tolist(), [float(sims[i, j]) for i, j in enumerate(idx)]


def pipeline_memory_gb(pipe: Pipeline) -> float:
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    modules = [m for m in (denoiser, pipe.text_encoder, pipe.text_encoder_2, pipe.vae)
               if m is not None]
    total = sum(t.numel() * t.element_size() for m in modules for t in m.state_dict().values())
    return total / 1024**3


def _hardware(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return f"{cpu}, {threads} torch thread(s), torch {torch.__version__}"


def _mean_scores(scored: Sequence[ScoredImage]) -> tuple[float, dict[str, float]]:
    value = float(np.mean([s.value for s in scored]))
    names = scored[0].metrics.keys()
    return value, {n: float(np.mean([s.metrics[n] for s in scored])) for n in names}


def evict_from_page_cache(folder: Path) -> int:
    """Drop `folder`'s files from the OS page cache (no root needed); returns files evicted."""
    evicted = 0
    for path in (p for p in folder.rglob("*") if p.is_file()):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            evicted += 1
        finally:
            os.close(fd)
    return evicted


_COLD_LOAD = """
import json, sys, time, torch
torch.set_num_threads(1)
from argus.config import VariantConfig
from argus.engine.pipeline import load_pipeline
variant = VariantConfig.model_validate_json(sys.argv[1])
start = time.perf_counter()
load_pipeline(variant)
print(json.dumps(time.perf_counter() - start))
"""


def cold_load_s(variant: VariantConfig) -> float:
    """A worker's first load: a fresh process (libraries imported, nothing initialised) loads
    the variant, its weight files evicted from the page cache first where the OS allows."""
    folder = variant_folder(variant.source)
    if folder is not None and folder.is_dir() and hasattr(os, "posix_fadvise"):
        evict_from_page_cache(folder)
    out = subprocess.run([sys.executable, "-c", _COLD_LOAD, variant.model_dump_json()],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure_loads(variant: VariantConfig, warm_repeats: int = 2) -> tuple[Pipeline, float, float]:
    """The variant's cold load (`cold_load_s`) and its best warm load in this process (a running
    worker switching to it: what the planner's switch cost is); returns the last pipeline too."""
    cold_s = cold_load_s(variant)
    pipe = load_pipeline(variant)  # this process's first: library initialisation, not timed
    warm_s = float("inf")
    for _ in range(warm_repeats):
        pipe = load_pipeline(variant)
        warm_s = min(warm_s, pipe.load_time_s)
    return pipe, cold_s, warm_s


def measure_profile(spec: ProfileSpec, log: Callable[[str], None] = print) -> Profile:
    """Run every measurement of `spec` and return the validated profile."""
    if not spec.prompts:
        raise ValueError("no prompts to profile")
    if not spec.batch_sizes or min(spec.batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {spec.batch_sizes}")
    torch.set_num_threads(spec.threads)
    config = spec.config
    levels = [config.level(n) for n in spec.levels] if spec.levels else list(config.levels)
    full = config.level(spec.full_level) if spec.full_level else pick_full_level(config, levels)
    if full not in levels:
        levels.insert(0, full)
    scorer: ImageScorer = make_scorer(spec.scorer)
    pairs = [(p, s) for p in spec.prompts for s in spec.seeds]
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]

    variants, level_profiles = [], []
    values: dict[str, list[float]] = {}
    metrics: dict[str, list[dict[str, float]]] = {}
    similarity: list[float] | None = None
    for vname in dict.fromkeys(lv.variant for lv in levels):
        variant = config.variant(vname)
        pipe, cold_s, warm_s = measure_loads(variant)
        variants.append(VariantProfile(name=vname, load_time_s=round(warm_s, 4),
                                       cold_load_time_s=round(cold_s, 4),
                                       warm_load_time_s=round(warm_s, 4),
                                       memory_gb=round(pipeline_memory_gb(pipe), 5)))
        log(f"{vname}: load cold {cold_s:.3f}s, warm {warm_s:.3f}s")
        runner = _Runner(config, pipe)
        nearest, sims = _nearest_other(pipe, spec.prompts)
        if similarity is None:
            similarity = sims
        n_seeds = len(spec.seeds)
        donors = [spec.prompts[nearest[i // n_seeds]] for i in range(len(pairs))]
        for level in (lv for lv in levels if lv.variant == vname):
            times = {b: round(runner.service_time(level, b, spec.prompts, spec.repeats), 5)
                     for b in spec.batch_sizes}
            images: list[np.ndarray] = []
            for i in range(0, len(pairs), spec.quality_batch):
                sl = slice(i, i + spec.quality_batch)
                images += runner.run(level, prompts[sl], seeds[sl], donors[sl])
            scored = scorer.score(images, prompts)
            per_prompt = [scored[i * n_seeds:(i + 1) * n_seeds] for i in range(len(spec.prompts))]
            means = [_mean_scores(group) for group in per_prompt]
            values[level.name] = [v for v, _ in means]
            metrics[level.name] = [m for _, m in means]
            level_profiles.append((level, times, runner))
            log(f"{level.name}: batch times {times}, mean value "
                f"{np.mean(values[level.name]):.3f}")

    prompt_rows = []
    for i, prompt in enumerate(spec.prompts):
        full_value = values[full.name][i]
        prompt_rows.append(PromptQuality(
            prompt=prompt,
            quality={n: round(relative_quality(v[i], full_value), 5) for n, v in values.items()},
            score={n: round(v[i], 5) for n, v in values.items()},
            metrics={n: {k: round(x, 5) for k, x in m[i].items()} for n, m in metrics.items()},
            similarity=round(similarity[i], 5) if similarity else None,
        ))
    out_levels = []
    for level, times, runner in level_profiles:
        rel = [row.quality[level.name] for row in prompt_rows]
        computed = runner.computed.get(level.name, [])
        out_levels.append(LevelProfile(
            name=level.name, variant=level.variant, steps=level.steps, cache_k=level.cache_k,
            service_time_s=_costed_times(level, times, runner, computed),
            mean_quality=round(float(np.mean(rel)), 5),
            quality_std=round(float(np.std(rel)), 5), feature_cache=level.feature_cache,
            computed_steps={k: computed.count(k) for k in sorted(set(computed))},
        ))
    sims_arr = np.array(similarity or [0.0])
    return Profile(
        name=spec.name,
        hardware=_hardware(spec.threads),
        quality_source="measured",
        full_level=full.name,
        variants=variants,
        levels=out_levels,
        prompts=prompt_rows,
        similarity_distribution=[(t, round(float((sims_arr > t).mean()), 5))
                                 for t in SIMILARITY_THRESHOLDS],
        notes=(
            f"argus profile: scorer {scorer.name}, {len(spec.prompts)} prompts x seeds "
            f"{spec.seeds}, service time = median of {spec.repeats} batches after a warm-up; "
            f"relative quality = value / max(full value, {QUALITY_FLOOR}) capped at "
            f"{RELATIVE_CAP} (1.0 when both are below {QUALITY_FLOOR}); cache levels resume "
            "from the most similar other prompt's latents at step K; similarity = that "
            "prompt's cosine similarity (pooled text embedding of the first variant)."
        ),
    )
