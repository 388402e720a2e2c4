"""`argus compare --ray`: each policy's simulation as a Ray task on one local Ray (two CPUs) for
the module, with the same results.json as the local run of the same seed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from argus.baselines.ray_runner import ray_connection  # noqa: E402
from argus.cli import main  # noqa: E402

ARGS = ["compare", "--trace", "poisson", "--load", "1.5", "--workers", "8", "--duration", "60",
        "--seed", "4", "--policies", "argus,clipper-ha,random", "--no-plots"]
TIMING = {"wall_s", "solve_s"}
"""Wall-clock fields, which differ from run to run."""


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray unless one is connected already (tests/runtime/test_ray_pool.py's cluster
    in the same session); shut down only if started here."""
    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, address="local", include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def without_timing(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def run_compare(out: Path, *extra: str) -> dict:
    assert main([*ARGS, "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


def test_compare_on_ray_matches_the_local_run(local_ray: None, tmp_path: Path) -> None:
    local = run_compare(tmp_path / "local")
    on_ray = run_compare(tmp_path / "ray", "--ray")
    assert ray.is_initialized()  # the CLI kept the connection it found
    assert list(on_ray["policies"]) == ["argus", "clipper-ha", "random", "oracle"]
    assert on_ray["setup"] == local["setup"]
    for name, fields in local["policies"].items():
        theirs = on_ray["policies"][name]
        assert set(theirs) == set(fields), name
        for key, value in fields.items():
            if key not in TIMING:
                assert without_timing(theirs[key]) == without_timing(value), (name, key)
    assert local["policies"]["argus"]["requests"] > 100


def test_ray_connection_keeps_a_connected_ray(local_ray: None) -> None:
    with ray_connection("auto"):  # connected already: no second init, no shutdown
        assert ray.is_initialized()
    assert ray.is_initialized()


def test_ray_address_needs_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--out", str(tmp_path), "--ray-address", "auto"]) == 2
    assert "--ray-address needs --ray" in capsys.readouterr().err
