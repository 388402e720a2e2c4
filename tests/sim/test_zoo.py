"""The workload zoo: rates, shapes, seeding and the image/step mix."""

from __future__ import annotations

import numpy as np
import pytest

from argus.sim.traces import BINNED_TRACES, TRACE_NAMES, load_trace
from argus.sim.zoo import (
    FLASH_FACTOR,
    IMAGE_MIX,
    STEP_MIX,
    ZOO_GENERATORS,
    ZOO_TRACES,
    piecewise_poisson,
)

RATE, DURATION = 20.0, 600.0


def per_second(times: np.ndarray, duration: float, width: float = 1.0) -> np.ndarray:
    return np.bincount((times // width).astype(int), minlength=int(duration // width))


def test_zoo_names_are_trace_names():
    assert set(ZOO_TRACES) <= set(TRACE_NAMES)
    assert len(set(TRACE_NAMES)) == len(TRACE_NAMES)
    assert not set(ZOO_TRACES) & set(BINNED_TRACES)


@pytest.mark.parametrize("name", ZOO_TRACES)
@pytest.mark.parametrize("duration", [30.0, 600.0])
def test_mean_rate_within_poisson_noise(name, duration):
    expected = RATE * duration
    for seed in range(4):
        times = load_trace(name, RATE, duration, seed=seed).arrival_s
        assert (np.diff(times) >= 0).all() and times[0] >= 0 and times[-1] < duration
        assert abs(len(times) - expected) < 4.5 * np.sqrt(expected)


@pytest.mark.parametrize("name", ZOO_TRACES)
def test_seeds_reproduce_and_differ(name):
    a = load_trace(name, RATE, 120.0, seed=7)
    b = load_trace(name, RATE, 120.0, seed=7)
    c = load_trace(name, RATE, 120.0, seed=8)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert len(a) != len(c) or not np.array_equal(a.arrival_s, c.arrival_s)
    if a.n is not None:
        assert np.array_equal(a.n, b.n) and np.array_equal(a.steps, b.steps)


def test_bursty_sessions_is_bursty():
    poisson = per_second(load_trace("poisson", RATE, DURATION, seed=0).arrival_s, DURATION)
    base_cv = poisson.std() / poisson.mean()
    for seed in range(3):
        times = load_trace("bursty-sessions", RATE, DURATION, seed=seed).arrival_s
        counts = per_second(times, DURATION)
        assert counts.std() / counts.mean() > 4 * base_cv
        windows = per_second(times, DURATION, 5.0)
        assert windows.max() / windows.mean() > 3.0
        assert np.median(windows) < 0.7 * windows.mean()  # mostly quiet, between sessions


def test_flash_crowd_step_in_middle_third():
    for seed in range(3):
        counts = per_second(load_trace("flash-crowd", RATE, DURATION, seed=seed).arrival_s,
                            DURATION, 10.0)
        peak = int(np.argmax(counts))
        assert DURATION / 3 <= peak * 10 < 2 * DURATION / 3
        assert counts.max() / np.median(counts) == pytest.approx(FLASH_FACTOR, rel=0.35)
        assert (counts > 3 * np.median(counts)).sum() in (5, 6, 7)  # 60 s at 10-s resolution


def test_diurnal_peak_over_trough():
    times = np.concatenate([load_trace("diurnal", RATE, DURATION, seed=s).arrival_s
                            for s in range(3)])
    tenths = per_second(times, DURATION, DURATION / 10)
    trough = tenths[0] + tenths[-1]
    peak = tenths[4] + tenths[5]
    assert 2.2 < peak / trough < 3.3


def test_piecewise_poisson_normalises_levels():
    rng = np.random.default_rng(0)
    edges = np.array([0.0, 50.0, 60.0, 100.0])
    times = piecewise_poisson(edges, np.array([1.0, 30.0, 1.0]), 10.0, rng)
    assert len(times) == pytest.approx(1000, abs=4.5 * np.sqrt(1000))
    inside = ((times >= 50) & (times < 60)).sum()
    assert inside / len(times) == pytest.approx(300 / 390, abs=0.05)


@pytest.mark.parametrize("base", ["poisson", "bursty-sessions", "azure-llm-code", "flash-crowd"])
def test_mixed_suffix_adds_columns_and_keeps_arrivals(base):
    plain = load_trace(base, RATE, DURATION, seed=3)
    mixed = load_trace(base + "+mixed", RATE, DURATION, seed=3)
    assert np.array_equal(plain.arrival_s, mixed.arrival_s)
    assert plain.n is None and plain.steps is None
    assert mixed.name == base + "+mixed"
    assert len(mixed.n) == len(mixed.steps) == len(mixed)
    assert set(mixed.n.tolist()) == set(IMAGE_MIX)
    assert set(mixed.steps.tolist()) == set(STEP_MIX)
    assert (mixed.n == 1).mean() == pytest.approx(IMAGE_MIX[1], abs=0.03)
    assert (mixed.steps == 30).mean() == pytest.approx(STEP_MIX[30], abs=0.03)


def test_bad_zoo_specs():
    with pytest.raises(ValueError, match="not a trace name"):
        load_trace("poisson+mixed+mixed", RATE, 10.0)
    with pytest.raises(ValueError, match="rate"):
        load_trace("bursty-sessions", None, 10.0)
    assert set(ZOO_GENERATORS) <= set(ZOO_TRACES)
