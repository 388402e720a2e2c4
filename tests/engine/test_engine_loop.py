"""The denoising loop: resume at step K, capture, callbacks, cancel, batching, determinism."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from engine_helpers import tiny_variant

from argus.engine.generate import (
    GenerationCancelled,
    GenerationSpec,
    embed_prompts,
    generate,
)
from argus.engine.pipeline import Pipeline

STEPS = 8


def spec(prompt: str = "a red circle", seed: int = 7, **overrides: object) -> GenerationSpec:
    fields: dict = {
        "prompt": prompt,
        "seed": seed,
        "steps": STEPS,
        "height": 32,
        "width": 32,
        "guidance_scale": 3.0,
    }
    fields.update(overrides)
    return GenerationSpec(**fields)


def run_one(pipe: Pipeline, s: GenerationSpec):
    return generate(pipe, [s])[0]


@pytest.mark.parametrize("k", [1, 4])
def test_resume_from_own_latents_equals_full_run(pipe: Pipeline, k: int) -> None:
    """Same prompt and seed resumed at step K from its captured latents = the uninterrupted run."""
    full = run_one(pipe, spec(capture_steps=(k,)))
    assert set(full.captured) == {k}
    resumed = run_one(pipe, spec(start_step=k, start_latents=full.captured[k]))
    assert resumed.steps_run == STEPS - k
    assert np.abs(resumed.image - full.image).max() <= 1e-5


def test_resume_with_another_prompt_differs(pixel_pipe: Pipeline) -> None:
    """The resumed steps use the new prompt's conditioning (the approximate-cache case)."""
    full = run_one(pixel_pipe, spec(capture_steps=(3,)))
    other = run_one(
        pixel_pipe, spec("a blue square", start_step=3, start_latents=full.captured[3])
    )
    assert np.abs(other.image - full.image).max() > 1e-3


def test_output_is_float_image_in_unit_range(pipe: Pipeline) -> None:
    result = run_one(pipe, spec(height=32, width=48, capture_steps=(0, STEPS)))
    assert result.image.shape == (32, 48, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert set(result.captured) == {0, STEPS}
    assert {"encode", "denoise", "decode", "total"} <= set(result.timings_ms)


def test_same_seed_same_image_other_seed_differs(pixel_pipe: Pipeline) -> None:
    a, b = run_one(pixel_pipe, spec(seed=1)), run_one(pixel_pipe, spec(seed=1))
    c = run_one(pixel_pipe, spec(seed=2))
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image - c.image).max() > 1e-3


def test_batch_matches_individual_runs(pipe: Pipeline) -> None:
    """An image depends on its own seed and prompt only, not on its batch mates."""
    specs = [spec("a red circle", 1), spec("two green squares", 2), spec("", 3)]
    batched = generate(pipe, specs)
    for s, result in zip(specs, batched, strict=True):
        assert np.abs(result.image - run_one(pipe, s).image).max() <= 1e-5


def test_callback_every_step_and_cancel(pixel_pipe: Pipeline) -> None:
    calls: list[tuple[int, int]] = []
    generate(pixel_pipe, [spec()], lambda step, total: calls.append((step, total)) or True)
    assert calls == [(i, STEPS) for i in range(1, STEPS + 1)]

    seen: list[int] = []

    def stop_after_three(step: int, total: int) -> bool:
        seen.append(step)
        return step < 3

    with pytest.raises(GenerationCancelled) as stopped:
        generate(pixel_pipe, [spec()], stop_after_three)
    assert stopped.value.step == 3 and seen == [1, 2, 3]


def test_resumed_run_reports_absolute_steps(pixel_pipe: Pipeline) -> None:
    full = run_one(pixel_pipe, spec(capture_steps=(5,)))
    calls: list[int] = []
    generate(
        pixel_pipe,
        [spec(start_step=5, start_latents=full.captured[5])],
        lambda step, total: calls.append(step) or True,
    )
    assert calls == list(range(6, STEPS + 1))


def test_concurrent_generations_do_not_share_scheduler_state(pixel_pipe: Pipeline) -> None:
    """Two threads with different step counts give exactly their serial results."""
    short, long = spec(steps=3), spec(steps=STEPS)
    expected = [run_one(pixel_pipe, short).image, run_one(pixel_pipe, long).image]
    got: dict[int, np.ndarray] = {}

    def work(i: int, s: GenerationSpec) -> None:
        got[i] = run_one(pixel_pipe, s).image

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate([short, long])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pixel_pipe.new_scheduler() is not pixel_pipe.new_scheduler()
    for i in range(2):
        assert np.abs(got[i] - expected[i]).max() <= 1e-5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([spec(), spec(steps=4)], "incompatible"),
        ([spec(height=30, width=30)], "multiple"),
        ([spec(start_step=2)], "start_latents"),
        ([spec(start_step=STEPS)], "start_step"),
        ([], "empty"),
    ],
)
def test_invalid_batches_are_refused(pixel_pipe: Pipeline, bad: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(pixel_pipe, bad)


def test_embed_prompts_unit_norm_and_stable(pixel_pipe: Pipeline) -> None:
    keys = embed_prompts(pixel_pipe, ["a red circle", "a red circle", "three blue squares"])
    assert keys.dtype == np.float32 and keys.shape == (3, 32)
    assert np.allclose(np.linalg.norm(keys, axis=1), 1.0, atol=1e-5)
    assert np.allclose(keys[0], keys[1]) and not np.allclose(keys[0], keys[2])


def test_stochastic_ddim_is_seeded_batch_independent_and_resumable(pixel_pipe: Pipeline) -> None:
    """eta > 0 draws fresh noise every step from the seed and step index: the image still
    depends on its own seed only, and a resume at step K reproduces the full run."""
    noisy = dataclasses.replace(pixel_pipe, eta=1.0)
    first = spec("a red circle", 1, capture_steps=(4,))
    batched = generate(noisy, [first, spec("two green squares", 2)])[0]
    alone = run_one(noisy, first)
    assert np.abs(batched.image - alone.image).max() <= 1e-5
    assert np.abs(alone.image - run_one(pixel_pipe, first).image).max() > 1e-3
    resumed = run_one(noisy, spec("a red circle", 1, start_step=4,
                                  start_latents=alone.captured[4]))
    assert np.abs(resumed.image - alone.image).max() <= 1e-5


@pytest.mark.parametrize("steps", [2, 3, 5, 10])
def test_full_eta_stays_finite_on_short_schedules(pixel_pipe: Pipeline, steps: int) -> None:
    """At eta = 1 the first DDIM step of a short trailing schedule has zero room for the
    deterministic direction; rounding must not turn it into NaN."""
    noisy = dataclasses.replace(pixel_pipe, eta=1.0)
    assert np.isfinite(run_one(noisy, spec(steps=steps)).image).all()


def test_eta_needs_ddim() -> None:
    with pytest.raises(ValueError, match="eta .* needs scheduler ddim"):
        tiny_variant(scheduler="euler", eta=0.5)
    assert tiny_variant(eta=1.0).eta == 1.0
