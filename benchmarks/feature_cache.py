"""Feature caching on a loaded transformer: what a per-batch switch costs, and what each cache
saves, on the tiny random FLUX-class and SD3-class models (CPU, 1 thread).

    python benchmarks/feature_cache.py
    python benchmarks/feature_cache.py --steps 20 --batch 4 --repeats 5

Prints one JSON object per line:
- `feature_cache_switch`: median milliseconds of `argus.engine.feature_cache.use` moving a
  loaded transformer from no cache to `spec` (`on_ms`), from `spec` back to none (`off_ms`), and
  keeping `spec` for the next generation (`reset_ms`, the stateful hooks' reset).
- `feature_cache_run`: median seconds of one batch uncached and with `spec`, the speed-up, the
  full transformer steps the cached batch ran, and the mean absolute image difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from argus.config import VariantConfig
from argus.engine import feature_cache
from argus.engine.flow import FlowPipeline
from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import load_pipeline

SPECS = ("fbc:0.1", "fbc:0.2", "taylorseer:2:2", "taylorseer:3:2")
PROMPTS = ("a red circle", "two blue squares", "a small green triangle", "three yellow circles")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 4)


def switch_costs(pipe: FlowPipeline, spec: str, repeats: int) -> dict[str, float]:
    def on_off(target: str) -> Callable[[], object]:
        def run() -> None:
            feature_cache.use(pipe.transformer, pipe.cache, target)
            feature_cache.use(pipe.transformer, pipe.cache, "")
        return run

    both = median_ms(on_off(spec), repeats)
    feature_cache.use(pipe.transformer, pipe.cache, spec)
    off = median_ms(lambda: (feature_cache.use(pipe.transformer, pipe.cache, ""),
                             feature_cache.use(pipe.transformer, pipe.cache, spec)), repeats)
    reset = median_ms(lambda: feature_cache.use(pipe.transformer, pipe.cache, spec), repeats)
    feature_cache.use(pipe.transformer, pipe.cache, "")
    return {"on_ms": round(both - off / 2, 4), "off_ms": round(off / 2, 4), "reset_ms": reset}


def run_batch(pipe: FlowPipeline, spec: str, args: argparse.Namespace) -> tuple[float, list]:
    specs = [GenerationSpec(PROMPTS[i % len(PROMPTS)], i, args.steps, 32, 32,
                            guidance_scale=3.0, feature_cache=spec) for i in range(args.batch)]
    generate(pipe, specs)  # warm-up (and the switch)
    times, results = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        results = generate(pipe, specs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--switch-repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for arch in ("flux-tiny", "sd3-tiny"):
        variant = VariantConfig(name=arch, source=f"random:{arch}", default_steps=args.steps,
                                resolution=32)
        pipe = load_pipeline(variant)
        assert isinstance(pipe, FlowPipeline)
        plain_s, plain = run_batch(pipe, "", args)
        for spec in SPECS:
            print(json.dumps({"bench": "feature_cache_switch", "arch": arch, "spec": spec,
                              **switch_costs(pipe, spec, args.switch_repeats)}), flush=True)
            cached_s, cached = run_batch(pipe, spec, args)
            gap = float(np.mean([np.abs(c.image - p.image).mean()
                                 for c, p in zip(cached, plain, strict=True)]))
            print(json.dumps({
                "bench": "feature_cache_run", "arch": arch, "spec": spec, "steps": args.steps,
                "batch": args.batch, "uncached_s": round(plain_s, 4),
                "cached_s": round(cached_s, 4), "speedup": round(plain_s / cached_s, 3),
                "computed_steps": cached[0].computed_steps, "mean_abs_diff": round(gap, 5),
            }), flush=True)


if __name__ == "__main__":
    main()
