"""Routing overhead per request: prompt-only PRS prediction plus the budgeted decision.

    python benchmarks/routing.py [--quick]

Prints one JSON object per line (stdout):
    {"bench": "route", "predictor": "ridge" | "token-moe", "mean_us": x, "p99_us": x}
Predictors are fit on shapes-grammar prompts with random metric values: the cost of a decision
does not depend on what was learnt. One torch thread; wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from argus.routing.evaluate import make_predictor
from argus.routing.metrics import SHAPES_METRIC_NAMES
from argus.routing.router import BudgetedRouter, prs_policy
from argus.shapes.grammar import sample_prompts


def bench(model: str, train: list[str], queries: list[str]) -> dict:
    rng = np.random.default_rng(0)
    shape = (len(train), len(SHAPES_METRIC_NAMES))
    predictor = make_predictor(model, list(SHAPES_METRIC_NAMES), None, 1.0)
    predictor.fit(train, rng.random(shape), rng.random(shape))
    router = BudgetedRouter(prs_policy(predictor.predict_prs, predictor.calibration_prs), 0.5, 100)
    times = []
    for prompt in queries:
        start = time.perf_counter()
        router.route(prompt)
        times.append(time.perf_counter() - start)
    us = np.array(times) * 1e6
    return {"bench": "route", "predictor": model, "mean_us": round(float(us.mean()), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    train = sample_prompts(seed=0, count=64 if args.quick else 256, held_out=False)
    queries = sample_prompts(seed=1, count=200 if args.quick else 2000, held_out=True)
    for model in ("ridge", "token-moe"):
        print(json.dumps(bench(model, train, queries)), flush=True)


if __name__ == "__main__":
    main()
