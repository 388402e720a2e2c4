"""Markdown tables for docs/evaluation.md from `scripts/evaluate_baselines.py`'s results.json.

    .venv/bin/python scripts/evaluation_report.py docs/eval/results.json > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ORDER = ("argus", "clipper-ha", "clipper-ht", "proteus", "nirvana", "diffserve", "pac", "random",
         "oracle")
STRONG = ("clipper-ha", "proteus", "nirvana", "diffserve")


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def per_trace_tables(rows: list[dict]) -> str:
    out = []
    keyed = {(r["workers"], r["trace"], r["load"]): r for r in rows}
    for workers in sorted({r["workers"] for r in rows}):
        for trace in dict.fromkeys(r["trace"] for r in rows):
            loads = sorted(load for (w, t, load) in keyed if w == workers and t == trace)
            if not loads:
                continue
            head = " | ".join(
                f"{load:g}x: viol % / qual % / goodput / of oracle %" for load in loads
            )
            rates = ", ".join(f"{keyed[(workers, trace, load)]['rate_rps']:.2f}" for load in loads)
            out.append(f"#### {trace}, {workers} workers (rates {rates} req/s)\n")
            out.append(f"| policy | {head} |")
            out.append("|---|" + "---|" * len(loads))
            for name in ORDER:
                cells = []
                for load in loads:
                    p = keyed[(workers, trace, load)]["policies"].get(name)
                    if p is None:
                        cells.append("")
                        continue
                    cells.append(
                        f"{_fmt(p['slo_violation_ratio'], 100)} / "
                        f"{_fmt(p['mean_relative_quality'])} / {_fmt(p['goodput_rps'], 1, 2)} / "
                        f"{_fmt(p.get('oracle_share'), 100)}"
                    )
                label = f"**{name}**" if name == "argus" else name
                out.append(f"| {label} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def goals(row: dict) -> dict:
    p = row["policies"]
    a = p["argus"]
    best_viol = min(p[n]["slo_violation_ratio"] for n in STRONG)
    share = [np.array(list(p[n]["level_share"].values())) for n in ("argus", "random")]
    return {
        "viol_ratio": a["slo_violation_ratio"] / best_viol if best_viol > 0
        else (0.0 if a["slo_violation_ratio"] == 0 else float("inf")),
        "best_viol": best_viol,
        "q_vs_ht": a["mean_relative_quality"] - p["clipper-ht"]["mean_relative_quality"],
        "gp_vs_ht": a["goodput_rps"] / p["clipper-ht"]["goodput_rps"],
        "q_vs_proteus": a["mean_relative_quality"] - p["proteus"]["mean_relative_quality"],
        "gp_vs_proteus": a["goodput_rps"] / p["proteus"]["goodput_rps"],
        "gp_vs_ha": a["goodput_rps"] / p["clipper-ha"]["goodput_rps"],
        "oracle": a.get("oracle_share"),
        "q_vs_random": a["mean_relative_quality"] - p["random"]["mean_relative_quality"],
        "qg_vs_proteus": a["quality_goodput_rps"] / p["proteus"]["quality_goodput_rps"],
        "qg_vs_random": a["quality_goodput_rps"] / p["random"]["quality_goodput_rps"],
        "share_l1_random": float(np.abs(share[0] - share[1]).sum()),
    }


def goal_table(rows: list[dict]) -> str:
    out = [
        "| trace | workers | load | viol ratio vs best of HA/Proteus/NIRVANA/DiffServe (goal ≤ 0.1)"
        " | Δquality vs HT (goal ≥ 10) | goodput vs HT | Δquality vs Proteus (goal ≥ 10) "
        "| goodput vs Proteus | goodput vs HA (goal ≥ 1.4) | of oracle (goal ≥ 0.95) "
        "| Δquality vs random (share L1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["load"] < 1.0:
            continue
        g = goals(row)
        ratio = "∞" if np.isinf(g["viol_ratio"]) else f"{g['viol_ratio']:.2f}"
        out.append(
            f"| {row['trace']} | {row['workers']} | {row['load']:g}x | {ratio} "
            f"(best {100 * g['best_viol']:.1f}%) | {g['q_vs_ht']:+.1f} | {g['gp_vs_ht']:.2f} | "
            f"{g['q_vs_proteus']:+.1f} | {g['gp_vs_proteus']:.2f} | {g['gp_vs_ha']:.2f} | "
            f"{_fmt(g['oracle'], 1, 3)} | {g['q_vs_random']:+.1f} ({g['share_l1_random']:.2f}) |"
        )
    return "\n".join(out)


def headline(rows: list[dict]) -> str:
    """Medians over the near-capacity and overload runs."""
    gs = [goals(r) for r in rows if r["load"] >= 1.0]

    def med(key: str) -> float:
        vals = [g[key] for g in gs if g[key] is not None and np.isfinite(g[key])]
        return float(np.median(vals)) if vals else float("nan")

    met = {
        "viol": sum(g["viol_ratio"] <= 0.1 for g in gs),
        "quality": sum(g["q_vs_ht"] >= 10 and g["q_vs_proteus"] >= 10 and g["gp_vs_ht"] >= 1
                       and g["gp_vs_proteus"] >= 1 for g in gs),
        "ha": sum(g["gp_vs_ha"] >= 1.4 for g in gs),
        "oracle": sum((g["oracle"] or 0) >= 0.95 for g in gs),
        "random": sum(g["q_vs_random"] > 0.5 for g in gs),
        "random_clear": sum(g["q_vs_random"] >= 1.5 for g in gs),
        "qg_proteus": sum(g["qg_vs_proteus"] >= 1.0 for g in gs),
        "qg_random": sum(g["qg_vs_random"] >= 1.0 for g in gs),
    }
    n = len(gs)
    return "\n".join([
        f"Over the {n} near-capacity and overload runs (medians):",
        f"- SLO-violation ratio vs the best of clipper-ha/proteus/nirvana/diffserve: "
        f"{med('viol_ratio'):.2f} where defined (goal ≤ 0.1 met in {met['viol']}/{n}; "
        f"{sum(np.isinf(g['viol_ratio']) for g in gs)} runs where a baseline had none and "
        "Argus some)",
        f"- quality vs clipper-ht: {med('q_vs_ht'):+.1f} points at {med('gp_vs_ht'):.2f}x its "
        f"goodput; vs proteus: {med('q_vs_proteus'):+.1f} points at {med('gp_vs_proteus'):.2f}x "
        f"(goal met in {met['quality']}/{n})",
        f"- goodput vs clipper-ha: {med('gp_vs_ha'):.2f}x (goal ≥ 1.4 met in {met['ha']}/{n})",
        f"- share of the oracle bound: {med('oracle'):.3f} "
        f"(goal ≥ 0.95 met in {met['oracle']}/{n})",
        f"- quality vs random: {med('q_vs_random'):+.1f} points at level-share L1 distance "
        f"{med('share_l1_random'):.2f} (argus above random by > 0.5 points in {met['random']}/{n},"
        f" by ≥ 1.5 in {met['random_clear']}/{n})",
        f"- quality-weighted goodput vs proteus: {med('qg_vs_proteus'):.3f}x (≥ 1 in "
        f"{met['qg_proteus']}/{n}); vs random: {med('qg_vs_random'):.3f}x (≥ 1 in "
        f"{met['qg_random']}/{n})",
    ])


def baseline_ratios(rows: list[dict]) -> str:
    """The closing note's table: Argus vs each baseline, medians over the 1x and 2x runs."""
    runs = [r for r in rows if r["load"] >= 1.0]
    out = [
        "| vs | SLO-violation ratio (Argus / baseline) | quality points (Argus - baseline) "
        "| goodput ratio | share of oracle (Argus vs baseline) |",
        "|---|---|---|---|---|",
    ]
    argus_share = float(np.median([r["policies"]["argus"]["oracle_share"] for r in runs]))
    for name in ORDER[1:-1]:
        ratios, zero = [], 0
        for r in runs:
            a, b = r["policies"]["argus"], r["policies"][name]
            if b["slo_violation_ratio"] > 0:
                ratios.append(a["slo_violation_ratio"] / b["slo_violation_ratio"])
            elif a["slo_violation_ratio"] > 0:
                zero += 1

        def med(key: str, diff: bool, name: str = name) -> float:
            vals = [
                r["policies"]["argus"][key] - r["policies"][name][key] if diff
                else r["policies"]["argus"][key] / r["policies"][name][key]
                for r in runs
            ]
            return float(np.median(vals))

        viol = f"{np.median(ratios):.2f}" if ratios else "–"
        if zero:
            viol += f" ({zero}/{len(runs)} runs: baseline 0%, Argus > 0)"
        share = float(np.median([r["policies"][name]["oracle_share"] for r in runs]))
        out.append(
            f"| {name} | {viol} | {med('mean_relative_quality', True):+.1f} | "
            f"{med('goodput_rps', False):.2f}x | {argus_share:.3f} vs {share:.3f} |"
        )
    return "\n".join(out)


def main() -> None:
    rows = json.loads(Path(sys.argv[1]).read_text())
    print(headline(rows))
    print()
    print(goal_table(rows))
    print()
    print(baseline_ratios(rows))
    print()
    print(per_trace_tables(rows))


if __name__ == "__main__":
    main()
