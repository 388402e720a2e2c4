"""x0 previews: decoded at the asked steps only, leaving the final image unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import tiny_variant

from argus.engine.generate import GenerationSpec, generate, preview_steps
from argus.engine.pipeline import Pipeline, load_pipeline


def spec(seed: int, previews: tuple[int, ...] = (), steps: int = 4) -> GenerationSpec:
    return GenerationSpec("a red circle", seed, steps, 32, 32, guidance_scale=3.0,
                          preview_steps=previews)


def run_with_previews(
    pipe: Pipeline, specs: list[GenerationSpec]
) -> tuple[list[np.ndarray], dict[int, dict[int, np.ndarray]]]:
    got: dict[int, dict[int, np.ndarray]] = {}
    results = generate(pipe, specs, preview=lambda step, images: got.setdefault(step, images))
    return [r.image for r in results], got


def test_previews_at_asked_steps_and_final_image_unchanged(pipe: Pipeline) -> None:
    plain = generate(pipe, [spec(1), spec(2)])
    images, got = run_with_previews(pipe, [spec(1, (1, 3)), spec(2, (3,))])
    assert sorted(got) == [1, 3]
    assert sorted(got[1]) == [0] and sorted(got[3]) == [0, 1]
    for preview in (got[1][0], got[3][0], got[3][1]):
        assert preview.shape == (32, 32, 3) and preview.dtype == np.float32
        assert np.isfinite(preview).all() and 0.0 <= preview.min() <= preview.max() <= 1.0
    for image, reference in zip(images, plain, strict=True):
        np.testing.assert_allclose(image, reference.image, atol=1e-5)


def test_last_step_x0_is_the_final_image(pixel_pipe: Pipeline) -> None:
    """DDIM's x0 at the final step is what the final step lands on (eta 0, pixel space)."""
    images, got = run_with_previews(pixel_pipe, [spec(5, (4,))])
    np.testing.assert_allclose(got[4][0], images[0], atol=1e-4)
    _, early = run_with_previews(pixel_pipe, [spec(5, (1,))])
    assert not np.allclose(early[1][0], images[0], atol=1e-3)  # a coarser guess early on


@pytest.mark.parametrize("scheduler", ["dpm", "euler"])
def test_previews_on_other_schedulers(scheduler: str) -> None:
    """DPM-Solver's step output has no x0: it is computed from the schedule's alphas."""
    pipe = load_pipeline(tiny_variant("pixel-small", scheduler=scheduler))
    images, got = run_with_previews(pipe, [spec(3, (2, 4))])
    assert sorted(got) == [2, 4]
    np.testing.assert_allclose(got[4][0], images[0], atol=1e-4)


def test_no_preview_callback_no_previews(pixel_pipe: Pipeline) -> None:
    results = generate(pixel_pipe, [spec(1, (1, 2))])  # asked, but nobody listens: no decode
    assert results[0].image.shape == (32, 32, 3)


@pytest.mark.parametrize(("count", "start", "steps", "expected"), [
    (2, 0, 4, (1, 2)), (3, 0, 20, (5, 10, 15)), (2, 5, 10, (6, 8)), (3, 0, 2, (1,)),
    (0, 0, 10, ()), (1, 0, 1, ()),
])
def test_preview_steps_evenly_spaced_before_the_end(
    count: int, start: int, steps: int, expected: tuple[int, ...]
) -> None:
    assert preview_steps(count, start, steps) == expected


def test_worker_sends_previews_of_the_jobs_that_ask() -> None:
    """In one engine batch, only the job with `partial_images` gets PNGs, one per image, on
    the Progress events of its preview steps."""
    from argus.config import parse_config
    from argus.defaults import RANDOM_FAMILY
    from argus.runtime.messages import Job, Progress, RunBatch
    from argus.runtime.worker import Worker

    def job(request_id: str, n: int, partial_images: int) -> Job:
        return Job(request_id, "a red circle", 1, 5, 32, 32, 3.0, n=n,
                   partial_images=partial_images)

    events: list = []
    worker = Worker(0, parse_config(RANDOM_FAMILY))
    batch = RunBatch(1, "tiny-small", (job("plain", 1, 0), job("previewed", 2, 2)))
    worker.run_batch(batch, events.append, set)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.step for e in progress] == [1, 2, 3, 4, 5]
    with_previews = {e.step: e.previews for e in progress if e.previews}
    assert sorted(with_previews) == [1, 3]
    for previews in with_previews.values():
        assert list(previews) == ["previewed"] and len(previews["previewed"]) == 2
        assert all(png.startswith(b"\x89PNG") for png in previews["previewed"])
