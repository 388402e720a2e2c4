"""`argus train-predictor`: fit the quality predictor on a profile's per-prompt table and report
held-out MAE and floor-hit rate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-predictor", help="train the per-prompt quality predictor", description=__doc__
    )
    parser.add_argument("--profile", required=True, help="profile JSON or built-in name")
    parser.add_argument("--out", type=Path, required=True, help="predictor file to write")
    parser.add_argument("--floor", type=float, default=0.9, help="quality floor to evaluate")
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modelled-prompts", type=int, default=0, metavar="N",
        help="profile without a per-prompt table: draw N modelled rows (PartiPrompts texts when "
             "../shared/data is present), labelled modelled",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argus.control.builtin import resolve_profile
    from argus.control.levels import LevelTable
    from argus.control.training import train_and_evaluate

    if not 0 < args.holdout < 1:
        raise ValueError("--holdout must be in (0, 1)")
    profile = resolve_profile(args.profile)
    if args.modelled_prompts:
        from argus.control.quality_model import modelled_prompt_table

        profile = modelled_prompt_table(profile, prompt_texts(args.modelled_prompts, args.seed),
                                        args.seed)
    table = LevelTable.build(profile, slo_s=1.0)
    model, metrics = train_and_evaluate(profile, table, args.floor, args.holdout, args.seed)
    model.save(args.out)
    base = metrics["baseline_profile_means"]
    print(f"profile {profile.name} ({metrics['quality_source']} quality): "
          f"{metrics['train_prompts']} train / {metrics['heldout_prompts']} held-out prompts")
    print(f"  held-out MAE {metrics['mae']:.4f}  floor-hit rate {metrics['floor_hit_rate']:.1%} "
          f"at floor {args.floor}  mean speedup {metrics['mean_speedup']:.2f}x")
    print(f"  profile-means baseline: MAE {base['mae']:.4f}  floor-hit rate "
          f"{base['floor_hit_rate']:.1%}  mean speedup {base['mean_speedup']:.2f}x")
    print(json.dumps(metrics))
    print(f"wrote {args.out}")
    return 0


def prompt_texts(count: int, seed: int) -> list[str]:
    """`count` prompts: PartiPrompts from the shared data when present (read by path, Apache-2.0,
    Yu et al. 2022), else numbered placeholders."""
    import csv
    import random

    from argus.sim.traces import default_data_dir

    path = default_data_dir() / "partiprompts" / "PartiPrompts.tsv"
    if not path.exists():
        return [f"prompt {i}" for i in range(count)]
    with path.open(newline="") as fh:
        pool = [row["Prompt"] for row in csv.DictReader(fh, delimiter="\t")]
    rng = random.Random(seed)
    return [rng.choice(pool) for _ in range(count)]
