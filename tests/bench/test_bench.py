"""`argus bench` end to end: a short open-loop replay against a live shapes server (one worker),
every image scored against the server's full-level reference; and the workload planning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import LiveServer

from argus.api import create_app
from argus.bench import BenchSpec, run_bench
from argus.bench.loadgen import request_body
from argus.bench.scoring import Reference, ReferenceCache
from argus.bench.workload import build_workload
from argus.cli import main
from argus.defaults import default_config
from argus.shapes.grammar import is_held_out, parse

SIM_FIELDS = (
    "requests", "served", "rejected", "unfinished", "slo_violation_ratio", "goodput_rps",
    "latency_p50_s", "latency_p99_s", "level_share", "mean_relative_quality", "quality_source",
    "rejection_reasons", "slo_s", "intervals", "trace", "rate_rps", "duration_s", "seed",
)
BENCH_FIELDS = (
    "measured_relative_quality", "predicted_relative_quality", "quality_weighted_goodput",
    "status_counts", "records", "scored_images", "referenced_images",
)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The embedded default (the shapes family when shipped) on one worker, one thread."""
    config = default_config(server={"workers": 1, "threads_per_worker": 1})
    running = LiveServer(create_app(config)).wait_ready()
    yield running
    running.stop()


@pytest.mark.timeout(240)
def test_short_poisson_replay_scores_every_image(server: LiveServer, tmp_path: Path) -> None:
    spec = BenchSpec(url=server.url, trace="poisson", rate=2.0, duration_s=4.0, seed=3,
                     ref_cache=tmp_path / "refs", plots=tmp_path / "plots")
    summary = run_bench(spec)
    assert set(SIM_FIELDS + BENCH_FIELDS) <= set(summary)
    records = summary["records"]
    assert summary["requests"] == len(records) > 0
    ok = [r for r in records if r["status"] == 200]
    assert summary["served"] == len(ok) > 0
    assert summary["status_counts"].get("200", 0) == len(ok)
    assert summary["scored_images"] == sum(r["n"] for r in ok)
    assert summary["referenced_images"] == summary["scored_images"]
    assert 0.0 <= summary["measured_relative_quality"] <= 2.0
    assert summary["mean_relative_quality"] == pytest.approx(
        100 * summary["measured_relative_quality"], abs=0.05)
    for r in ok:
        assert all(im["score"] is not None and im["level"] for im in r["images"])
        assert r["met_slo"] == (r["latency_s"] <= summary["slo_s"])
    met = sum(r["measured_relative_quality"] for r in ok if r["met_slo"])
    assert summary["quality_weighted_goodput"] == pytest.approx(met / 4.0, abs=1e-3)
    assert sum(summary["level_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert all(p.endswith(".png") and Path(p).stat().st_size for p in summary["plots"])
    cached = json.loads(next((tmp_path / "refs").glob("references-*.json")).read_text())
    assert len(cached) == summary["scored_images"]


def test_workload_uses_shapes_prompts_seeds_and_trace_columns(tmp_path: Path) -> None:
    _, planned = build_workload("poisson", 5.0, 10.0, seed=1)
    assert planned and all(parse(p.prompt) is not None for p in planned)
    assert all(is_held_out(p.prompt) for p in planned if len(parse(p.prompt).objects) > 1)
    assert len({p.seed for p in planned}) == len(planned)
    assert [p.seed for p in build_workload("poisson", 5.0, 10.0, seed=1)[1]] == [
        p.seed for p in planned]
    csv = tmp_path / "trace.csv"
    csv.write_text("arrival_s,steps,n\n0.5,10,2\n1.0,0,1\n")
    _, rows = build_workload(str(csv), None, 5.0, prompts="shapes", steps=5)
    bodies = [request_body(p, "l-20") for p in rows]
    assert bodies[0]["num_inference_steps"] == 10 and bodies[0]["n"] == 2
    assert bodies[1]["num_inference_steps"] == 5 and bodies[1]["model"] == "l-20"


def test_reference_cache_round_trip(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path, "k")
    cache.put(ReferenceCache.key("a red circle", 7, "32x32"), Reference(0.75, "l-20"))
    cache.save()
    again = ReferenceCache(tmp_path, "k").get(ReferenceCache.key("a red circle", 7, "32x32"))
    assert again == Reference(0.75, "l-20")
    assert ReferenceCache(tmp_path, "other").get(ReferenceCache.key("a red circle", 7, "32x32")) \
        is None


def test_cli_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--url", "http://127.0.0.1:9", "--trace", "poisson", "--rate", "1",
                 "--duration", "1", "--no-progress"])
    assert code == 2
    assert "not an Argus server" in capsys.readouterr().err
