"""The workload zoo: seeded synthetic arrival processes and request mixes.

Generators (names in `ZOO_GENERATORS`), each over [0, duration) at mean `rate` req/s:
- `bursty-sessions`: a 2-state on/off Markov-modulated Poisson process (MMPP). Sojourns are
  exponential (mean `ON_MEAN_S` on, `OFF_MEAN_S` off; the first state is drawn from the stationary
  split); the on-state rate is `ON_OFF_RATIO` times the off-state rate. Typical bursts run at
  about 5x the mean, up to 15x when a path has few on-periods.
- `flash-crowd`: Poisson at a base rate with a `FLASH_FACTOR` (10x) step lasting `FLASH_S` (60 s,
  at most a third of the duration) that starts at a seeded time in the middle third.
- `diurnal`: a sinusoid with period = duration, trough at the start and peak in the middle,
  peak/trough `DIURNAL_PEAK_TROUGH` (3x), sampled by thinning.

Each generator draws its intensity profile, then scales it so that its integral over the
duration is exactly `rate x duration`: the count is Poisson(rate x duration) whatever the drawn
state path or step time, so the mean rate is always within Poisson noise of `rate`.

Request mixes: `mix_columns` draws images per request (`IMAGE_MIX`: 1 to 8, mostly 1) and
pinned steps (`STEP_MIX`: 20 to 50, mostly 30) for `Trace.n` / `Trace.steps`. Through
`load_trace` the suffix `+mixed` (`MIXED_SUFFIX`) adds the mix to any named trace, e.g.
`azure-llm-code+mixed`; the mix comes from its own random stream, so `X+mixed` has exactly the
arrivals of `X` for the same seed. `ZOO_TRACES` lists the generators and two mixed examples.
"""

from __future__ import annotations

import numpy as np

ZOO_GENERATORS = ("bursty-sessions", "flash-crowd", "diurnal")
MIXED_SUFFIX = "+mixed"
ZOO_TRACES = ZOO_GENERATORS + ("poisson" + MIXED_SUFFIX, "bursty-sessions" + MIXED_SUFFIX)

ON_OFF_RATIO = 15.0
ON_MEAN_S = 10.0
OFF_MEAN_S = 60.0
FLASH_FACTOR = 10.0
FLASH_S = 60.0
DIURNAL_PEAK_TROUGH = 3.0

IMAGE_MIX = {1: 0.70, 2: 0.12, 4: 0.12, 8: 0.06}
"""Images per request -> probability."""
STEP_MIX = {30: 0.60, 20: 0.10, 25: 0.10, 40: 0.10, 50: 0.10}
"""Requested (pinned) denoising steps -> probability."""
MIX_STREAM = 1
"""Second seed word of the mix's random stream, `default_rng((seed, MIX_STREAM))`."""


def zoo_arrivals(
    name: str, rate: float, duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted arrival times of generator `name` (`ZOO_GENERATORS`) at mean `rate`."""
    if name == "bursty-sessions":
        edges, levels = _on_off_path(duration_s, rng)
    elif name == "flash-crowd":
        width = min(FLASH_S, duration_s / 3)
        start = duration_s / 3 + rng.random() * (duration_s / 3 - width)
        edges = np.array([0.0, start, start + width, duration_s])
        levels = np.array([1.0, FLASH_FACTOR, 1.0])
    elif name == "diurnal":
        return _diurnal(rate, duration_s, rng)
    else:
        raise ValueError(f"unknown zoo generator {name!r}; known: {', '.join(ZOO_GENERATORS)}")
    return piecewise_poisson(edges, levels, rate, rng)


def piecewise_poisson(
    edges: np.ndarray, levels: np.ndarray, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson arrivals of the piecewise-constant intensity `levels` on the pieces between
    `edges`, scaled so that its mean over [edges[0], edges[-1]) is `rate`."""
    widths = np.diff(edges)
    span = float(edges[-1] - edges[0])
    expected = levels * widths * (rate * span / float((levels * widths).sum()))
    counts = rng.poisson(expected)
    starts = np.repeat(edges[:-1], counts)
    offsets = rng.random(int(counts.sum())) * np.repeat(widths, counts)
    return np.sort(starts + offsets)


def _on_off_path(duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Piece edges and relative levels of one on/off state path over [0, duration)."""
    on = rng.random() < ON_MEAN_S / (ON_MEAN_S + OFF_MEAN_S)
    edges, levels, now = [0.0], [], 0.0
    while now < duration_s:
        now = min(now + rng.exponential(ON_MEAN_S if on else OFF_MEAN_S), duration_s)
        edges.append(now)
        levels.append(ON_OFF_RATIO if on else 1.0)
        on = not on
    return np.array(edges), np.array(levels)


def _diurnal(rate: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Thinning of Poisson(peak rate): rate x (1 - a cos(2 pi t / duration)), whose mean over
    the full period is exactly `rate`."""
    amplitude = (DIURNAL_PEAK_TROUGH - 1) / (DIURNAL_PEAK_TROUGH + 1)
    peak = rate * (1 + amplitude)
    times = np.sort(rng.random(rng.poisson(peak * duration_s)) * duration_s)
    intensity = rate * (1 - amplitude * np.cos(2 * np.pi * times / duration_s))
    return times[rng.random(len(times)) * peak < intensity]


def mix_columns(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Images per request and pinned steps for `count` requests (`IMAGE_MIX`, `STEP_MIX`)."""
    n = rng.choice(list(IMAGE_MIX), size=count, p=list(IMAGE_MIX.values()))
    steps = rng.choice(list(STEP_MIX), size=count, p=list(STEP_MIX.values()))
    return n.astype(int), steps.astype(int)


def mix_rng(seed: int) -> np.random.Generator:
    """The mix's own random stream for `seed`, independent of the arrivals' stream."""
    return np.random.default_rng((seed, MIX_STREAM))
