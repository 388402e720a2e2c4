"""Fewer steps vs feature caching vs latent reuse on the modelled FLUX-class cluster
(`a800-flux`, simulated; the quality is modelled from published numbers, see
argus/control/builtin_flux.py).

    python benchmarks/flux_levels.py
    python benchmarks/flux_levels.py --workers 8 --duration 1800 --loads 1 2 3

Prints one JSON object per line:
- `flux_level`: each level's speed-up (at its costed batch-1 time: a dynamic cache at the 0.9
  quantile of its computed steps), mean relative quality, the quality of a simple (difficulty
  -1) and a complex (+1) prompt, and the share of the 1,632 prompts it keeps above the default
  floor (0.9).
- `flux_family`: Argus on a cluster that offers the full level plus one family of
  approximations (steps, feature-cache, latent-reuse) or all of them, per load (multiples of
  the full level's capacity): quality-weighted goodput, SLO violations, mean relative quality
  and level share; clipper-ha (full level only) as the reference.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from argus.baselines.compare import full_quality_capacity, quality_goodput
from argus.control.builtin import config_for_profile, resolve_profile
from argus.control.plane import ControlPlane
from argus.control.profile import LevelProfile, Profile
from argus.sim.simulator import Simulator
from argus.sim.traces import load_trace

FLOOR = 0.9
FAMILIES = {
    "steps": lambda lv: not lv.cache_k and not lv.feature_cache,
    "feature-cache": lambda lv: bool(lv.feature_cache),
    "latent-reuse": lambda lv: lv.cache_k > 0,
    "all": lambda lv: True,
}


def family(profile: Profile, name: str) -> Profile:
    """The profile with its full level plus one family's levels (per-prompt table cut to them)."""
    keep = {lv.name for lv in profile.levels
            if lv.name == profile.full_level or FAMILIES[name](lv)}
    prompts = [p.model_copy(update={"quality": {k: v for k, v in p.quality.items() if k in keep}})
               for p in profile.prompts]
    return profile.model_copy(update={
        "levels": [lv for lv in profile.levels if lv.name in keep], "prompts": prompts})


def level_row(profile: Profile, level: LevelProfile) -> dict:
    full = profile.level(profile.full_level).service_time(1)
    values = np.array([p.quality[level.name] for p in profile.prompts])
    return {
        "kind": "flux_level", "level": level.name, "steps": level.steps, "cache_k": level.cache_k,
        "feature_cache": level.feature_cache,
        "speedup": round(full / level.service_time(1), 2),
        "mean_quality": level.mean_quality,
        "simple_prompt": round(min(level.mean_quality + level.quality_std, 1.2), 3),
        "complex_prompt": round(level.mean_quality - level.quality_std, 3),
        "share_above_floor": round(float(np.mean(values >= FLOOR)), 3),
    }


def run(profile: Profile, policy: str, rate: float, workers: int, duration: float,
        seed: int) -> dict:
    config = config_for_profile(profile, control={"policy": policy},
                                server={"queue_capacity": 64 * workers})
    plane = ControlPlane(config, profile, num_workers=workers, seed=seed)
    record = Simulator(plane, load_trace("poisson", rate, duration, seed=seed), seed=seed).run(
        duration)
    served = record.level >= 0
    met = served & (record.finish <= record.deadline + 1e-9)
    share = np.bincount(record.level[served], minlength=len(plane.table)) / max(served.sum(), 1)
    return {
        "quality_goodput_rps": round(quality_goodput(record, duration), 4),
        "slo_violation_ratio": round(1 - float(met.sum()) / len(record.level), 4),
        "mean_relative_quality": round(float(np.nanmean(record.quality[served])), 4),
        "level_share": {n: round(float(s), 3) for n, s in zip(plane.table.names, share,
                                                               strict=True) if s},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--loads", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    profile = resolve_profile("a800-flux")
    for level in profile.levels:
        print(json.dumps(level_row(profile, level)), flush=True)
    capacity = full_quality_capacity("a800-flux", args.workers)
    for load in args.loads:
        cells = [(name, "argus") for name in FAMILIES] + [("full", "clipper-ha")]
        for name, policy in cells:
            sub = profile if name == "full" else family(profile, name)
            result = run(sub, policy, load * capacity, args.workers, args.duration, args.seed)
            print(json.dumps({"kind": "flux_family", "family": name, "policy": policy,
                              "load": load, **result}), flush=True)


if __name__ == "__main__":
    main()
