"""Tiny seeded random-weight pipelines (no hub), built once per test session."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import tiny_variant

from argus.engine.pipeline import Pipeline, load_pipeline

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pixel_pipe() -> Pipeline:
    return load_pipeline(tiny_variant("pixel-small"))


@pytest.fixture(scope="session")
def latent_pipe() -> Pipeline:
    return load_pipeline(tiny_variant("latent-tiny"))


@pytest.fixture(params=["pixel", "latent"])
def pipe(request: pytest.FixtureRequest, pixel_pipe: Pipeline, latent_pipe: Pipeline) -> Pipeline:
    """Both latent layouts: pixel-space (pixel-unshuffle) and SD-style VAE latents."""
    return pixel_pipe if request.param == "pixel" else latent_pipe
