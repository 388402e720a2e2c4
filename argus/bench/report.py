"""The bench's summary: the simulator's fields and definitions (`argus.sim.report.summarise`,
fed a record built from the HTTP responses), plus the measured quality and the per-request
records; plots through `argus.baselines.plots`."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from argus.bench.loadgen import UNFINISHED, RequestRecord
from argus.sim.report import summarise
from argus.sim.simulator import RunRecord

REJECTION_CODES = ("queue_full", "overloaded")
"""Error codes of requests the server did not admit (429 / 503 with Retry-After)."""
QUALITY_SOURCE = "measured: shapes scorer vs the server's full-level image (same prompt, seed)"


def mark_slo(records: list[RequestRecord], slo_s: float) -> None:
    for r in records:
        r.met_slo = r.served and r.latency_s is not None and r.latency_s <= slo_s + 1e-9


def reasons(records: list[RequestRecord]) -> dict[str, int]:
    """Why requests were not served: the error message (or UNFINISHED), counted."""
    return dict(Counter(
        UNFINISHED if r.status is None and r.error == UNFINISHED else (r.error or "no images")
        for r in records if not r.served
    ))


def run_record(records: list[RequestRecord], level_names: tuple[str, ...],
               slo_s: float) -> RunRecord:
    """The simulator's per-request record of an HTTP run (quality = measured, NaN if none)."""
    index = {name: i for i, name in enumerate(level_names)}
    arrival = np.array([r.arrival_s for r in records], float)
    served = [r.served for r in records]
    finish = np.array([
        r.arrival_s + r.latency_s if ok else np.nan for r, ok in zip(records, served, strict=True)
    ], float)
    level = np.array([index.get(r.level, -1) if ok else -1
                      for r, ok in zip(records, served, strict=True)], int)
    quality = np.array([np.nan if r.measured_quality is None else r.measured_quality
                        for r in records], float)
    return RunRecord(arrival, arrival + slo_s, finish, level, quality, reasons(records))


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def summarise_bench(
    records: list[RequestRecord], level_names: tuple[str, ...], slo_s: float,
    duration_s: float, meta: dict,
) -> tuple[dict, RunRecord]:
    """(summary, the simulator-style record it was computed from)."""
    mark_slo(records, slo_s)
    record = run_record(records, level_names, slo_s)
    plane = SimpleNamespace(table=SimpleNamespace(names=level_names), slo_s=slo_s)
    interval = max(1.0, duration_s / 60)
    summary = summarise(record, plane, duration_s, interval, QUALITY_SOURCE, meta)  # type: ignore[arg-type]
    unfinished = int(record.reasons.get(UNFINISHED, 0))
    not_admitted = sum(1 for r in records if r.error_code in REJECTION_CODES)
    summary["rejected"] = not_admitted
    summary["failed"] = len(records) - summary["served"] - not_admitted - unfinished
    summary["variant_loads"] = None  # not visible from the client
    summary.update(_bench_fields(records, duration_s))
    return summary, record


def _bench_fields(records: list[RequestRecord], duration_s: float) -> dict:
    served = [r for r in records if r.served]
    images = [im for r in served for im in r.images]
    within = [r.measured_quality or 0.0 for r in served if r.met_slo]
    return {
        "measured_relative_quality": _mean([r.measured_quality for r in served]),
        "predicted_relative_quality": _mean([r.predicted_quality for r in served]),
        "quality_weighted_goodput": round(sum(within) / duration_s, 4),
        "mean_image_score": _mean([im.score for im in images]),
        "mean_reference_score": _mean([im.reference_score for im in images]),
        "scored_images": sum(im.score is not None for im in images),
        "referenced_images": sum(im.relative_quality is not None for im in images),
        "cache_hit_share": _mean([float(im.cache_hit) for im in images]),
        "status_counts": dict(sorted(Counter(str(r.status) for r in records).items())),
        "records": [record_json(r) for r in records],
    }


def record_json(record: RequestRecord) -> dict:
    out = asdict(record)
    for image in out["images"]:
        image.pop("png_b64", None)
    out["measured_relative_quality"] = record.measured_quality
    return out


def format_summary(s: dict) -> str:
    shares = ", ".join(f"{k} {v:.0%}" for k, v in s["level_share"].items() if v)
    measured, predicted = s["measured_relative_quality"], s["predicted_relative_quality"]
    lines = [
        f"{s['trace']} @ {s['rate_rps'] or 'native'} req/s against {s['url']}, "
        f"{s['duration_s']:.0f} s, seed {s['seed']}, SLO {s['slo_s']:.2f} s"
        + ("  (interrupted)" if s.get("interrupted") else ""),
        f"  requests {s['requests']}  served {s['served']}  rejected {s['rejected']}  "
        f"failed {s['failed']}  unfinished {s['unfinished']}  status {s['status_counts']}",
        f"  SLO violations {s['slo_violation_ratio']:.2%}  goodput {s['goodput_rps']:.2f} req/s  "
        f"latency p50 {s['latency_p50_s']} s  p99 {s['latency_p99_s']} s",
        f"  relative quality measured {_fmt(measured)}  predicted {_fmt(predicted)}  "
        f"quality-weighted goodput {s['quality_weighted_goodput']:.2f} /s  "
        f"({s['scored_images']} images scored, {s['referenced_images']} with a reference)",
        f"  level share: {shares}",
    ]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def write_plots(summary: dict, record: RunRecord, level_names: tuple[str, ...],
                out: Path) -> list[Path]:
    """The comparison plots (goodput, quality, level share over time) for this one run."""
    from argus.baselines.plots import write_plots as write_comparison_plots

    out.mkdir(parents=True, exist_ok=True)
    view = SimpleNamespace(
        spec=SimpleNamespace(duration_s=summary["duration_s"]),
        summaries={"bench": summary}, records={"bench": record}, level_names=level_names,
    )
    return write_comparison_plots(view, out)  # type: ignore[arg-type]
