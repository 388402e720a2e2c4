"""The live study (issue #14): each policy x trace x load runs on a real `argus serve` process
(`argus bench` against it, every image scored) and through `argus simulate` with the profile the
server uses, so the two can be compared cell by cell. Rendering lives in `study_report.py`.

Loads are multiples of the full-quality capacity, derived from the profile: `workers` / the full
level's batch-1 service time (one worker serving l-20 one request at a time)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import yaml

import argus.baselines  # noqa: F401 - registers the baseline policies for the simulator
from argus.bench.calibrate import speed_factor, write_scaled
from argus.bench.run import BenchSpec, run_bench
from argus.control.builtin import resolve_profile
from argus.control.profile import Profile
from argus.defaults import PREDICTOR_FILE, PROFILE_FILE, family_data
from argus.sim.run import SimulationSpec, simulate

SERVER_READY_S = 180.0


@dataclass(frozen=True)
class Cell:
    """One point of the study grid."""

    policy: str
    trace: str
    load: float
    """Multiple of the full-quality capacity (`capacity_rps`)."""

    @property
    def name(self) -> str:
        """File-safe and sortable: `poisson-1x-argus`, `bursty-sessions-0.5x-clipper-ha`."""
        return f"{self.trace.replace('+', '_')}-{self.load:g}x-{self.policy}"


def capacity_rps(profile: Profile, workers: int) -> float:
    """Requests per second the cluster sustains at full quality, one request per batch: each
    worker serves the full level at its batch-1 service time."""
    full = profile.level(profile.full_level)
    return workers / full.service_time_s[1]


def rate_for(load: float, capacity: float) -> float:
    return round(load * capacity, 4)


def grid(policies: list[str], traces: list[str], loads: list[float]) -> list[Cell]:
    """Cells ordered trace, load, policy: the policies of one workload run back to back, so the
    bench's reference cache (same prompts and seeds) is warm for all but the first."""
    return [Cell(p, t, x) for t in traces for x in loads for p in policies]


def server_config(cache_dir: Path, workers: int = 1, threads: int = 1) -> dict:
    """The embedded default (shapes family, its profile and trained predictor) pinned to
    `workers` x `threads`, with an approximate cache of its own (each cell starts cold, as the
    simulator does)."""
    return {
        **family_data(),
        "control": {"profile": str(PROFILE_FILE), "predictor": str(PREDICTOR_FILE)},
        "server": {"workers": workers, "threads_per_worker": threads},
        "cache": {"dir": str(cache_dir)},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen | None = None,
               timeout_s: float = SERVER_READY_S) -> None:
    """Poll `/ready` until 200; fails early when `server` (the process) has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"argus serve exited with {server.returncode} before /ready")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:g} s")


@contextmanager
def live_server(policy: str, config_file: Path, log: Path) -> Iterator[str]:
    """`argus serve --config FILE --policy P` as a process on a free loopback port; yields its
    URL and stops the whole process group afterwards."""
    port = free_port()
    argus = Path(sys.executable).with_name("argus")
    command = [str(argus), "serve", "--config", str(config_file), "--policy", policy,
               "--port", str(port), "--log-level", "warning"]
    with log.open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, server)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


@dataclass
class StudySpec:
    out: Path
    """Folder for cell JSONs (`cells/<name>.json`), server logs and the merged table."""
    duration_s: float = 60.0
    seed: int = 0
    workers: int = 1
    threads: int = 1
    ref_cache: Path | None = None
    """Bench reference cache shared by all cells (default `out/refs`)."""
    profile: Path = PROFILE_FILE
    predictor: Path = PREDICTOR_FILE


def simulate_cell(cell: Cell, rate: float, spec: StudySpec, slo_s: float | None = None) -> dict:
    """The cell's workload through the simulator, with the server's profile and predictor (and
    its SLO, when given); adds the quality-weighted goodput (the simulator's summary has none)."""
    records = []
    sim_spec = SimulationSpec(
        trace=cell.trace, rate=rate, workers=spec.workers, profile=str(spec.profile),
        policy=cell.policy, duration_s=spec.duration_s, seed=spec.seed,
        predictor=str(spec.predictor), slo_s=slo_s,
    )
    summary, _ = simulate(sim_spec, on_record=lambda _sim, record: records.append(record))
    summary["quality_weighted_goodput"] = round(sim_quality_weighted(records[0], spec.duration_s),
                                                4)
    return summary


def simulate_calibrated(result: dict, spec: StudySpec) -> dict | None:
    """The cell through the simulator with the profile's service times scaled by the speed the
    live server really ran at during the bench (`argus.bench.calibrate`), at the server's SLO;
    None when no batch could be timed."""
    profile = resolve_profile(str(spec.profile))
    factor = speed_factor(result["bench"]["records"], profile)
    if factor is None:
        return None
    folder = spec.out / "servers" / result["cell"]
    folder.mkdir(parents=True, exist_ok=True)
    scaled = write_scaled(profile, factor, folder / "profile-scaled.json")
    cell = Cell(result["policy"], result["trace"], result["load"])
    summary = simulate_cell(cell, result["rate_rps"], replace(spec, profile=scaled),
                            slo_s=result["bench"]["slo_s"])
    summary["speed_factor"] = round(factor, 3)
    return summary


def sim_quality_weighted(record: object, duration_s: float) -> float:
    """Sum of the relative quality of requests served within their deadline, per second."""
    import numpy as np

    served = record.level >= 0  # type: ignore[attr-defined]
    met = served & (record.finish <= record.deadline + 1e-9)  # type: ignore[attr-defined]
    return float(np.nansum(record.quality[met]) / duration_s)  # type: ignore[attr-defined]


def run_cell(cell: Cell, spec: StudySpec, progress: bool = False) -> dict:
    """Bench the cell on a fresh live server, then simulate it; writes and returns the cell's
    JSON ({cell, rate_rps, capacity_rps, bench, simulate})."""
    profile = resolve_profile(str(spec.profile))
    capacity = capacity_rps(profile, spec.workers)
    rate = rate_for(cell.load, capacity)
    work = spec.out / "servers" / cell.name
    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(server_config(work / "cache", spec.workers,
                                                        spec.threads)))
    bench_spec = BenchSpec(
        url="", trace=cell.trace, rate=rate, duration_s=spec.duration_s, seed=spec.seed,
        ref_cache=spec.ref_cache or spec.out / "refs", meta={"load": cell.load},
    )
    started = time.monotonic()
    with live_server(cell.policy, config_file, work / "server.log") as url:
        bench_spec.url = url
        bench = run_bench(bench_spec, progress=progress)
    shutil.rmtree(work / "cache", ignore_errors=True)  # the server's cache: ~10 MB a cell
    result = {
        "cell": cell.name, "policy": cell.policy, "trace": cell.trace, "load": cell.load,
        "rate_rps": rate, "capacity_rps": round(capacity, 4), "duration_s": spec.duration_s,
        "seed": spec.seed, "workers": spec.workers, "threads": spec.threads,
        "bench_wall_s": round(time.monotonic() - started, 1),
        "bench": bench, "simulate": simulate_cell(cell, rate, spec, slo_s=bench["slo_s"]),
    }
    result["simulate_calibrated"] = simulate_calibrated(result, spec)
    path = spec.out / "cells" / f"{cell.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_cells(out: Path) -> list[dict]:
    """Every cell JSON under `out/cells`, in name order."""
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
