"""The live study's tables and verdicts (issue #14): the study table (bench side), the fidelity
table (bench vs simulate, each metric checked against the issue's tolerance) and the two goals.
Pure functions of the cell JSONs written by `argus.bench.study.run_cell`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

GOODPUT_REL_TOL = 0.10
"""Simulated goodput within 10% of the measured one."""
VIOLATION_PT_TOL = 3.0
"""SLO-violation ratio within 3 percentage points."""
LEVEL_L1_TOL = 0.10
"""Level shares: L1 distance at most 0.1."""
QUALITY_PT_TOL = 3.0
"""Mean relative quality within 3 points (percent of the full level's)."""
GOODPUT_GOAL = 1.4
"""argus's goodput >= 1.4x clipper-ha's ..."""
QUALITY_GOAL = 0.95
"""... at >= 95% measured relative quality."""


@dataclass(frozen=True)
class Check:
    """One fidelity metric: measured (bench) vs simulated, and whether within tolerance."""

    metric: str
    bench: float | None
    sim: float | None
    gap: float | None
    within: bool


def level_l1(a: dict[str, float], b: dict[str, float]) -> float:
    """L1 distance between two level-share maps (missing levels count 0)."""
    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def fidelity(bench: dict, sim: dict) -> list[Check]:
    """The issue's four fidelity checks for one cell; gaps are signed, simulated minus measured
    (goodput relative to the measured, violations and quality in points)."""
    gb, gs = bench["goodput_rps"], sim["goodput_rps"]
    rel = (gs - gb) / gb if gb > 0 else (0.0 if gs == 0 else float("inf"))
    vb, vs = 100 * bench["slo_violation_ratio"], 100 * sim["slo_violation_ratio"]
    l1 = level_l1(bench["level_share"], sim["level_share"])
    qb, qs = bench["mean_relative_quality"], sim["mean_relative_quality"]
    qgap = None if qb is None or qs is None else qs - qb
    return [
        Check("goodput_rps", gb, gs, rel, abs(rel) <= GOODPUT_REL_TOL),
        Check("slo_violation_pt", vb, vs, vs - vb, abs(vs - vb) <= VIOLATION_PT_TOL),
        Check("level_share_l1", None, None, l1, l1 <= LEVEL_L1_TOL),
        Check("mean_relative_quality_pt", qb, qs, qgap,
              qgap is not None and abs(qgap) <= QUALITY_PT_TOL),
    ]


def study_row(cell: dict) -> dict:
    """The bench side of one cell, as the study table shows it."""
    b = cell["bench"]
    return {
        "trace": cell["trace"], "load": cell["load"], "policy": cell["policy"],
        "rate_rps": cell["rate_rps"], "requests": b["requests"],
        "violations_pct": round(100 * b["slo_violation_ratio"], 1),
        "goodput_rps": b["goodput_rps"],
        "measured_quality": b["measured_relative_quality"],
        "predicted_quality": b["predicted_relative_quality"],
        "qw_goodput": b["quality_weighted_goodput"],
        "p50_s": b["latency_p50_s"], "p99_s": b["latency_p99_s"],
    }


def merged_table(cells: list[dict]) -> list[dict]:
    """One flat row per cell: the study row plus the simulator's figures and the verdicts."""
    rows = []
    for cell in cells:
        row = study_row(cell)
        s = cell["simulate"]
        row.update({
            "sim_violations_pct": round(100 * s["slo_violation_ratio"], 1),
            "sim_goodput_rps": s["goodput_rps"],
            "sim_quality_pct": s["mean_relative_quality"],
            "sim_qw_goodput": s.get("quality_weighted_goodput"),
        })
        for check in fidelity(cell["bench"], s):
            row[f"fid_{check.metric}"] = None if check.gap is None else round(check.gap, 4)
            row[f"fid_{check.metric}_ok"] = check.within
        rows.append(row)
    return rows


def _by_workload(cells: list[dict]) -> dict[tuple[str, float], dict[str, dict]]:
    out: dict[tuple[str, float], dict[str, dict]] = defaultdict(dict)
    for cell in cells:
        out[(cell["trace"], cell["load"])][cell["policy"]] = cell["bench"]
    return dict(sorted(out.items()))


def goal_goodput(cells: list[dict]) -> list[dict]:
    """Goal 1 per workload: argus's goodput >= 1.4x clipper-ha's with argus's measured relative
    quality >= 95%. Workloads missing either policy are left out."""
    verdicts = []
    for (trace, load), runs in _by_workload(cells).items():
        if "argus" not in runs or "clipper-ha" not in runs:
            continue
        a, c = runs["argus"], runs["clipper-ha"]
        ratio = a["goodput_rps"] / c["goodput_rps"] if c["goodput_rps"] > 0 else float("inf")
        quality = a["measured_relative_quality"] or 0.0
        verdicts.append({
            "trace": trace, "load": load, "ratio": round(ratio, 3), "quality": quality,
            "met": ratio >= GOODPUT_GOAL and quality >= QUALITY_GOAL,
        })
    return verdicts


def goal_best_qwg(cells: list[dict]) -> list[dict]:
    """Goal 2 per workload at load >= 1x: argus has the best quality-weighted goodput."""
    verdicts = []
    for (trace, load), runs in _by_workload(cells).items():
        if load < 1 or "argus" not in runs or len(runs) < 2:
            continue
        best = max(runs, key=lambda p: (runs[p]["quality_weighted_goodput"], p == "argus"))
        ours = runs["argus"]["quality_weighted_goodput"]
        top = runs[best]["quality_weighted_goodput"]
        verdicts.append({
            "trace": trace, "load": load, "argus": ours, "best": best, "best_value": top,
            "met": ours >= top,
        })
    return verdicts


def _f(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _mark(ok: bool) -> str:
    return "within" if ok else "**outside**"


def study_table(cells: list[dict]) -> str:
    head = ("| trace | load | policy | req/s | requests | SLO viol. | goodput | measured q. "
            "| predicted q. | q-w goodput | p50 s | p99 s |\n" + "|---" * 12 + "|")
    lines = [head]
    for r in (study_row(c) for c in cells):
        lines.append(
            f"| {r['trace']} | {r['load']:g}x | {r['policy']} | {r['rate_rps']:.2f} "
            f"| {r['requests']} | {r['violations_pct']:.1f}% | {r['goodput_rps']:.2f} "
            f"| {_f(r['measured_quality'], '.3f')} | {_f(r['predicted_quality'], '.3f')} "
            f"| {r['qw_goodput']:.2f} | {_f(r['p50_s'])} | {_f(r['p99_s'])} |")
    return "\n".join(lines)


def fidelity_table(cells: list[dict], key: str = "simulate") -> str:
    """Bench vs the simulation under `key` (`simulate`: the shipped profile;
    `simulate_calibrated`: its times scaled by the live speed factor, shown per row)."""
    head = ("| trace | load | policy | sim profile | goodput bench / sim | viol. bench / sim (pt) "
            "| level L1 | quality bench / sim (%) |\n" + "|---" * 8 + "|")
    lines = [head]
    for cell in (c for c in cells if c.get(key)):
        g, v, lv, q = fidelity(cell["bench"], cell[key])
        lines.append(
            f"| {cell['trace']} | {cell['load']:g}x | {cell['policy']} | {cell[key]['profile']} "
            f"| {g.bench:.2f} / {g.sim:.2f} ({g.gap:+.0%} {_mark(g.within)}) "
            f"| {v.bench:.1f} / {v.sim:.1f} ({_mark(v.within)}) "
            f"| {lv.gap:.2f} ({_mark(lv.within)}) "
            f"| {_f(q.bench, '.1f')} / {_f(q.sim, '.1f')} ({_mark(q.within)}) |")
    return "\n".join(lines)


def fidelity_counts(cells: list[dict], key: str = "simulate") -> dict[str, tuple[int, int]]:
    """metric -> (cells within tolerance, cells)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for cell in (c for c in cells if c.get(key)):
        for check in fidelity(cell["bench"], cell[key]):
            counts[check.metric][0] += check.within
            counts[check.metric][1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def goals_section(cells: list[dict]) -> str:
    lines = ["Goal 1: argus's goodput >= 1.4x clipper-ha's at >= 95% measured relative quality.",
             "", "| trace | load | argus / clipper-ha goodput | argus measured q. | verdict |",
             "|---|---|---|---|---|"]
    for g in goal_goodput(cells):
        lines.append(f"| {g['trace']} | {g['load']:g}x | {g['ratio']:.2f}x | {g['quality']:.3f} "
                     f"| {'met' if g['met'] else '**missed**'} |")
    lines += ["", "Goal 2: argus has the best quality-weighted goodput at every load >= 1x.", "",
              "| trace | load | argus | best policy (value) | verdict |", "|---|---|---|---|---|"]
    for g in goal_best_qwg(cells):
        lines.append(f"| {g['trace']} | {g['load']:g}x | {g['argus']:.2f} "
                     f"| {g['best']} ({g['best_value']:.2f}) "
                     f"| {'met' if g['met'] else '**missed**'} |")
    return "\n".join(lines)


def level_quality(cells: list[dict], profile_means: dict[str, float]) -> list[dict]:
    """Per level over every cell's served images: measured relative quality (held-out prompts,
    the bench's references), the server's predicted quality, and the profile's mean (what the
    simulator's quality table gives for its own prompts)."""
    measured: dict[str, list[float]] = defaultdict(list)
    predicted: dict[str, list[float]] = defaultdict(list)
    for cell in cells:
        for record in cell["bench"].get("records", []):
            for image in record.get("images", []):
                if image.get("relative_quality") is not None:
                    measured[image["level"]].append(image["relative_quality"])
                    predicted[image["level"]].append(image.get("predicted_quality") or 0.0)
    return [{
        "level": level, "images": len(values),
        "measured": round(sum(values) / len(values), 4),
        "predicted": round(sum(predicted[level]) / len(values), 4),
        "profile": profile_means.get(level),
    } for level, values in sorted(measured.items(), key=lambda kv: -len(kv[1]))]


def level_quality_table(rows: list[dict]) -> str:
    lines = ["| level | images | measured rel. quality | server's prediction | profile mean |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['level']} | {r['images']} | {r['measured']:.3f} | {r['predicted']:.3f} "
              f"| {_f(r['profile'], '.3f')} |" for r in rows]
    return "\n".join(lines)
