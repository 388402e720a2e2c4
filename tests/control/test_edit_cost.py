"""An edit (image-to-image, inpainting) costs the plane the share of its schedule it runs."""

from __future__ import annotations

import pytest
from control_helpers import two_level_profile

from argus.control.builtin import config_for_profile
from argus.control.plane import ControlPlane
from argus.types import Request, RequestStatus


def test_an_edit_is_costed_by_the_steps_it_runs() -> None:
    """strength 0.4: 0.4 of its level's cost, also for an exact step count (7 steps: 0.7), and
    at its own exact level (no approximation)."""
    profile = two_level_profile()
    config = config_for_profile(profile, server={"slo_s": 3.0, "queue_capacity": 1000})
    plane = ControlPlane(config, profile, num_workers=1)
    full = plane.admit(Request("p", 0.0, 3.0, no_approximation=True, run_fraction=0.4), 0.0)
    assert full.status == RequestStatus.QUEUED and full.level == "full"
    assert full.work_scale == pytest.approx(0.4)
    exact = plane.admit(Request("p", 0.0, 3.0, no_approximation=True, pinned_steps=7,
                                run_fraction=0.4), 0.0)
    assert exact.run_steps == 7 and exact.work_scale == pytest.approx(0.7 * 0.4)
    plain = plane.admit(Request("p", 0.0, 3.0, no_approximation=True), 0.0)
    assert plain.work_scale == 1.0
