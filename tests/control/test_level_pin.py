"""`model: <level name>` pins that exact level: two levels of one variant and step count that
differ only in their feature cache are told apart; a variant name keeps pinning the variant's
home level, and a cache level's name its variant and steps."""

from __future__ import annotations

import pytest

from argus.api.schemas import ImageGenerationBody, to_generation_request
from argus.config import ArgusConfig, parse_config
from argus.control.builtin import profile_from_config
from argus.control.plane import ControlPlane
from argus.types import Request, RequestStatus


@pytest.fixture(scope="module")
def config() -> ArgusConfig:
    return parse_config({
        "variants": [{"name": "flux", "source": "random:flux-tiny", "default_steps": 20,
                      "resolution": 32}],
        "levels": [
            {"name": "flux-20", "variant": "flux", "steps": 20},
            {"name": "flux-20-fbc", "variant": "flux", "steps": 20, "feature_cache": "fbc:0.2"},
            {"name": "flux-20-ts", "variant": "flux", "steps": 20,
             "feature_cache": "taylorseer:3:2"},
            {"name": "flux-20-k5", "variant": "flux", "steps": 20, "cache_k": 5},
            {"name": "flux-10", "variant": "flux", "steps": 10},
        ],
        "server": {"slo_s": 60.0, "queue_capacity": 100},
    })


def admit(config: ArgusConfig, model: str, **body: object) -> Request:
    """The request `model` makes, as the API resolves it, admitted by a fresh plane."""
    spec = to_generation_request(ImageGenerationBody(prompt="a red circle", model=model, **body),
                                 config)
    plane = ControlPlane(config, profile_from_config(config), num_workers=1)
    plane.tick(0.0)
    request = Request(spec.prompt, 0.0, 60.0, pinned_variant=spec.pinned_variant,
                      pinned_steps=spec.pinned_steps, pinned_level=spec.pinned_level,
                      requested_steps=spec.requested_steps)
    return plane.admit(request, 0.0)


@pytest.mark.parametrize("level", ["flux-20", "flux-20-fbc", "flux-20-ts", "flux-10"])
def test_a_level_name_pins_that_level(config: ArgusConfig, level: str) -> None:
    served = admit(config, level)
    assert served.status == RequestStatus.QUEUED
    assert served.level == level and served.run_steps is None


def test_a_variant_name_pins_its_home_level(config: ArgusConfig) -> None:
    assert admit(config, "flux").level == "flux-20"


def test_a_cache_level_name_pins_its_variant_and_steps(config: ArgusConfig) -> None:
    """A resume needs a cache hit that no request can be promised."""
    assert admit(config, "flux-20-k5").level == "flux-20"


def test_a_feature_cache_level_runs_an_asked_step_count_with_its_cache(
    config: ArgusConfig,
) -> None:
    served = admit(config, "flux-20-fbc", num_inference_steps=12)
    assert served.level == "flux-20-fbc" and served.run_steps == 12


def test_a_plain_level_with_another_step_count_runs_that_count_exactly(
    config: ArgusConfig,
) -> None:
    """Today's behaviour: the variant's level of that count, else its home level overridden."""
    assert admit(config, "flux-20", num_inference_steps=10).level == "flux-10"
    served = admit(config, "flux-20", num_inference_steps=15)
    assert served.level == "flux-20" and served.run_steps == 15
