"""Tiny FLUX-class and SD3-class pipelines served over real HTTP (real worker processes, the
`argus serve` cache hook): cache resume is exact, and a feature-cache level is listed and
served on the loaded model."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from argus.config import ArgusConfig, parse_config
from argus.runtime.messages import Job, JobDone, RunBatch
from argus.runtime.worker import Worker

from .server_helpers import CacheServer, pixels

pytestmark = pytest.mark.slow

STEPS = 10
PROMPT = "a red circle above a blue square"


def flow_config(cache_dir: Path) -> ArgusConfig:
    """Both families at 10 steps, each with cache levels (K 1..5) and a First-Block-Cache
    level; `nirvana` serves an exact repeat at its band's K (5 of 10)."""
    variants, levels = [], []
    for name, guidance in (("flux", 3.5), ("sd3", 3.0)):
        variants.append({"name": name, "source": f"random:{name}-tiny", "default_steps": STEPS,
                         "resolution": 32, "guidance_scale": guidance})
        levels.append({"name": f"{name}-10", "variant": name, "steps": STEPS})
        levels += [{"name": f"{name}-10-k{k}", "variant": name, "steps": STEPS, "cache_k": k}
                   for k in range(1, 6)]
        levels.append({"name": f"{name}-10-fbc", "variant": name, "steps": STEPS,
                        "feature_cache": "fbc:0.2"})
    return parse_config({
        "variants": variants, "levels": levels,
        "server": {"workers": 1, "threads_per_worker": 1, "slo_s": 120.0},
        "control": {"policy": "nirvana"},
        "cache": {"dir": str(cache_dir)},
    })


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheServer]:
    running = CacheServer.start(flow_config(tmp_path_factory.mktemp("flow-cache")))
    assert running.hook.cache.embed_fn.wait(180), "the cache's text encoder did not load"
    yield running
    running.stop()


@pytest.mark.parametrize("variant", ["flux", "sd3"])
def test_repeat_resumes_from_the_cache_and_gives_the_same_image(
    server: CacheServer, variant: str
) -> None:
    """A repeat of a prompt and seed resumes at K = 5 from the stored latents and returns the
    same PNG as the full run."""
    first = server.generate(PROMPT, seed=5, user=variant, model=variant)
    assert first["argus"]["cache"]["hit"] is False
    assert first["argus"]["steps_run"] == STEPS
    repeat = server.generate(PROMPT, seed=5, user=variant, model=variant)
    assert repeat["argus"]["cache"]["hit"] is True and repeat["argus"]["cache"]["k"] == 5
    assert repeat["argus"]["steps_run"] == STEPS - 5
    np.testing.assert_array_equal(pixels(repeat), pixels(first))


def test_feature_cache_levels_are_listed(server: CacheServer) -> None:
    """/v1/models shows each feature-cache level with its setting."""
    models = {m["id"]: m["argus"] for m in server.client.get("/v1/models").json()["data"]}
    assert models["flux-10-fbc"]["feature_cache"] == "fbc:0.2"
    assert models["sd3-10-fbc"]["feature_cache"] == "fbc:0.2"
    assert models["flux-10"]["feature_cache"] == ""


def test_a_feature_cache_level_name_pins_that_level(server: CacheServer) -> None:
    """`model: flux-10-fbc` runs at that level, not at flux-10 (same variant and steps)."""
    served = server.generate("three green triangles", seed=11, user="pin", model="flux-10-fbc")
    assert served["argus"]["level"] == "flux-10-fbc"
    assert server.generate("three green triangles", seed=11, user="pin2",
                           model="flux-10")["argus"]["level"] == "flux-10"


@pytest.mark.parametrize("variant", ["flux", "sd3"])
def test_worker_runs_a_feature_cache_job_close_to_the_plain_one(variant: str) -> None:
    """A job carrying its level's feature cache reaches the engine through the worker: its image
    is close to, but not the same as, the plain job's (the cache skipped work)."""
    torch.set_num_threads(1)  # the worker runs in this process here
    config = flow_config(Path("unused"))
    worker = Worker(0, config)
    done: dict[str, JobDone] = {}

    def emit(event: object) -> None:
        if isinstance(event, JobDone):
            done[event.request_id] = event

    jobs = tuple(Job(request_id=fc or "plain", prompt="two blue squares", seed=9, steps=STEPS,
                     height=32, width=32, guidance_scale=3.0, feature_cache=fc)
                 for fc in ("", "fbc:0.2"))
    assert jobs[0].compatibility_key() != jobs[1].compatibility_key()
    worker.run_batch(RunBatch(1, variant, jobs), emit, lambda: set())
    plain, cached = (np.asarray(Image.open(io.BytesIO(done[j.request_id].images_png[0])),
                                dtype=float) for j in jobs)
    gap = np.abs(cached - plain).mean()
    assert 0 < gap < 8, gap  # mean absolute difference in 0-255 pixel values
