"""Engine and server overhead (issue #14 item 5), one JSON line per measurement.

    .venv/bin/python benchmarks/engine_overhead.py [--repeats 15] [--requests 20] [--skip-server]

1. `engine_vs_diffusers`: Argus' denoising loop (`argus.engine.generate`) against the plain
   diffusers `StableDiffusionPipeline.__call__` on the same components (the seeded random SD-class
   `latent-tiny` model: CLIP text encoder, UNet, VAE, DDIM with eta 0), the same steps, batch,
   guidance and initial noise (Argus' per-seed noise handed to diffusers as `latents`). Timed
   alternately, median of `--repeats`; reports the time ratio (goal <= 1.03) and the largest
   absolute pixel difference of the two images (goal <= 1e-5).
2. `server_vs_engine`: one `argus serve` process (embedded shapes family, 1 worker x 1 thread)
   answering sequential requests pinned to l-20 (20 steps of shapes-l, batch 1), against the
   bare `generate` call of the same variant and spec in this process; the difference is the
   server's cost per request (HTTP, validation, dispatch, pipes, PNG encoding, base64).
All torch work runs on 1 thread. Wall-clock figures on a shared machine: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from argus.config import VariantConfig
from argus.engine.edits import seeded_noise
from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import Pipeline, load_pipeline

PROMPTS = ["a red circle", "two blue squares"]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def diffusers_pipe(pipe: Pipeline):  # noqa: ANN201 - StableDiffusionPipeline
    """The plain diffusers pipeline over Argus' loaded components (shared weights)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
        scheduler=pipe.new_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    ).to("cpu")


def engine_vs_diffusers(resolution: int, steps: int, batch: int, repeats: int) -> dict:
    variant = VariantConfig(name="sd-tiny", source="random:latent-tiny", default_steps=steps,
                            resolution=resolution, guidance_scale=4.0, scheduler="ddim", eta=0.0)
    pipe = load_pipeline(variant)
    reference = diffusers_pipe(pipe)
    reference.set_progress_bar_config(disable=True)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    seeds = list(range(batch))
    specs = [GenerationSpec(prompt=p, seed=s, steps=steps, height=resolution, width=resolution,
                            guidance_scale=4.0) for p, s in zip(prompts, seeds, strict=True)]
    f = pipe.latent_factor
    latents = torch.cat([seeded_noise(s, (1, pipe.latent_channels, resolution // f,
                                          resolution // f)) for s in seeds])

    def ours() -> np.ndarray:
        return np.stack([r.image for r in generate(pipe, specs)])

    def theirs() -> np.ndarray:
        return reference(prompts, height=resolution, width=resolution, num_inference_steps=steps,
                         guidance_scale=4.0, negative_prompt=[""] * batch, eta=0.0,
                         latents=latents.clone(), output_type="np").images

    diff = float(np.abs(ours() - theirs()).max())  # also the warm-up
    argus_s, diffusers_s = [], []
    for _ in range(repeats):  # alternate, so drift on a shared machine hits both alike
        argus_s.append(timed(ours))
        diffusers_s.append(timed(theirs))
    a, d = statistics.median(argus_s), statistics.median(diffusers_s)
    return {"bench": "engine_vs_diffusers", "model": "random:latent-tiny",
            "resolution": resolution, "steps": steps, "batch": batch, "repeats": repeats,
            "argus_median_ms": round(a * 1e3, 2), "diffusers_median_ms": round(d * 1e3, 2),
            "ratio": round(a / d, 4), "goal_ratio": 1.03, "max_abs_pixel_diff": diff,
            "goal_diff": 1e-5, "met": a / d <= 1.03 and diff <= 1e-5}


def bare_engine_ms(requests: int) -> tuple[float, float]:
    """(median ms, median denoise ms) of `generate` for what the server runs at l-20."""
    from argus.defaults import default_config

    config = default_config()
    variant = next(v for v in config.variants if v.name == "shapes-l")
    pipe = load_pipeline(variant)
    walls, denoise = [], []
    for i in range(requests + 1):
        spec = GenerationSpec(prompt=PROMPTS[i % 2], seed=100 + i, steps=20,
                              height=variant.resolution, width=variant.resolution,
                              guidance_scale=variant.guidance_scale)
        start = time.perf_counter()
        result = generate(pipe, [spec])[0]
        if i:  # the first is the warm-up
            walls.append((time.perf_counter() - start) * 1e3)
            denoise.append(result.timings_ms["denoise"])
    return statistics.median(walls), statistics.median(denoise)


def server_ms(requests: int) -> dict:
    """Sequential l-20 requests to a fresh `argus serve` (1 worker x 1 thread)."""
    import tempfile

    import httpx
    import yaml

    from argus.bench.study import live_server, server_config

    walls, runs, queues = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(server_config(Path(tmp) / "cache")))
        with live_server("argus", config, Path(tmp) / "server.log") as url, \
                httpx.Client(base_url=url, timeout=120) as client:
            for i in range(requests + 1):
                body = {"prompt": PROMPTS[i % 2], "model": "l-20", "seed": 100 + i,
                        "response_format": "b64_json"}
                start = time.perf_counter()
                response = client.post("/v1/images/generations", json=body)
                wall = (time.perf_counter() - start) * 1e3
                response.raise_for_status()
                timings = response.json()["data"][0]["argus"]["timings_ms"]
                if i:
                    walls.append(wall)
                    runs.append(timings["run"])
                    queues.append(timings["queue"])
    return {"http_median_ms": statistics.median(walls), "run_median_ms": statistics.median(runs),
            "queue_median_ms": statistics.median(queues)}


def server_vs_engine(requests: int) -> dict:
    bare, denoise = bare_engine_ms(requests)
    served = server_ms(requests)
    http = served["http_median_ms"]
    return {"bench": "server_vs_engine", "level": "l-20 (shapes-l, 20 steps, batch 1, 32 px)",
            "requests": requests, "bare_engine_median_ms": round(bare, 1),
            "bare_denoise_median_ms": round(denoise, 1),
            "http_median_ms": round(http, 1),
            "server_run_median_ms": round(served["run_median_ms"], 1),
            "server_queue_median_ms": round(served["queue_median_ms"], 1),
            "overhead_ms": round(http - bare, 1), "overhead_ratio": round(http / bare, 3),
            "outside_run_ms": round(http - served["run_median_ms"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for resolution, steps, batch in ((32, 20, 1), (32, 20, 4), (128, 20, 1), (128, 20, 4)):
        print(json.dumps(engine_vs_diffusers(resolution, steps, batch, args.repeats)), flush=True)
    if not args.skip_server:
        print(json.dumps(server_vs_engine(args.requests)), flush=True)


if __name__ == "__main__":
    main()
