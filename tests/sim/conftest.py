"""Fixtures of the simulator tests: the shared trace data, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.sim.traces import default_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = default_data_dir()
    if not path.exists():
        pytest.skip(f"shared trace data not found at {path}")
    return path
