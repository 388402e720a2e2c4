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


@pytest.fixture(scope="session")
def sdxl_pipe() -> Pipeline:
    return load_pipeline(tiny_variant("sdxl-tiny"))


@pytest.fixture(params=["pixel", "latent", "sdxl"])
def pipe(request: pytest.FixtureRequest) -> Pipeline:
    """Pixel-space (pixel-unshuffle, pooled class embedding), SD-style VAE latents, and
    SDXL-class (two text encoders, `text_time` added conditioning)."""
    return request.getfixturevalue(f"{request.param}_pipe")
