"""Run summaries with the one set of definitions (../shared/reference/README.md §3):
- SLO violation: a request answered after its deadline, rejected, or unfinished;
- relative quality: served image quality / full-level quality, in %, mean over served requests;
- goodput: requests answered within their SLO per second of the trace."""

from __future__ import annotations

import numpy as np

from argus.control.plane import ControlPlane
from argus.sim.simulator import UNFINISHED, RunRecord


def _round(x: float, digits: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def summarise(
    record: RunRecord, plane: ControlPlane, duration_s: float, interval_s: float,
    quality_label: str, meta: dict,
) -> dict:
    names = plane.table.names
    count = len(record.arrival)
    served = record.level >= 0
    met = served & (record.finish <= record.deadline + 1e-9)
    latency = (record.finish - record.arrival)[served]
    level_counts = np.bincount(record.level[served], minlength=len(names))
    unfinished = int(record.reasons.get(UNFINISHED, 0))
    summary = {
        **meta,
        "requests": count,
        "served": int(served.sum()),
        "rejected": int(sum(record.reasons.values()) - unfinished),
        "unfinished": unfinished,
        "slo_violation_ratio": _round(1 - met.sum() / count) if count else 0.0,
        "mean_relative_quality": _round(100 * np.nanmean(record.quality[served]), 3)
        if served.any() else None,
        "quality_source": quality_label,
        "goodput_rps": _round(met.sum() / duration_s),
        "latency_p50_s": _round(np.percentile(latency, 50)) if served.any() else None,
        "latency_p99_s": _round(np.percentile(latency, 99)) if served.any() else None,
        "level_share": {
            n: _round(c / served.sum()) if served.any() else 0.0
            for n, c in zip(names, level_counts, strict=True)
        },
        "rejection_reasons": dict(sorted(record.reasons.items())),
        "variant_loads": record.loads,
        "slo_s": plane.slo_s,
    }
    summary["intervals"] = _intervals(record, plane, duration_s, interval_s, met, served)
    return summary


def _intervals(
    record: RunRecord, plane: ControlPlane, duration_s: float, interval_s: float,
    met: np.ndarray, served: np.ndarray,
) -> list[dict]:
    names = plane.table.names
    bins = max(1, int(np.ceil(duration_s / interval_s)))
    which = np.minimum((record.arrival // interval_s).astype(int), bins - 1)
    requests = np.bincount(which, minlength=bins)
    served_n = np.bincount(which[served], minlength=bins)
    met_n = np.bincount(which[met], minlength=bins)
    qsum = np.bincount(which[served], weights=record.quality[served], minlength=bins)
    plan_times = np.asarray([p[0] for p in record.plans])
    out = []
    for b in range(bins):
        start = b * interval_s
        entry = {
            "t_s": round(start, 3),
            "requests": int(requests[b]),
            "served": int(served_n[b]),
            "slo_violation_ratio": _round(1 - met_n[b] / requests[b]) if requests[b] else 0.0,
            "mean_relative_quality": (
                _round(100 * qsum[b] / served_n[b], 3) if served_n[b] else None
            ),
            "goodput_rps": _round(met_n[b] / interval_s),
        }
        k = int(np.searchsorted(plan_times, start + interval_s, side="right")) - 1
        if k >= 0:
            _, workers, forecast = record.plans[k]
            entry["workers_per_level"] = {
                n: int(w) for n, w in zip(names, workers, strict=True) if w
            }
            entry["forecast_rps"] = _round(forecast)
        out.append(entry)
    return out
