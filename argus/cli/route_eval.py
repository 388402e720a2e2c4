"""`argus route-eval`: ΔP and cloud-call reduction of budgeted edge/cloud routing (RouteT2I)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import argus

DEFAULT_PROFILE = Path(argus.__file__).parent / "assets" / "shapes" / "profile.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "route-eval",
        help="evaluate edge/cloud routing on held-out prompts of a two-tier profile",
        description=__doc__,
    )
    parser.add_argument("--profile", type=Path, action="append", default=None,
                        help="profile JSON with per-prompt metrics; repeat to join levels "
                             "measured in separate runs on the same prompts "
                             f"(default: {DEFAULT_PROFILE})")
    parser.add_argument("--budget", type=float, default=0.5,
                        help="maximum share of requests sent to the cloud (default 0.5)")
    parser.add_argument("--json", type=Path, default=None, dest="json_out",
                        help="also write the results to this JSON file")
    parser.add_argument("--edge-level", default=None, help="level serving as the edge tier")
    parser.add_argument("--cloud-level", default=None, help="level serving as the cloud tier")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated metric names to compare the tiers on (default: "
                             "the shapes vector if present, else all in the profile)")
    parser.add_argument("--folds", type=int, default=5,
                        help="cross-validation folds: every prompt is held out once and routed "
                             "by a predictor trained on the others (default 5; 1: one split)")
    parser.add_argument("--held-out", type=float, default=0.3,
                        help="share held out when --folds 1 (default 0.3)")
    parser.add_argument("--gamma", type=float, default=1.0, help="PRS temperature Γ")
    parser.add_argument("--window", type=int, default=100,
                        help="router's sliding window in requests (default 100)")
    parser.add_argument("--predictor", default="ridge", choices=("ridge", "token-moe"),
                        help="prompt-only PRS model (default ridge; token-moe: RouteT2I-style)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-predictor", type=Path, default=None,
                        help="write the trained PRS predictor here (for routing.predictor)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argus.control.profile import Profile
    from argus.routing.evaluate import evaluate, merge_profiles, tier_data

    if not 0.0 <= args.budget <= 1.0:
        raise ValueError(f"--budget must be in [0, 1], got {args.budget}")
    if not 0.0 < args.held_out < 1.0:
        raise ValueError(f"--held-out must be in (0, 1), got {args.held_out}")
    paths = args.profile or [DEFAULT_PROFILE]
    for path in paths:
        if not path.is_file():
            hint = (" (the shipped profile of the embedded shapes family has not been built yet;"
                    " pass --profile)" if args.profile is None else "")
            raise FileNotFoundError(f"no profile at {path}{hint}")
    profile = merge_profiles([Profile.load(path) for path in paths])
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    data = tier_data(profile, args.edge_level, args.cloud_level, metrics)
    result, predictor = evaluate(data, args.budget, gamma=args.gamma, held_out=args.held_out,
                                 seed=args.seed, window_requests=args.window,
                                 model=args.predictor, folds=args.folds)
    result["details"]["profile"] = " + ".join(map(str, paths))
    result["details"]["quality_source"] = profile.quality_source
    _print(result)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    if args.save_predictor is not None:
        predictor.save(args.save_predictor)
    return 0


def _print(result: dict) -> None:
    d = result["details"]
    reduction = result["cloud_call_reduction"]
    print(f"profile {d['profile']} ({d['quality_source']}): edge {d['edge_level']}, "
          f"cloud {d['cloud_level']}, {d['held_out_prompts']} held-out prompts "
          f"({d['folds']}-fold)")
    print(f"predictor {d['predictor']['kind']}, held-out PRS correlation "
          f"{d['prs_correlation']:.3f}")
    print(f"budget {d['budget']:.2f}  alpha {d['alpha']:.4f}  cloud share "
          f"{result['cloud_share']:.3f}")
    print(f"delta_p {result['delta_p']:.3f}  (random at the same share "
          f"{result['delta_p_random']:.3f}, prompt-length {d['baselines']['prompt_length']:.3f}, "
          f"oracle {d['baselines']['oracle_prs']:.3f})")
    print("cloud_call_reduction vs random at equal delta_p: "
          + ("n/a" if reduction is None else f"{reduction:.3f}"))
    print("tokens pushing to the cloud: " + ", ".join(t for t, _ in d["key_tokens"]))
