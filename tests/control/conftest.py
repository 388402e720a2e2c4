"""Fixtures of the control-plane tests."""

from __future__ import annotations

import pytest
from control_helpers import make_plane

from argus.control.plane import ControlPlane


@pytest.fixture
def sdxl_plane() -> ControlPlane:
    return make_plane()
