"""The dispatcher's cache hook (`CacheServing`) on real runtime messages, without a server."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from argus.cache import ApproximateCache, EmbedderNotReady, band_k
from argus.cache.serving import BackgroundEmbedder, CacheServing, embedding_variant
from argus.config import ArgusConfig, parse_config
from argus.runtime.base import GenerationRequest
from argus.runtime.messages import Job, JobDone
from argus.types import Request

PROMPT = "a red circle above a blue square"
SIMILAR = "a red circle below a blue square"


def hook_config(cache_dir: Path) -> ArgusConfig:
    return parse_config({
        "variants": [{"name": "tiny", "source": "random:pixel-small", "default_steps": 10,
                      "resolution": 32, "guidance_scale": 3.0}],
        "levels": [
            {"name": "full", "variant": "tiny", "steps": 10},
            {"name": "fast", "variant": "tiny", "steps": 4},
            {"name": "k3", "variant": "tiny", "steps": 10, "cache_k": 3},
            {"name": "k5", "variant": "tiny", "steps": 10, "cache_k": 5},
        ],
        "cache": {"dir": str(cache_dir)},
    })


@pytest.fixture
def hook(tmp_path: Path, clip_embed) -> CacheServing:
    config = hook_config(tmp_path / "cache")
    cache = ApproximateCache(config, clip_embed, registry=CollectorRegistry())
    yield CacheServing(config, cache)
    cache.close()


def serve(hook: CacheServing, prompt: str, level: str, seed: int = 1, n: int = 1,
          tenant: str = "alice", **spec_fields: object) -> tuple[Job, object, Request]:
    """annotate -> prepare as the dispatcher does; returns (job sent, cache info, request)."""
    spec = GenerationRequest(prompt=prompt, seed=seed, n=n, tenant=tenant, **spec_fields)
    request = Request(prompt=prompt, arrival_s=0.0, deadline_s=60.0, n=n, tenant=tenant,
                      seed=seed, no_approximation=bool(spec_fields.get("no_approximation")))
    hook.annotate(request, spec)
    request.level = level
    config_level = hook.config.level(level)
    job = Job(request_id=request.request_id, prompt=prompt, seed=seed, steps=config_level.steps,
              height=32, width=32, guidance_scale=3.0, n=n)
    job, info = hook.prepare(request, job, config_level)
    return job, info, request


def complete(hook: CacheServing, job: Job, request: Request) -> None:
    """The worker's answer: latents at the asked steps, then the hook stores them."""
    rng = np.random.default_rng(job.seed)
    captured = tuple(
        {k: rng.standard_normal((12, 16, 16)).astype(np.float32) for k in job.capture_steps}
        for _ in range(job.n)
    )
    done = JobDone(worker_id=0, request_id=job.request_id, images_png=(), captured=captured,
                   steps_run=job.steps - job.start_step)
    hook.store(request, job, done)
    assert hook.cache.flush()


def test_miss_at_full_steps_captures_band_steps_and_is_stored(hook: CacheServing):
    job, info, request = serve(hook, PROMPT, "full")
    assert not info.hit and job.start_step == 0 and job.capture_steps == (1, 2, 3, 4, 5)
    complete(hook, job, request)
    assert len(hook.cache) == 1


def test_step_reduced_runs_are_stored_under_their_own_steps(hook: CacheServing):
    job, _, request = serve(hook, PROMPT, "fast", seed=2)
    assert job.capture_steps == (1, 2)  # the bands scaled to 4 steps
    complete(hook, job, request)
    assert len(hook.cache) == 1
    job, info, _ = serve(hook, PROMPT, "fast", seed=2)
    assert info.hit and (job.steps, job.start_step) == (4, 2)


def test_resumed_runs_are_not_stored(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4)))
    job, info, request = serve(hook, SIMILAR, "k5", seed=9)
    assert info.hit and job.capture_steps == ()
    complete(hook, job, request)
    assert len(hook.cache) == 1


def test_exact_repeat_resumes_at_full_steps_even_on_a_reduced_level(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4)))
    job, info, _ = serve(hook, PROMPT, "fast", seed=4)  # the plane chose 4 steps under load
    assert info.hit and info.k == 5 and info.similarity == 1.0
    assert (job.steps, job.start_step, job.capture_steps) == (10, 5, ())
    assert job.start_latents is not None and job.start_latents[0].shape == (12, 16, 16)


def test_similar_hit_is_capped_by_the_level(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4)))
    similarity = float(hook.cache.embed(PROMPT) @ hook.cache.embed(SIMILAR))
    band = band_k(similarity, 10, hook.cache.config)
    assert band >= 3
    job, info, request = serve(hook, SIMILAR, "k5", seed=9)
    assert request.cache_similarity == pytest.approx(similarity, abs=1e-5)
    assert info.hit and info.k == band == job.start_step
    _, capped, _ = serve(hook, SIMILAR, "k3", seed=9)
    assert capped.hit and capped.k == 3
    job, none, _ = serve(hook, SIMILAR, "full", seed=9)  # a level without caching
    assert not none.hit and job.start_step == 0


def test_high_quality_requests_get_exact_repeats_but_no_similar_hits(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4)))
    _, exact, _ = serve(hook, PROMPT, "k5", seed=4, no_approximation=True)
    assert exact.hit and exact.k == 5
    _, similar, _ = serve(hook, SIMILAR, "k5", seed=9, no_approximation=True)
    assert not similar.hit


def test_n_images_resume_only_if_every_seed_was_stored(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4, n=2)))
    assert len(hook.cache) == 2
    job, info, _ = serve(hook, PROMPT, "full", seed=4, n=2)
    assert info.hit and job.start_step == 5 and len(job.start_latents) == 2
    _, shifted, _ = serve(hook, PROMPT, "full", seed=5, n=2)  # seeds 5, 6: 6 never stored
    assert not shifted.hit


def test_tenants_do_not_see_each_other(hook: CacheServing):
    complete(hook, *_job_and_request(serve(hook, PROMPT, "full", seed=4)))
    _, info, request = serve(hook, PROMPT, "k5", seed=4, tenant="bob")
    assert not info.hit and request.cache_similarity is None


def test_background_embedder_misses_until_loaded_then_embeds(clip_embed):
    release = threading.Event()

    def load():
        release.wait(10)
        return clip_embed

    embedder = BackgroundEmbedder(load)
    with pytest.raises(EmbedderNotReady):
        embedder([PROMPT])
    release.set()
    assert embedder.wait(10)
    np.testing.assert_allclose(embedder([PROMPT]), clip_embed([PROMPT]))


def test_embedding_variant_is_the_cache_levels_variant(tmp_path: Path):
    assert embedding_variant(hook_config(tmp_path)).name == "tiny"


def _job_and_request(served: tuple[Job, object, Request]) -> tuple[Job, Request]:
    job, _, request = served
    return job, request


def test_a_failing_encoder_means_misses_not_errors(tmp_path: Path):
    def broken(prompts):
        raise RuntimeError("encoder exploded")

    config = hook_config(tmp_path / "cache")
    cache = ApproximateCache(config, broken, registry=CollectorRegistry())
    try:
        hook = CacheServing(config, cache)
        job, info, request = serve(hook, PROMPT, "k5")
        assert not info.hit and request.cache_similarity is None and job.start_step == 0
        complete(hook, job, request)  # the store needs an embedding: dropped, not raised
        assert len(cache) == 0
        assert cache.metrics.registry.get_sample_value(
            "argus_cache_stores_total", {"outcome": "error"}) == 1
    finally:
        cache.close()
