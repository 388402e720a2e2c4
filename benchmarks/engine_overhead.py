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
from argus.runtime.worker import set_torch_threads

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
    for i in range(repeats):  # alternate, first one then the other: drift hits both alike
        if i % 2:
            diffusers_s.append(timed(theirs))
            argus_s.append(timed(ours))
        else:
            argus_s.append(timed(ours))
            diffusers_s.append(timed(theirs))
    a, d = statistics.median(argus_s), statistics.median(diffusers_s)
    return {"bench": "engine_vs_diffusers", "model": "random:latent-tiny",
            "resolution": resolution, "steps": steps, "batch": batch, "repeats": repeats,
            "argus_median_ms": round(a * 1e3, 2), "diffusers_median_ms": round(d * 1e3, 2),
            "ratio": round(a / d, 4), "goal_ratio": 1.03, "max_abs_pixel_diff": diff,
            "goal_diff": 1e-5, "met": a / d <= 1.03 and diff <= 1e-5}


def shapes_l() -> tuple[Pipeline, VariantConfig]:
    from argus.defaults import default_config

    variant = next(v for v in default_config().variants if v.name == "shapes-l")
    return load_pipeline(variant), variant


def server_vs_engine(requests: int) -> dict:
    """Sequential l-20 requests to a fresh `argus serve` (1 worker x 1 thread), each followed by
    the bare `generate` call of the same spec here (alternated: drift hits both alike)."""
    import tempfile

    import httpx
    import yaml

    from argus.bench.study import live_server, server_config

    pipe, variant = shapes_l()
    http, run, bare, denoise = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(server_config(Path(tmp) / "cache")))
        with live_server("argus", config, Path(tmp) / "server.log") as url, \
                httpx.Client(base_url=url, timeout=120) as client:
            for i in range(requests + 1):  # the first round is the warm-up
                body = {"prompt": PROMPTS[i % 2], "model": "l-20", "seed": 100 + i,
                        "response_format": "b64_json"}
                start = time.perf_counter()
                response = client.post("/v1/images/generations", json=body)
                wall = time.perf_counter() - start
                response.raise_for_status()
                spec = GenerationSpec(prompt=body["prompt"], seed=body["seed"], steps=20,
                                      height=variant.resolution, width=variant.resolution,
                                      guidance_scale=variant.guidance_scale)
                start = time.perf_counter()
                result = generate(pipe, [spec])[0]
                if i:
                    http.append(wall * 1e3)
                    run.append(response.json()["data"][0]["argus"]["timings_ms"]["run"])
                    bare.append((time.perf_counter() - start) * 1e3)
                    denoise.append(result.timings_ms["denoise"])
    h, b = statistics.median(http), statistics.median(bare)
    return {"bench": "server_vs_engine", "level": "l-20 (shapes-l, 20 steps, batch 1, 32 px)",
            "requests": requests, "bare_engine_median_ms": round(b, 1),
            "bare_denoise_median_ms": round(statistics.median(denoise), 1),
            "http_median_ms": round(h, 1), "server_run_median_ms": round(statistics.median(run), 1),
            "overhead_ms": round(h - b, 1), "overhead_ratio": round(h / b, 3),
            "outside_run_median_ms": round(statistics.median(
                [x - y for x, y in zip(http, run, strict=True)]), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    set_torch_threads(1)  # as a worker does: 1 intra-op, 1 inter-op thread
    for resolution, steps, batch in ((32, 20, 1), (32, 20, 4), (128, 20, 1), (128, 20, 4)):
        print(json.dumps(engine_vs_diffusers(resolution, steps, batch, args.repeats)), flush=True)
    if not args.skip_server:
        print(json.dumps(server_vs_engine(args.requests)), flush=True)


if __name__ == "__main__":
    main()
