"""`argus bench`: replay a trace open loop against a running server over HTTP and score every
image against the server's full-level image of the same prompt and seed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="open-loop HTTP load generator that scores every image",
        description=__doc__,
    )
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--trace", required=True,
                        help="a trace name (as for `argus simulate`) or a CSV file with an "
                             "arrival_s column (optional prompt, steps, n)")
    parser.add_argument("--rate", type=float, default=None,
                        help="target mean arrival rate, req/s (a CSV file keeps its own if unset)")
    parser.add_argument("--duration", type=float, default=60.0, help="trace seconds to replay")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the arrivals, the prompt draw and each request's image seed")
    parser.add_argument("--prompts", default=None,
                        help="`shapes` (held-out shapes-world prompts) or a file, one prompt a "
                             "line (default: the trace's prompt column, else shapes)")
    parser.add_argument("--model", default=None, help="`model` field of every request")
    parser.add_argument("--steps", type=int, default=None,
                        help="num_inference_steps of every request (a trace's steps column wins)")
    parser.add_argument("--compress", action="store_true",
                        help="squeeze the whole trace's shape into the duration")
    parser.add_argument("--max-requests", type=int, default=None, help="send at most this many")
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to wait for outstanding responses after the last arrival")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--ref-cache", type=Path, default=None,
                        help="reference score cache folder (default ~/.cache/argus-bench)")
    parser.add_argument("--ref-concurrency", type=int, default=4,
                        help="full-level reference requests in flight after the run")
    parser.add_argument("--json", type=Path, default=None, help="write the full result here")
    parser.add_argument("--plots", type=Path, default=None, help="write PNG plots here")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argus.bench import BenchSpec, run_bench
    from argus.bench.report import format_summary

    spec = BenchSpec(
        url=args.url.rstrip("/"), trace=args.trace, rate=args.rate, duration_s=args.duration,
        seed=args.seed, prompts=args.prompts, model=args.model, steps=args.steps,
        compress=args.compress, max_requests=args.max_requests, drain_s=args.drain,
        max_connections=args.max_connections, ref_cache=args.ref_cache,
        ref_concurrency=args.ref_concurrency, plots=args.plots,
    )
    summary = run_bench(spec, progress=not args.no_progress and sys.stderr.isatty())
    print(format_summary(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.json}")
    for path in summary.get("plots", []):
        print(f"wrote {path}")
    return 130 if summary["interrupted"] else 0
