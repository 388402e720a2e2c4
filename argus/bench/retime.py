"""Re-measure a profile's service times on this machine, keeping its quality tables.

    .venv/bin/python -m argus.bench.retime --out docs/live/profile-retimed.json [--repeats 2]

`argus profile` re-measures quality too (every prompt at every level, many minutes on CPU); the
live study only needs the times the worker really takes now, as the worker runs them (1 torch
thread, the deployment's variants, guidance and scheduler, `argus.engine.generate`), at the
profile's batch sizes. Each time is the median of `repeats` timed batches after one warm-up."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from argus.config import ArgusConfig
from argus.control.profile import Profile
from argus.defaults import PROFILE_FILE, default_config
from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import load_pipeline

PROMPT = "a small red circle left of a big blue square"


def time_level(pipe: object, steps: int, cache_k: int, batch: int, resolution: int,
               guidance: float, repeats: int) -> float:
    """Median seconds of one batch of `batch` images at `steps` (cache levels start at K from
    latents, as a cache hit does)."""
    import numpy as np

    shape = (pipe.latent_channels, resolution // pipe.latent_factor,  # type: ignore[attr-defined]
             resolution // pipe.latent_factor)  # type: ignore[attr-defined]
    latents = np.zeros(shape, np.float32) if cache_k else None
    specs = [GenerationSpec(PROMPT, seed=i, steps=steps, height=resolution, width=resolution,
                            guidance_scale=guidance, start_step=cache_k, start_latents=latents)
             for i in range(batch)]
    generate(pipe, specs)  # type: ignore[arg-type]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate(pipe, specs)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def retime(profile: Profile, config: ArgusConfig, repeats: int = 2) -> Profile:
    """The profile with every level's service times measured here."""
    pipes = {v.name: (load_pipeline(v), v) for v in config.variants}
    levels = []
    for lv in profile.levels:
        pipe, variant = pipes[lv.variant]
        times = {b: round(time_level(pipe, lv.steps, lv.cache_k, b, variant.resolution,
                                     variant.guidance_scale, repeats), 5)
                 for b in sorted(lv.service_time_s)}
        print(f"{lv.name}: {times}", flush=True)
        levels.append(lv.model_copy(update={"service_time_s": times}))
    return profile.model_copy(update={
        "levels": levels, "name": f"{profile.name}-retimed",
        "notes": f"{profile.notes} service times re-measured by argus.bench.retime".strip(),
    })


def main() -> None:
    from argus.runtime.worker import set_torch_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    set_torch_threads(1)
    profile = retime(Profile.load(PROFILE_FILE), default_config(), args.repeats)
    args.out.write_text(profile.model_dump_json(indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
