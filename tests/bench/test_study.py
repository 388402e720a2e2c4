"""The live study's pure parts: cell naming and grid order, capacity and load arithmetic, the
fidelity verdicts and goals on a canned pair of cells, and the rendered document block."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from argus.bench.calibrate import batches, scaled_profile, speed_factor
from argus.bench.study import Cell, capacity_rps, grid, load_cells, rate_for, server_config
from argus.bench.study_report import (
    fidelity,
    goal_best_qwg,
    goal_goodput,
    level_l1,
    level_quality,
    merged_table,
)
from argus.config import parse_config
from argus.control.profile import Profile
from argus.defaults import PROFILE_FILE

REPO = Path(__file__).resolve().parents[2]


def _script():  # noqa: ANN202 - the module object
    spec = importlib.util.spec_from_file_location("live_study", REPO / "scripts" / "live_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["live_study"] = module
    spec.loader.exec_module(module)
    return module


def _summary(goodput: float, viol: float, quality: float | None, shares: dict, qwg: float) -> dict:
    return {
        "goodput_rps": goodput, "slo_violation_ratio": viol, "mean_relative_quality": quality,
        "measured_relative_quality": None if quality is None else quality / 100,
        "predicted_relative_quality": 0.97,
        "level_share": shares, "quality_weighted_goodput": qwg, "requests": 60,
        "latency_p50_s": 0.6, "latency_p99_s": 2.1, "profile": "shapes",
    }


def _cell(policy: str, load: float, bench: dict, sim: dict) -> dict:
    return {"policy": policy, "trace": "poisson", "load": load, "rate_rps": 1.03 * load,
            "bench": bench, "simulate": sim, "simulate_calibrated": None, "duration_s": 60.0,
            "seed": 0, "workers": 1}


def test_cell_names_sort_and_grid_keeps_a_workload_together() -> None:
    """Names are file-safe; the grid runs every policy of one (trace, load) back to back."""
    assert Cell("argus", "poisson", 1.0).name == "poisson-1x-argus"
    assert Cell("clipper-ha", "poisson+mixed", 0.5).name == "poisson_mixed-0.5x-clipper-ha"
    cells = grid(["argus", "random"], ["poisson", "bursty-sessions"], [1.0, 2.0])
    assert len(cells) == 8
    assert [(c.trace, c.load) for c in cells[:2]] == [("poisson", 1.0)] * 2
    assert [c.policy for c in cells[:2]] == ["argus", "random"]


def test_capacity_is_workers_over_the_full_levels_batch1_time() -> None:
    """1x load = what the workers sustain serving the full level one request at a time."""
    profile = Profile.load(PROFILE_FILE)
    t1 = profile.level(profile.full_level).service_time_s[1]
    assert capacity_rps(profile, 1) == pytest.approx(1 / t1)
    assert capacity_rps(profile, 4) == pytest.approx(4 / t1)
    assert rate_for(2.0, 1 / 0.5) == 4.0
    assert rate_for(0.5, 1 / 0.96712) == pytest.approx(0.517, abs=1e-3)


def test_server_config_is_valid_and_pins_one_thread(tmp_path: Path) -> None:
    """The server config parses as a deployment and pins workers x threads and its own cache."""
    data = yaml.safe_load(yaml.safe_dump(server_config(tmp_path / "c", workers=1, threads=1)))
    config = parse_config(data, "<test>")
    assert config.server.workers == 1 and config.server.threads_per_worker == 1
    assert config.cache_dir == tmp_path / "c"
    assert config.control.profile == str(PROFILE_FILE)


def test_fidelity_verdicts_on_the_issues_tolerances() -> None:
    """Goodput 10% relative, violations 3 points, level-share L1 0.1, quality 3 points."""
    bench = _summary(1.0, 0.10, 95.0, {"l-20": 0.6, "l-10": 0.4}, 0.9)
    close = _summary(1.08, 0.12, 93.0, {"l-20": 0.55, "l-10": 0.45}, 0.9)
    far = _summary(1.2, 0.15, 90.0, {"l-10": 1.0}, 0.9)
    assert [c.within for c in fidelity(bench, close)] == [True, True, True, True]
    assert [c.within for c in fidelity(bench, far)] == [False, False, False, False]
    goodput, viol, levels, quality = fidelity(bench, far)
    assert goodput.gap == pytest.approx(0.2) and viol.gap == pytest.approx(5.0)
    assert levels.gap == pytest.approx(1.2) and quality.gap == pytest.approx(-5.0)  # sim - bench
    assert level_l1({"a": 1.0}, {"b": 1.0}) == 2.0
    missing = _summary(0.0, 1.0, None, {}, 0.0)  # nothing served
    assert fidelity(missing, missing)[3].within is False


def test_goals_compare_argus_with_clipper_ha_and_every_policy() -> None:
    """Goal 1 needs 1.4x clipper-ha's goodput and 95% quality; goal 2 the best q-w goodput."""
    def cell(policy: str, load: float, goodput: float, quality: float, qwg: float) -> dict:
        run = _summary(goodput, 0.1, quality, {"l-20": 1.0}, qwg)
        return _cell(policy, load, run, run)

    cells = [
        cell("argus", 2.0, 1.5, 96.0, 1.44), cell("clipper-ha", 2.0, 1.0, 100.0, 1.0),
        cell("random", 2.0, 1.6, 80.0, 1.28), cell("argus", 0.5, 0.5, 90.0, 0.45),
        cell("clipper-ha", 0.5, 0.5, 100.0, 0.5),
    ]
    g1 = {g["load"]: g for g in goal_goodput(cells)}
    assert g1[2.0]["ratio"] == 1.5 and g1[2.0]["met"]
    assert g1[0.5]["ratio"] == 1.0 and not g1[0.5]["met"]
    g2 = goal_best_qwg(cells)
    assert [g["load"] for g in g2] == [2.0]  # loads below 1x are not judged
    assert g2[0]["met"] and g2[0]["best"] == "argus"
    rows = merged_table(cells)
    assert rows[0]["fid_goodput_rps_ok"] is True and rows[0]["sim_goodput_rps"] == 1.5


def test_report_renders_tables_between_the_markers(tmp_path: Path) -> None:
    """`report` replaces only the generated block of the document and writes table.json."""
    shares = {"l-20": 0.5, "l-5": 0.5}
    cells = [_cell("argus", 1.0, _summary(1.0, 0.0, 97.0, shares, 0.97),
                   _summary(0.8, 0.2, 91.0, {"l-5": 1.0}, 0.7)),
             _cell("clipper-ha", 1.0, _summary(0.9, 0.1, 100.0, {"l-20": 1.0}, 0.9),
                   _summary(0.9, 0.1, 100.0, {"l-20": 1.0}, 0.9))]
    (tmp_path / "cells").mkdir()
    for c in cells:
        (tmp_path / "cells" / f"poisson-1x-{c['policy']}.json").write_text(json.dumps(c))
    assert [c["policy"] for c in load_cells(tmp_path)] == ["argus", "clipper-ha"]
    script = _script()
    doc = tmp_path / "live.md"
    doc.write_text(f"# Live\n\nprose before\n\n{script.BEGIN}\nold\n{script.END}\n\nprose after\n")
    script.report(type("Args", (), {"out": tmp_path, "doc": doc})())
    text = doc.read_text()
    assert "prose before" in text and "prose after" in text and "\nold\n" not in text
    assert "| poisson | 1x | argus | 1.03 | 60 | 0.0% | 1.00 | 0.970 |" in text
    assert "1.00 / 0.80 (-20% **outside**)" in text  # goodput, sim 20% low
    assert "0.0 / 20.0 (**outside**)" in text and "1.00 (**outside**)" in text
    assert "| poisson | 1x | 1.11x | 0.970 | **missed** |" in text  # 1.0 / 0.9 < 1.4
    assert "| poisson | 1x | 0.97 | argus (0.97) | met |" in text
    assert "goodput_rps 1/2" in text
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["policy"] for r in rows] == ["argus", "clipper-ha"]


def _record(sent_s: float, level: str, queue_ms: float, run_ms: float, n: int = 1) -> dict:
    image = {"level": level, "timings_ms": {"queue": queue_ms, "run": run_ms}}
    return {"status": 200, "sent_s": sent_s, "images": [image] * n}


def test_speed_factor_groups_batches_by_dispatch_instant() -> None:
    """Images dispatched together at one level are one batch; the factor is the median ratio."""
    profile = Profile.load(PROFILE_FILE)
    t1, t2 = (profile.level("l-20").service_time(b) for b in (1, 2))
    records = [
        _record(0.0, "l-20", 0.0, 2000 * t1),             # alone, 2x slower than profiled
        _record(1.0, "l-20", 500.0, 1500 * t2),           # these two dispatched at 1.5 s:
        _record(1.2, "l-20", 300.0, 1500 * t2 - 1.0),     # one batch of 2, 1.5x slower
        _record(1.2, "l-5", 300.0, 100.0),                # same instant, other level: own batch
        {"status": 503, "sent_s": 2.0, "images": []},
    ]
    groups = batches(records)
    assert [(lv, n) for lv, n, _ in groups] == [("l-20", 1), ("l-20", 2), ("l-5", 1)]
    t5 = profile.level("l-5").service_time(1)
    assert speed_factor(records, profile) == pytest.approx(1.5)
    assert speed_factor(records[:1], profile) == pytest.approx(2.0)
    assert groups[2][2] == pytest.approx(0.1) and 0.1 / t5 != 1.5
    assert speed_factor([], profile) is None
    scaled = scaled_profile(profile, 2.0)
    assert scaled.level("l-20").service_time(4) == pytest.approx(
        2 * profile.level("l-20").service_time(4))
    assert scaled.prompts == profile.prompts


def test_level_quality_pools_scored_images_per_level() -> None:
    """Measured and predicted quality are averaged per level over every cell's images."""
    image = {"level": "l-10", "relative_quality": 0.9, "predicted_quality": 1.0}
    cells = [{"bench": {"records": [{"images": [image, {**image, "relative_quality": 0.7}]}]}},
             {"bench": {"records": [{"images": [{"level": "l-20", "relative_quality": 1.0,
                                                 "predicted_quality": 1.0}]},
                                    {"images": [{**image, "relative_quality": None}]}]}}]
    rows = level_quality(cells, {"l-10": 0.987})
    assert rows[0] == {"level": "l-10", "images": 2, "measured": 0.8, "predicted": 1.0,
                       "profile": 0.987}
    assert rows[1]["level"] == "l-20" and rows[1]["profile"] is None
