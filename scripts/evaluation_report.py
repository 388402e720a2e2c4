"""Markdown tables for docs/evaluation.md from `scripts/evaluate_baselines.py`'s results files.

    .venv/bin/python scripts/evaluation_report.py docs/eval/results.json > /tmp/tables.md
    # the grid in two processes: merge the two files (and write the merged one)
    .venv/bin/python scripts/evaluation_report.py docs/eval/results-8.json \
        docs/eval/results-64.json --merged docs/eval/results.json \
        --seeds docs/eval/results-8-subset-seed1.json docs/eval/results-8-subset-seed2.json

Sections: headline, goal table, baseline ratios, "degrade before drop" (the promise per cell),
seed noise (with --seeds: the seed-0 grid's cells rerun with other seeds), per-trace tables.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

ORDER = ("argus", "clipper-ha", "clipper-ht", "proteus", "nirvana", "diffserve", "pac", "random",
         "oracle")
STRONG = ("clipper-ha", "proteus", "nirvana", "diffserve")
BASELINES = tuple(n for n in ORDER if n not in ("argus", "oracle"))
VIOL_SLACK = 0.005
"""The promise: Argus's violations within 0.5 points of min(random, clipper-ha)'s."""
FAST = ("sd15", "sd15-s25", "small-sd", "tiny-sd")
"""The levels off SDXL in a100-sdxl (mean quality 0.78-0.86, 3-8x SDXL's images per second)."""


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (1.0 if a == 0 else float("inf"))


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
        "gp_vs_ht": _ratio(a["goodput_rps"], p["clipper-ht"]["goodput_rps"]),
        "q_vs_proteus": a["mean_relative_quality"] - p["proteus"]["mean_relative_quality"],
        "gp_vs_proteus": _ratio(a["goodput_rps"], p["proteus"]["goodput_rps"]),
        "gp_vs_ha": _ratio(a["goodput_rps"], p["clipper-ha"]["goodput_rps"]),
        "oracle": a.get("oracle_share"),
        "q_vs_random": a["mean_relative_quality"] - p["random"]["mean_relative_quality"],
        "qg_vs_proteus": _ratio(a["quality_goodput_rps"], p["proteus"]["quality_goodput_rps"]),
        "qg_vs_random": _ratio(a["quality_goodput_rps"], p["random"]["quality_goodput_rps"]),
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


# ------------------------------------------------------------------ degrade before drop
def promise(row: dict) -> dict:
    """Argus against the promise in one cell: violations at most min(random, clipper-ha) + 0.5
    points, quality-weighted goodput at least the best baseline's (the oracle excluded)."""
    p = row["policies"]
    a = p["argus"]
    ref = min(("random", "clipper-ha"), key=lambda n: p[n]["slo_violation_ratio"])
    best = max(BASELINES, key=lambda n: p[n]["quality_goodput_rps"])
    viol, ref_viol = a["slo_violation_ratio"], p[ref]["slo_violation_ratio"]
    qg, best_qg = a["quality_goodput_rps"], p[best]["quality_goodput_rps"]
    served = max(a.get("served") or 0, 1)
    return {
        "viol": viol, "ref": ref, "ref_viol": ref_viol,
        "viol_met": viol <= ref_viol + VIOL_SLACK + 1e-9,
        "qg": qg, "best": best, "best_qg": best_qg, "qg_ratio": _ratio(qg, best_qg),
        "qg_met": qg >= best_qg - 1e-9,
        "fast_share": sum(a["level_share"].get(n, 0.0) for n in FAST),
        "loads": a.get("variant_loads"),
        "reasons": a.get("rejection_reasons") or {},
        "rejected_pct": 100 * (a.get("rejected") or 0) / max(a.get("requests") or 1, 1),
        "served": served,
    }


def _reasons(reasons: dict) -> str:
    short = Counter()
    for reason, count in reasons.items():
        key = ("overloaded" if reason.startswith("overloaded") else
               "re-plan" if reason.startswith("re-plan") else
               "queued past deadline" if reason.startswith("deadline passed") else reason)
        short[key] += count
    return ", ".join(f"{k} {v}" for k, v in short.most_common()) or "none"


def promise_table(rows: list[dict]) -> str:
    out = []
    for workers in sorted({r["workers"] for r in rows}):
        cells = [r for r in rows if r["workers"] == workers]
        ps = [promise(r) for r in cells]
        both = sum(q["viol_met"] and q["qg_met"] for q in ps)
        out.append(
            f"**{workers} workers**: violations met in {sum(q['viol_met'] for q in ps)}/"
            f"{len(ps)}, quality-weighted goodput met in {sum(q['qg_met'] for q in ps)}/{len(ps)}"
            f" (within 1%: {sum(q['qg_ratio'] >= 0.99 for q in ps)}/{len(ps)}, within 3%: "
            f"{sum(q['qg_ratio'] >= 0.97 for q in ps)}/{len(ps)}), both in {both}/{len(ps)}.\n")
        out.append(
            "| trace | load | Argus viol % | min(random, HA) viol % | viol | Argus q-goodput "
            "| best baseline q-goodput | ratio | q-goodput | Argus off SDXL % "
            "| Argus loads | Argus rejections (reason: count) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r, q in zip(cells, ps, strict=True):
            out.append(
                f"| {r['trace']} | {r['load']:g}x | {100 * q['viol']:.1f} | "
                f"{100 * q['ref_viol']:.1f} ({q['ref']}) | "
                f"{'met' if q['viol_met'] else '**missed**'} | {q['qg']:.3f} | "
                f"{q['best_qg']:.3f} ({q['best']}) | {q['qg_ratio']:.3f} | "
                f"{'met' if q['qg_met'] else '**missed**'} | {100 * q['fast_share']:.0f} | "
                f"{q['loads']} | {_reasons(q['reasons'])} |")
        out.append("")
    return "\n".join(out)


def promise_winners(rows: list[dict]) -> str:
    """Which baseline beats Argus's quality-weighted goodput, by load and cluster size."""
    out = ["| workers | load | q-goodput missed | best baseline in the misses (count) "
           "| median Argus / best | worst (cell, ratio) |", "|---|---|---|---|---|---|"]
    for workers in sorted({r["workers"] for r in rows}):
        for load in sorted({r["load"] for r in rows}):
            cells = [r for r in rows if r["workers"] == workers and r["load"] == load]
            if not cells:
                continue
            missed = [(r, promise(r)) for r in cells if not promise(r)["qg_met"]]
            if not missed:
                out.append(f"| {workers} | {load:g}x | 0/{len(cells)} | – | – | – |")
                continue
            who = Counter(q["best"] for _, q in missed)
            worst = min(missed, key=lambda m: m[1]["qg_ratio"])
            out.append(
                f"| {workers} | {load:g}x | {len(missed)}/{len(cells)} | "
                + ", ".join(f"{k} {v}" for k, v in who.most_common())
                + f" | {np.median([q['qg_ratio'] for _, q in missed]):.3f} | "
                f"{worst[0]['trace']} {worst[1]['qg_ratio']:.3f} |")
    return "\n".join(out)


# ------------------------------------------------------------------ seed noise
SEED_KEYS = (("slo_violation_ratio", 100, 1, "viol %"), ("quality_goodput_rps", 1, 3, "q-goodput"),
             ("mean_relative_quality", 1, 1, "quality %"), ("oracle_share", 1, 3, "of oracle"))


def seed_table(base: list[dict], others: list[list[dict]]) -> str:
    """Argus per cell for seed 0 (the grid) and each rerun seed, with the spread (max - min)."""
    keyed = [{(r["workers"], r["trace"], r["load"]): r for r in rows} for rows in others]
    cells = [r for r in base if all((r["workers"], r["trace"], r["load"]) in k for k in keyed)]
    if not cells:
        return "(no cell of the grid was rerun)"
    seeds = [0] + [next(iter(k.values())).get("seed", i + 1) for i, k in enumerate(keyed)]
    head = " | ".join(f"{label} (seeds {'/'.join(map(str, seeds))}; spread)"
                      for *_, label in SEED_KEYS)
    out = [f"| cell | {head} | q-goodput / best baseline's (spread) "
           "| promise met (viol, q-goodput) per seed |",
           "|---|" + "---|" * (len(SEED_KEYS) + 2)]
    spreads = {key: [] for key, *_ in SEED_KEYS}
    for row in cells:
        key = (row["workers"], row["trace"], row["load"])
        runs = [row] + [k[key] for k in keyed]
        parts = []
        for name, scale, digits, _ in SEED_KEYS:
            vals = [scale * (r["policies"]["argus"].get(name) or 0.0) for r in runs]
            spreads[name].append(max(vals) - min(vals))
            parts.append("/".join(f"{v:.{digits}f}" for v in vals)
                         + f" ({max(vals) - min(vals):.{digits}f})")
        ps = [promise(r) for r in runs]
        marks = " ".join(("✓" if q["viol_met"] else "✗") + ("✓" if q["qg_met"] else "✗")
                         for q in ps)
        ratios = [q["qg_ratio"] for q in ps]
        parts.append("/".join(f"{v:.3f}" for v in ratios) + f" ({max(ratios) - min(ratios):.3f})")
        spreads.setdefault("ratio", []).append(max(ratios) - min(ratios))
        out.append(f"| {row['trace']} {row['workers']} w {row['load']:g}x | "
                   + " | ".join(parts) + f" | {marks} |")
    out.append("")
    out.append("Median spread over these cells: " + ", ".join(
        f"{label} {np.median(spreads[name]):.{digits}f} (max {max(spreads[name]):.{digits}f})"
        for name, _, digits, label in SEED_KEYS)
        + f", q-goodput / best baseline's {np.median(spreads['ratio']):.3f} "
        f"(max {max(spreads['ratio']):.3f})")
    qg_rel = [
        (max(v) - min(v)) / np.mean(v) for v in (
            [r["policies"]["argus"]["quality_goodput_rps"] for r in
             [row] + [k[(row["workers"], row["trace"], row["load"])] for k in keyed]]
            for row in cells)
    ]
    out[-1] += (f"; q-goodput spread relative to its mean: median {100 * np.median(qg_rel):.1f}%,"
               f" max {100 * max(qg_rel):.1f}%.")
    out.append("")
    out.append("Headline medians over these cells, per seed (Argus):")
    out.append("")
    out.append("| seed | viol ratio vs best strong baseline (finite) | Δquality vs random "
               "| q-goodput vs proteus | q-goodput vs random | of oracle "
               "| promise met (viol, qg) |")
    out.append("|---|---|---|---|---|---|---|")
    for seed, rows in zip(seeds, [cells] + [[k[(r["workers"], r["trace"], r["load"])]
                                              for r in cells] for k in keyed], strict=True):
        gs = [goals(r) for r in rows]
        ps = [promise(r) for r in rows]
        finite = [g["viol_ratio"] for g in gs if np.isfinite(g["viol_ratio"])]
        out.append(
            f"| {seed} | {np.median(finite) if finite else float('nan'):.2f} "
            f"({len(finite)}/{len(gs)} finite) | "
            f"{np.median([g['q_vs_random'] for g in gs]):+.1f} | "
            f"{np.median([g['qg_vs_proteus'] for g in gs]):.3f} | "
            f"{np.median([g['qg_vs_random'] for g in gs]):.3f} | "
            f"{np.median([g['oracle'] for g in gs]):.3f} | "
            f"{sum(q['viol_met'] for q in ps)}/{len(ps)}, "
            f"{sum(q['qg_met'] for q in ps)}/{len(ps)} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="results files, concatenated")
    parser.add_argument("--merged", type=Path, help="write the concatenated rows here")
    parser.add_argument("--seeds", nargs="*", type=Path, default=[],
                        help="reruns of grid cells with other seeds")
    args = parser.parse_args()
    rows = [row for path in args.results for row in json.loads(path.read_text())]
    if args.merged:
        args.merged.write_text(json.dumps(rows, indent=1) + "\n")
    sections = [headline(rows), goal_table(rows), baseline_ratios(rows),
                "### Degrade before drop: per cell\n\n" + promise_table(rows),
                promise_winners(rows)]
    if args.seeds:
        others = [json.loads(path.read_text()) for path in args.seeds]
        sections.append("### Seed noise\n\n" + seed_table(rows, others))
    sections.append(per_trace_tables(rows))
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
