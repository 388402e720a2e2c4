"""`argus profile` measures feature-cache levels like steps levels: the distribution of full
transformer steps per prompt, service time costed at its upper quantile, no load cost."""

from __future__ import annotations

import pytest

from argus.config import parse_config
from argus.control.levels import LevelTable
from argus.control.steps import StepModel
from argus.profiling import ProfileSpec, measure_profile, upper_quantile

PROMPTS = ["a red circle", "two blue squares", "a small green triangle above a red square",
           "three yellow circles"]


def test_upper_quantile_is_nearest_rank() -> None:
    assert upper_quantile([3, 1, 2, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert upper_quantile([5], 0.9) == 5
    assert upper_quantile([2, 8], 0.5) == 2


@pytest.fixture(scope="module")
def profile():  # noqa: ANN201 - a Profile
    config = parse_config({
        "variants": [{"name": "flux", "source": "random:flux-tiny", "default_steps": 8,
                      "resolution": 32, "guidance_scale": 3.5}],
        "levels": [{"name": "flux-8", "variant": "flux", "steps": 8},
                   {"name": "flux-8-fbc", "variant": "flux", "steps": 8,
                    "feature_cache": "fbc:0.3"}],
    })
    spec = ProfileSpec(config=config, prompts=PROMPTS, batch_sizes=[1, 2], repeats=1)
    return measure_profile(spec, log=lambda _: None)


def test_feature_cache_level_records_its_computed_steps(profile) -> None:  # noqa: ANN001
    """Every prompt's full transformer steps are recorded; the cache skipped some."""
    level = profile.level("flux-8-fbc")
    assert level.feature_cache == "fbc:0.3"
    assert sum(level.computed_steps.values()) == len(PROMPTS)
    assert max(level.computed_steps) <= 8 and min(level.computed_steps) < 8
    assert profile.level("flux-8").computed_steps == {}
    assert profile.full_level == "flux-8"


def test_feature_cache_level_is_a_level_not_a_step_count(profile) -> None:  # noqa: ANN001
    """The planner's table carries it; the step ladder (exact step counts) does not use it."""
    table = LevelTable.build(profile, slo_s=10.0)
    fc = table.index["flux-8-fbc"]
    assert table.feature_cache[fc] == "fbc:0.3" and table.steps[fc] == 8
    assert StepModel(table).home[0] == table.index["flux-8"]
