from __future__ import annotations

import numpy as np
import pytest

from argus.sim import traces
from argus.sim.traces import (
    SHARED_TRACES,
    TRACE_NAMES,
    default_data_dir,
    load_trace,
    package_data_dir,
    rescale_events,
)


def per_second_cv(times: np.ndarray, duration: float) -> float:
    counts = np.bincount(times.astype(int), minlength=int(duration))
    return float(counts.std() / counts.mean())


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_named_traces_hit_target_rate(name):
    trace = load_trace(name, rate=20.0, duration_s=600.0, seed=1)
    times = trace.arrival_s
    assert len(times) > 0
    assert (np.diff(times) >= 0).all()
    assert times[0] >= 0 and times[-1] < 600.0
    assert len(times) / 600.0 == pytest.approx(20.0, rel=0.12)


def test_rescaling_keeps_burstiness():
    code = load_trace("azure-llm-code", 20.0, 1200.0, seed=2).arrival_s
    conv = load_trace("azure-llm-conv", 20.0, 1200.0, seed=2).arrival_s
    poisson = load_trace("poisson", 20.0, 1200.0, seed=2).arrival_s
    # The coding trace is the bursty one, the conversation trace near Poisson (PROVENANCE.md).
    assert per_second_cv(code, 1200) > 2 * per_second_cv(conv, 1200)
    assert per_second_cv(conv, 1200) > per_second_cv(poisson, 1200)


def test_rescale_events_scales_per_second_counts():
    rng = np.random.default_rng(0)
    base = np.sort(rng.random(500) * 100)
    up = rescale_events(base, rate=15.0, duration_s=100.0, rng=rng)
    down = rescale_events(base, rate=2.0, duration_s=100.0, rng=rng)
    assert len(up) == pytest.approx(1500, rel=0.05)
    assert len(down) == pytest.approx(200, rel=0.15)
    per_second = np.bincount(base.astype(int), minlength=100)
    scaled = np.bincount(up.astype(int), minlength=100)
    assert np.corrcoef(per_second, scaled)[0, 1] > 0.9


def test_compress_fits_whole_shape():
    trace = load_trace("azure-functions", 5.0, 240.0, seed=0, compress=True)
    # The diurnal curve: the UTC evening peak (18-19 h) is busier than the night (3-4 h).
    hour = 240.0 / 24
    night = ((trace.arrival_s >= 3 * hour) & (trace.arrival_s < 4 * hour)).sum()
    peak = ((trace.arrival_s >= 18 * hour) & (trace.arrival_s < 19 * hour)).sum()
    assert peak > night


def test_csv_trace_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt,steps,n,tenant\n2.5,b,,2,x\n0.5,a,20,1,y\n1.0,c,,,\n")
    trace = load_trace(str(path), rate=None, duration_s=10.0)
    assert trace.arrival_s.tolist() == [0.5, 1.0, 2.5]
    assert trace.prompt == ["a", "c", "b"]
    assert trace.steps.tolist() == [20, 0, 0]
    assert trace.n.tolist() == [1, 1, 2]
    assert trace.tenant == ["y", "default", "x"]
    scaled = load_trace(str(path), rate=3.0, duration_s=10.0, seed=1)
    assert len(scaled) == pytest.approx(30, rel=0.3)
    assert set(scaled.prompt) <= {"a", "b", "c"}


@pytest.mark.parametrize("text", ["time\n1\n", "arrival_s\nx\n", "arrival_s\n-1\n", ""])
def test_bad_csv_is_a_clear_error(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_trace(str(path), rate=None, duration_s=10.0)


def test_unknown_trace_name():
    with pytest.raises(ValueError, match="not a trace name"):
        load_trace("no-such-trace", 1.0, 10.0)


def test_package_copy_is_shipped_and_small():
    files = {p.name: p.stat().st_size for p in package_data_dir().iterdir()}
    assert "ATTRIBUTION.md" in files
    assert sum(files.values()) < 3_000_000
    for name in SHARED_TRACES:
        assert load_trace(name, 5.0, 60.0).source.endswith("(package copy)")


@pytest.mark.skipif(not default_data_dir().exists(), reason="no ../shared/data to compare with")
def test_package_copy_equals_shared_originals():
    shared = default_data_dir()
    for kind in ("code", "conv"):
        assert np.array_equal(traces._llm_timestamps(None, kind),
                              traces._llm_timestamps(shared, kind))
    assert np.array_equal(traces._mooncake_timestamps(None), traces._mooncake_timestamps(shared))
    for loader in (traces._azure_functions_bins, traces._servegen_bins):
        for ours, theirs in zip(loader(None), loader(shared), strict=True):
            assert np.array_equal(ours, theirs)
    for name in SHARED_TRACES:
        for compress in (False, True):
            ours = load_trace(name, 20.0, 900.0, seed=4, compress=compress)
            theirs = load_trace(name, 20.0, 900.0, seed=4, compress=compress, data_dir=shared)
            assert np.array_equal(ours.arrival_s, theirs.arrival_s)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="trace data not found"):
        load_trace("mooncake", 5.0, 60.0, data_dir=tmp_path)
