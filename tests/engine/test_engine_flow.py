"""Diffusion transformers (FLUX-class, SD3-class) with flow matching in Argus' own loop, and
feature caching switched per batch with diffusers' hooks."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import tiny_variant

from argus.config import LevelConfig
from argus.engine.flow import FlowPipeline
from argus.engine.generate import GenerationCancelled, GenerationSpec, embed_prompts, generate
from argus.engine.pipeline import Pipeline, load_pipeline
from argus.engine.variants import size_multiple

STEPS = 8


@pytest.fixture(scope="module", params=["flux-tiny", "sd3-tiny"])
def flow_pipe(request: pytest.FixtureRequest) -> FlowPipeline:
    pipe = load_pipeline(tiny_variant(request.param))
    assert isinstance(pipe, FlowPipeline)
    return pipe


def spec(prompt: str = "a red circle", seed: int = 1, **kw: object) -> GenerationSpec:
    fields: dict = {"guidance_scale": 3.0, **kw}
    return GenerationSpec(prompt, seed, STEPS, 32, 32, **fields)


def test_batch_images_depend_on_seed_only(flow_pipe: FlowPipeline) -> None:
    """An image is the same alone or in a batch; different seeds give different images."""
    pair = generate(flow_pipe, [spec(seed=1), spec("two blue squares", seed=2)])
    alone = generate(flow_pipe, [spec("two blue squares", seed=2)])[0]
    assert pair[0].image.shape == (32, 32, 3)
    assert np.abs(alone.image - pair[1].image).max() < 1e-5
    assert np.abs(pair[0].image - pair[1].image).max() > 1e-3
    assert pair[0].steps_run == pair[0].computed_steps == STEPS


@pytest.mark.parametrize("k", [1, 5])
def test_resume_from_own_latents_reproduces_full_run(flow_pipe: FlowPipeline, k: int) -> None:
    """Starting at step K from the run's own latents before K gives the full run to 1e-5."""
    full = generate(flow_pipe, [spec(capture_steps=(k, STEPS))])[0]
    resumed = generate(flow_pipe, [spec(start_step=k, start_latents=full.captured[k],
                                        capture_steps=(STEPS,))])[0]
    assert resumed.steps_run == STEPS - k
    assert np.abs(resumed.captured[STEPS] - full.captured[STEPS]).max() <= 1e-5
    assert np.abs(resumed.image - full.image).max() <= 1e-5


def test_resume_with_another_prompt_changes_the_image(flow_pipe: FlowPipeline) -> None:
    """A cache hit resumes a donor's latents with the new prompt's conditioning."""
    donor = generate(flow_pipe, [spec("one green triangle", capture_steps=(3,))])[0]
    hit = generate(flow_pipe, [spec(start_step=3, start_latents=donor.captured[3])])[0]
    assert np.abs(hit.image - donor.image).max() > 1e-4


def test_progress_and_cancel(flow_pipe: FlowPipeline) -> None:
    """The callback sees every step and can stop the run between steps."""
    seen: list[tuple[int, int]] = []
    generate(flow_pipe, [spec()], lambda s, n: seen.append((s, n)) or True)
    assert seen == [(i, STEPS) for i in range(1, STEPS + 1)]
    with pytest.raises(GenerationCancelled) as stop:
        generate(flow_pipe, [spec()], lambda s, n: s < 3)
    assert stop.value.step == 3


def test_previews_and_embeddings(flow_pipe: FlowPipeline) -> None:
    """x0 previews decode to images; prompt embeddings are unit vectors."""
    shown: dict[int, np.ndarray] = {}
    generate(flow_pipe, [spec(preview_steps=(4,))],
             preview=lambda step, images: shown.update({step: images[0]}))
    assert shown[4].shape == (32, 32, 3)
    emb = embed_prompts(flow_pipe, ["a red circle", "two blue squares"])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("cache", ["fbc:0.2", "taylorseer:2:2"])
def test_feature_cache_runs_fewer_forwards_and_stays_close(
    flow_pipe: FlowPipeline, cache: str
) -> None:
    """A feature-cache level computes fewer full transformer steps than its uncached twin, its
    image differs only a little, and switching back restores the exact uncached run."""
    plain = generate(flow_pipe, [spec(), spec(seed=2)])
    cached = generate(flow_pipe, [spec(feature_cache=cache), spec(seed=2, feature_cache=cache)])
    assert cached[0].computed_steps < plain[0].computed_steps == STEPS
    gap = max(np.abs(c.image - p.image).mean() for c, p in zip(cached, plain, strict=True))
    assert 0 < gap < 0.02
    again = generate(flow_pipe, [spec(), spec(seed=2)])
    assert again[0].computed_steps == STEPS
    assert np.abs(again[0].image - plain[0].image).max() == 0
    assert flow_pipe.cache.spec == ""


def test_feature_cache_state_resets_between_generations(flow_pipe: FlowPipeline) -> None:
    """Two runs under the same cache give the same image (no state leaks between batches)."""
    first = generate(flow_pipe, [spec(feature_cache="fbc:0.2")])[0]
    second = generate(flow_pipe, [spec(feature_cache="fbc:0.2")])[0]
    assert np.abs(first.image - second.image).max() == 0
    assert first.computed_steps == second.computed_steps


def test_cache_setting_is_part_of_the_batch_key(flow_pipe: FlowPipeline) -> None:
    """Specs with different feature caches cannot share a batch."""
    with pytest.raises(ValueError, match="incompatible"):
        generate(flow_pipe, [spec(), spec(feature_cache="fbc:0.2")])


def test_unet_refuses_a_feature_cache(pixel_pipe: Pipeline) -> None:
    with pytest.raises(ValueError, match="transformer"):
        generate(pixel_pipe, [spec(feature_cache="fbc:0.2", guidance_scale=1.0)])


def test_size_multiple_without_loading() -> None:
    """The front end knows a transformer variant's size multiple from its arch alone."""
    assert size_multiple(tiny_variant("flux-tiny")) == 4
    assert size_multiple(tiny_variant("sd3-tiny")) == 4


@pytest.mark.parametrize("bad", ["fbc", "fbc:x", "lru:1", "taylorseer:0:2", "fbc:-0.1"])
def test_bad_feature_cache_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValueError, match="feature cache"):
        LevelConfig(name="l", variant="v", steps=8, feature_cache=bad)


def test_transformer_refuses_an_edit_instead_of_ignoring_it(flow_pipe: FlowPipeline) -> None:
    """Edits are built for UNets only: a transformer variant must not answer with a plain
    text-to-image result (the worker reports the ValueError as the request's own 400)."""
    image = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="edits run on UNet variants only"):
        generate(flow_pipe, [spec(init_image=image, start_step=2)])
