"""`argus profile`: measure per-level service time, load time and per-prompt quality here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="measure a deployment's levels on this machine and write a profile JSON",
        description=__doc__,
    )
    parser.add_argument("--config", default=None, help="deployment config (default: embedded)")
    parser.add_argument("--prompts", required=True, type=Path,
                        help="prompt file: one prompt per line, or a JSON list of strings")
    parser.add_argument("--out", required=True, type=Path, help="profile JSON to write")
    parser.add_argument("--batch-sizes", default="1,2,4,8", help="comma-separated batch sizes")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds per prompt")
    parser.add_argument("--scorer", default="shapes",
                        help="shapes | clip:<model> | pickscore:<model>[@<processor>] | "
                             "multi:<model> (hub id or local path)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per measurement")
    parser.add_argument("--levels", default=None, help="comma-separated subset of levels")
    parser.add_argument("--full-level", default=None,
                        help="level that defines quality 1.0 (default: first variant at its "
                             "default steps, no cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--name", default=None, help="profile name (default: the out file stem)")
    parser.set_defaults(func=run)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{what}: empty")
    return values


def read_prompts(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"prompt file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise ValueError(f"{path}: expected a JSON list of strings")
        prompts = data
    else:
        prompts = [line.strip() for line in text.splitlines()]
        prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def run(args: argparse.Namespace) -> int:
    from argus.defaults import load_config
    from argus.profiling import ProfileSpec, measure_profile

    if args.repeats < 1 or args.threads < 1:
        raise ValueError("--repeats and --threads must be >= 1")
    config = load_config(args.config)
    try:
        levels = args.levels.split(",") if args.levels else None
        for name in (levels or []) + ([args.full_level] if args.full_level else []):
            config.level(name)
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None
    spec = ProfileSpec(
        config=config,
        prompts=read_prompts(args.prompts),
        batch_sizes=_int_list(args.batch_sizes, "batch-sizes"),
        seeds=_int_list(args.seeds, "seeds"),
        scorer=args.scorer,
        repeats=args.repeats,
        full_level=args.full_level,
        levels=levels,
        name=args.name or args.out.stem,
        threads=args.threads,
    )
    profile = measure_profile(spec)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(args.out)
    print(f"wrote {args.out}: {len(profile.levels)} levels, {len(profile.prompts)} prompts")
    return 0
