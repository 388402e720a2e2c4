"""Quality table of the shapes family: variant x steps x object count, held-out prompts.

    python scripts/eval_shapes.py --variants shapes-l,shapes-m,shapes-s --steps 20,10,5,2 \
        --prompts 256 --seeds 4 --out docs/shapes-eval.json [--folder-of shapes-l=DIR]

Generates through the serving core's engine with each variant's shipped folder (or the given
folders), scores with the shapes scorer, prints a markdown table and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from argus.config import VariantConfig  # noqa: E402
from argus.engine.pipeline import load_pipeline  # noqa: E402
from argus.shapes.evaluate import evaluate, summarize  # noqa: E402
from argus.shapes.grammar import sample_prompts  # noqa: E402

EVAL_PROMPT_SEED = 2024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="shapes-l,shapes-m,shapes-s")
    p.add_argument("--steps", default="20,10,5,2")
    p.add_argument("--prompts", type=int, default=256)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first..first+seeds-1")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--prompt-seed", type=int, default=EVAL_PROMPT_SEED,
                   help="held-out prompt sample (tune settings on another seed than the table's)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity (0 to 1)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--folder-of", action="append", default=[], help="VARIANT=DIR override")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "shapes-eval.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folders = dict(item.split("=", 1) for item in args.folder_of)
    prompts = sample_prompts(seed=args.prompt_seed, count=args.prompts, held_out=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows = []
    for name in args.variants.split(","):
        source = folders.get(name, f"builtin:{name}")
        pipe = load_pipeline(VariantConfig(name=name, source=source, default_steps=20,
                                           resolution=32, guidance_scale=args.guidance,
                                           eta=args.eta))
        for steps in (int(s) for s in args.steps.split(",")):
            t0 = time.perf_counter()
            results = evaluate(pipe, prompts, seeds, steps, args.guidance, args.batch)
            row = {"variant": name, "steps": steps, **summarize(results),
                   "images": len(results), "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(_line(row), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "prompts": len(prompts), "seeds": len(seeds), "guidance": args.guidance,
                "eta": args.eta,
                "prompt_seed": args.prompt_seed, "image_seeds": seeds, "rows": rows,
            }, indent=1) + "\n")
    print("\n" + markdown_table(rows))


def _line(row: dict) -> str:
    return (f"{row['variant']} {row['steps']:>3} steps: all {row['all']:.3f} "
            f"1/2/3 obj {row.get('1obj', 0):.3f}/{row.get('2obj', 0):.3f}/"
            f"{row.get('3obj', 0):.3f} clean {row['cleanliness']:.3f} ({row['seconds']}s)")


def markdown_table(rows: list[dict]) -> str:
    kinds = ["color", "shape", "size", "count", "relation", "background"]
    head = ("| variant | steps | all | 1 obj | 2 obj | 3 obj | cleanliness | "
            + " | ".join(kinds) + " |")
    lines = [head, "|" + "---|" * (7 + len(kinds))]
    for r in rows:
        cells = [r["variant"], str(r["steps"])] + [
            f"{r.get(k, float('nan')):.3f}"
            for k in ["all", "1obj", "2obj", "3obj", "cleanliness"] + [f"req.{k}" for k in kinds]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
