"""The built-in `a800-flux` profile (modelled FLUX-class cluster, published feature-cache and
step-reduction numbers): feature-cache levels are what the planner turns to under load, per
prompt, and Argus beats clipper-ha's quality-weighted goodput there."""

from __future__ import annotations

import numpy as np
import pytest

from argus.baselines.compare import compare, full_quality_capacity
from argus.control.builtin import resolve_profile
from argus.control.builtin_flux import COST_QUANTILE, STEPS, histogram_quantile
from argus.control.profile import Profile
from argus.profiling import COST_QUANTILE as PROFILER_QUANTILE
from argus.sim.run import SimulationSpec

WORKERS = 8
DURATION_S = 900.0


@pytest.fixture(scope="module")
def profile() -> Profile:
    return resolve_profile("a800-flux")


@pytest.fixture(scope="module")
def runs() -> dict[float, dict]:
    capacity = full_quality_capacity("a800-flux", WORKERS)
    return {
        load: compare(SimulationSpec(trace="poisson", rate=load * capacity, workers=WORKERS,
                                     duration_s=DURATION_S, profile="a800-flux"),
                      policies=("argus", "clipper-ha"), with_oracle=False).results()["policies"]
        for load in (0.5, 2.0)
    }


def feature_share(result: dict, profile: Profile) -> float:
    names = {lv.name for lv in profile.levels if lv.feature_cache}
    return sum(share for name, share in result["level_share"].items() if name in names)


def test_published_numbers_and_costing(profile: Profile) -> None:
    """ImageReward relative to 1.041; a dynamic cache is costed at the profiler's quantile of
    its computed steps, never below its published mean speed."""
    fbc, steps10 = profile.level("flux-fbc-2.7x"), profile.level("flux-10")
    assert fbc.mean_quality == pytest.approx(1.007 / 1.041, abs=1e-4)
    assert steps10.mean_quality == pytest.approx(0.945 / 1.041, abs=1e-4)
    assert COST_QUANTILE == PROFILER_QUANTILE
    q = histogram_quantile(fbc.computed_steps)
    assert q > STEPS / 2.66
    assert fbc.service_time(1) == pytest.approx(18.0 / 2.66 * q / (STEPS / 2.66), rel=1e-3)


def test_the_right_level_depends_on_the_prompt(profile: Profile) -> None:
    """Caching beats fewer steps on the mean, but complex prompts lose more under it: for some
    prompts the slower steps level is the better one."""
    fbc = np.array([p.quality["flux-fbc-2.7x"] for p in profile.prompts])
    steps17 = np.array([p.quality["flux-17"] for p in profile.prompts])
    assert fbc.mean() > steps17.mean()
    assert 0.02 < np.mean(steps17 > fbc) < 0.3


def test_the_planner_turns_to_feature_caching_under_load(
    runs: dict[float, dict], profile: Profile
) -> None:
    assert feature_share(runs[2.0]["argus"], profile) > 0.6
    assert feature_share(runs[2.0]["argus"], profile) > feature_share(runs[0.5]["argus"], profile)


def test_argus_beats_clipper_ha_on_quality_goodput_under_load(runs: dict[float, dict]) -> None:
    argus, ha = runs[2.0]["argus"], runs[2.0]["clipper-ha"]
    assert argus["quality_goodput_rps"] > 1.5 * ha["quality_goodput_rps"]
    assert argus["slo_violation_ratio"] < ha["slo_violation_ratio"]
