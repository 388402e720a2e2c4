"""Arrival traces: the production traces, Poisson, the workload zoo, and CSV trace files.

The production traces (`SHARED_TRACES`) are read from the compact copy shipped in
`argus/assets/traces/` (see its ATTRIBUTION.md); `data_dir=` (`--data-dir`) reads the original
files of the shared layout (`../shared/data/<source>/...`) instead, with identical results.
Each keeps its shape while being rescaled to a target mean rate:
- per-request traces (`azure-llm-code`, `azure-llm-conv`, `mooncake`) keep every arrival's time;
  a rate factor m < 1 thins them, m > 1 gives each arrival floor(m) or ceil(m) copies jittered
  inside its second, so per-second counts (and their burstiness) scale by m;
- binned traces (`azure-functions`: per minute; `servegen`: per 10 min with a per-window
  inter-arrival CV) are turned into arrivals per bin: Poisson inside a minute, a Gamma renewal
  process with the window's CV for ServeGen.
`compress=True` squeezes the whole trace into the simulated duration (e.g. a day into 10 minutes,
as DiffServe maps an hour of the Azure trace to a second); otherwise the trace plays in real time
from its start and loops if the duration is longer.

The zoo (`ZOO_TRACES`, generated, see `argus.sim.zoo`): `bursty-sessions` (on/off MMPP),
`flash-crowd` (a 10x step for 60 s), `diurnal` (sinusoid); the suffix `+mixed` on any trace name
fills `Trace.n` and `Trace.steps` with a mix of images per request and pinned steps.

Sources and licences (argus/assets/traces/ATTRIBUTION.md): Azure Functions 2019 (CC BY 4.0,
Shahrad et al., ATC'20), Azure LLM inference 2023 (CC BY 4.0, Patel et al., ISCA'24), Mooncake
FAST'25 (Apache-2.0, Qin et al.), ServeGen (Apache-2.0, Xiang et al. 2025).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from argus.sim.zoo import (
    MIXED_SUFFIX,
    ZOO_GENERATORS,
    ZOO_TRACES,
    mix_columns,
    mix_rng,
    zoo_arrivals,
)

SHARED_TRACES = ("azure-functions", "azure-llm-code", "azure-llm-conv", "mooncake", "servegen")
"""The production traces (a compact copy ships in `argus/assets/traces/`)."""
TRACE_NAMES = SHARED_TRACES + ("poisson",) + ZOO_TRACES
BINNED_TRACES = ("azure-functions", "servegen")
"""Traces given as rates per bin (per minute / per 10 minutes over days): studies usually
`compress` them so their daily shape plays out within the simulated duration."""
SERVEGEN_POOL = "language/m-large"


def default_data_dir() -> Path:
    """`../shared/data` next to the repository root (the original files; optional)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def package_data_dir() -> Path:
    """`argus/assets/traces`: the compact copy of the production traces shipped in the package."""
    return Path(__file__).resolve().parents[1] / "assets" / "traces"


@dataclass
class Trace:
    name: str
    arrival_s: np.ndarray
    """Sorted arrival times, seconds from the start."""
    prompt: list[str] | None = None
    steps: np.ndarray | None = None
    """Requested steps per request (0 = not pinned)."""
    n: np.ndarray | None = None
    tenant: list[str] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.arrival_s)


# ---------------------------------------------------------------------------- raw shapes
# `data` is None for the package copy, else a folder in the shared layout.
def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"trace data not found: {path}")
    return path


def _arrival_column(name: str) -> np.ndarray:
    """The `arrival_s` column of a packaged per-request trace."""
    with _require(package_data_dir() / name).open() as fh:
        return np.array([float(r["arrival_s"]) for r in csv.DictReader(fh)])


def _llm_timestamps(data: Path | None, kind: str) -> np.ndarray:
    if data is None:
        return _arrival_column(f"azure_llm_{kind}.csv")
    path = _require(data / "azure_llm_2023" / f"AzureLLMInferenceTrace_{kind}.csv")
    with path.open() as fh:
        rows = list(csv.reader(fh))[1:]
    stamps = [datetime.fromisoformat(r[0][:26]) for r in rows]
    start = stamps[0]
    return np.array([(s - start).total_seconds() for s in stamps])


def _mooncake_timestamps(data: Path | None) -> np.ndarray:
    if data is None:
        return _arrival_column("mooncake_conversation.csv")
    path = _require(data / "mooncake_fast25" / "conversation_trace.jsonl")
    with path.open() as fh:
        return np.array([json.loads(line)["timestamp"] / 1000.0 for line in fh if line.strip()])


def _azure_functions_bins(data: Path | None) -> tuple[float, np.ndarray, np.ndarray]:
    path = _require(
        package_data_dir() / "azure_functions_per_minute.csv" if data is None
        else data / "azure_functions_2019_sample" / "per_minute_total.csv"
    )
    with path.open() as fh:
        counts = np.array([float(r["invocations"]) for r in csv.DictReader(fh)])
    return 60.0, counts / 60.0, np.ones_like(counts)


def _servegen_bins(data: Path | None) -> tuple[float, np.ndarray, np.ndarray]:
    path = _require(
        package_data_dir() / "servegen_m_large.csv" if data is None
        else data / "servegen" / "servegen_aggregate_rate.csv"
    )
    with path.open() as fh:  # the packaged file holds the SERVEGEN_POOL rows only, no pool column
        rows = [r for r in csv.DictReader(fh) if r.get("pool", SERVEGEN_POOL) == SERVEGEN_POOL]
    rows.sort(key=lambda r: float(r["window_start_s"]))
    rates = np.array([float(r["total_rate_rps"]) for r in rows])
    cvs = np.array([float(r["rate_weighted_cv"] or 1.0) for r in rows])
    return 600.0, rates, np.clip(cvs, 1.0, 4.0)


# ---------------------------------------------------------------------------- rescaling
def rescale_events(
    times: np.ndarray, rate: float, duration_s: float, rng: np.random.Generator,
    compress: bool = False,
) -> np.ndarray:
    """Arrival times over [0, duration) at mean `rate`, keeping the per-second shape."""
    times = np.sort(np.asarray(times, float) - np.min(times))
    span = max(float(times[-1]), 1.0)
    if compress:
        times = times * (duration_s / span)
    elif duration_s > span:
        loops = int(np.ceil(duration_s / span))
        times = np.concatenate([times + k * span for k in range(loops)])
    times = times[times < duration_s]
    if len(times) == 0:
        raise ValueError("the trace has no arrivals in the simulated window")
    factor = rate * duration_s / len(times)
    copies = np.floor(factor).astype(int) + (rng.random(len(times)) < factor % 1)
    out = np.repeat(times, copies)
    first = np.zeros(len(out), bool)
    first[np.cumsum(copies)[copies > 0] - copies[copies > 0]] = True
    jitter = np.floor(out) + rng.random(len(out))
    out = np.where(first, out, jitter)
    return np.sort(out[out < duration_s])


def rescale_bins(
    bin_s: float, rates: np.ndarray, cvs: np.ndarray, rate: float, duration_s: float,
    rng: np.random.Generator, compress: bool = False,
) -> np.ndarray:
    """Arrivals from per-bin rates: Poisson (cv 1) or Gamma renewal with the bin's CV."""
    if compress:
        bin_s = duration_s / len(rates)
    else:
        needed = int(np.ceil(duration_s / bin_s))
        reps = int(np.ceil(needed / len(rates)))
        rates, cvs = np.tile(rates, reps)[:needed], np.tile(cvs, reps)[:needed]
    widths = np.minimum(bin_s, duration_s - bin_s * np.arange(len(rates)))
    mean = float((rates * widths).sum() / duration_s)
    if mean <= 0:
        raise ValueError("the trace has no load in the simulated window")
    rates = rates * (rate / mean)
    chunks = []
    carry = rng.random()  # operational time until the first arrival (a stationary-ish start)
    for b, (r, cv, width) in enumerate(zip(rates, cvs, widths, strict=True)):
        length = r * width  # expected arrivals in this bin = its operational length
        if length <= 0 or width <= 0:
            continue
        if cv <= 1.0 + 1e-9:
            count = rng.poisson(length)
            chunks.append(b * bin_s + np.sort(rng.random(count)) * width)
            continue
        points, carry = _renewal(length, 1.0 / cv**2, carry, rng)
        chunks.append(b * bin_s + points * (width / length))
    return np.sort(np.concatenate(chunks)) if chunks else np.zeros(0)


def _renewal(
    length: float, shape: float, carry: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Arrivals of a unit-rate Gamma renewal process over [0, length) of operational time,
    starting `carry` before the first arrival; returns them and the carry into the next bin (the
    process continues across bins, so short bursty bins are not biased by restarts)."""
    found = []
    position = carry
    while True:
        expected = int(length - position + 5 * np.sqrt(max(length, 1.0)) + 20)
        gaps = rng.gamma(shape, 1.0 / shape, max(expected, 1))
        positions = position + np.concatenate([[0.0], np.cumsum(gaps)])
        inside = positions[positions < length]
        found.append(inside)
        if len(inside) < len(positions):
            return np.concatenate(found), float(positions[len(inside)] - length)
        position = float(positions[-1] + rng.gamma(shape, 1.0 / shape))


# ---------------------------------------------------------------------------- public
def load_trace(
    spec: str, rate: float | None, duration_s: float, seed: int = 0,
    data_dir: Path | None = None, compress: bool = False,
) -> Trace:
    """A named trace (`TRACE_NAMES`, or any of them + `+mixed`) or a CSV file, over
    [0, duration) at mean `rate` req/s (a file keeps its own rate when `rate` is None).
    `data_dir`: read the production traces from this shared-layout folder instead of the
    package copy. `compress` applies to the production traces and files only."""
    base = spec.removesuffix(MIXED_SUFFIX)
    if base not in TRACE_NAMES or base.endswith(MIXED_SUFFIX):
        return _load_csv(Path(spec), rate, duration_s, np.random.default_rng(seed), compress)
    trace = _named_trace(base, rate, duration_s, seed, data_dir, compress)
    if spec != base:
        trace.name = spec
        trace.n, trace.steps = mix_columns(len(trace), mix_rng(seed))
        trace.source += " + image/step mix"
    return trace


def _named_trace(
    spec: str, rate: float | None, duration_s: float, seed: int, data: Path | None,
    compress: bool,
) -> Trace:
    rng = np.random.default_rng(seed)
    if rate is None or rate <= 0:
        raise ValueError(f"trace {spec}: --rate must be > 0")
    if spec == "poisson":
        count = rng.poisson(rate * duration_s)
        times = np.sort(rng.random(count) * duration_s)
        return Trace(spec, times, source="homogeneous Poisson")
    if spec in ZOO_GENERATORS:
        return Trace(spec, zoo_arrivals(spec, rate, duration_s, rng), source="argus.sim.zoo")
    if spec in BINNED_TRACES:
        loader = _azure_functions_bins if spec == "azure-functions" else _servegen_bins
        bin_s, rates, cvs = loader(data)
        times = rescale_bins(bin_s, rates, cvs, rate, duration_s, rng, compress)
    else:
        raw = {
            "azure-llm-code": lambda: _llm_timestamps(data, "code"),
            "azure-llm-conv": lambda: _llm_timestamps(data, "conv"),
            "mooncake": lambda: _mooncake_timestamps(data),
        }[spec]()
        times = rescale_events(raw, rate, duration_s, rng, compress)
    where = f"{package_data_dir()} (package copy)" if data is None else f"{data} (shared layout)"
    return Trace(spec, times, source=where)


def _load_csv(
    path: Path, rate: float | None, duration_s: float, rng: np.random.Generator, compress: bool,
) -> Trace:
    if not path.exists():
        raise ValueError(f"--trace {path}: not a trace name ({', '.join(TRACE_NAMES)}) or a file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "arrival_s" not in reader.fieldnames:
            raise ValueError(f"{path}: a CSV header with an `arrival_s` column is required")
        rows = list(reader)
    try:
        times = np.array([float(r["arrival_s"]) for r in rows])
        steps = np.array([int(r.get("steps") or 0) for r in rows])
        n = np.array([int(r.get("n") or 1) for r in rows])
    except ValueError as err:
        raise ValueError(f"{path}: bad number: {err}") from None
    if len(times) == 0 or (times < 0).any() or not np.isfinite(times).all():
        raise ValueError(f"{path}: arrival_s must be finite, >= 0, with at least one row")
    if (n < 1).any() or (steps < 0).any():
        raise ValueError(f"{path}: n must be >= 1 and steps >= 0")
    order = np.argsort(times, kind="stable")
    fields = reader.fieldnames
    prompt = [rows[i]["prompt"] for i in order] if "prompt" in fields else None
    tenant = [rows[i]["tenant"] or "default" for i in order] if "tenant" in fields else None
    trace = Trace(path.name, times[order], prompt, steps[order], n[order], tenant, str(path))
    if rate is None:
        keep = trace.arrival_s < duration_s
        return _subset(trace, np.flatnonzero(keep))
    # Rescale: map each rescaled arrival back to the nearest original row for its columns.
    new_times = rescale_events(trace.arrival_s, rate, duration_s, rng, compress)
    span = max(float(trace.arrival_s.max() - trace.arrival_s.min()), 1.0)
    source_times = trace.arrival_s - trace.arrival_s.min()
    lookup = new_times * (span / duration_s) if compress else new_times % (span + 1e-9)
    idx = np.clip(np.searchsorted(source_times, lookup, side="right") - 1, 0, len(trace) - 1)
    out = _subset(trace, idx)
    out.arrival_s = new_times
    return out


def _subset(trace: Trace, idx: np.ndarray) -> Trace:
    def pick(values: list[str] | None) -> list[str] | None:
        return None if values is None else [values[i] for i in idx]

    return Trace(
        trace.name, trace.arrival_s[idx], pick(trace.prompt),
        None if trace.steps is None else trace.steps[idx],
        None if trace.n is None else trace.n[idx], pick(trace.tenant), trace.source,
    )
