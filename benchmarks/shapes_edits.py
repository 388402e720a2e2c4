"""Edits on the embedded shapes family (issue #17 item 3, done-when): repaint one object of a
rendered scene to another colour (inpainting), and recolour a one-object scene without a mask
(image-to-image), scored by the shapes scorer against the new prompt.

Per scene: a seeded one- or two-object scene is rendered exactly; object 0 gets a colour the
scene does not use; inpainting masks object 0's bounding box grown by `--grow` px (rounded out
to the latent grid). Reported per
mode and strength, as JSON lines: how often the scorer finds object 0 in its new colour with its
shape and size (`recoloured`), the share of scenes whose every requirement passes (`all_pass`),
the mean score, and how much pixels outside the mask changed (0-255: max over scenes, mean).

    .venv/bin/python benchmarks/shapes_edits.py [--scenes 16] [--variant shapes-l]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from argus.defaults import default_config
from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import Pipeline, load_pipeline
from argus.runtime.messages import EditInput
from argus.shapes.grammar import COLORS, Scene, sample_scene
from argus.shapes.render import layout, render
from argus.shapes.scorer import score


@dataclasses.dataclass
class Case:
    image: np.ndarray
    """uint8 (32, 32, 3): the rendered scene."""
    mask: np.ndarray
    """bool (32, 32): object 0's bounding box, grown, rounded out to the latent grid (the
    engine repaints whole latent pixels: 2x2 image pixels on the shapes models)."""
    prompt: str
    """The scene with object 0 in its new colour."""


def make_case(seed: int, grow: int, n_objects: int, cell: int) -> Case:
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, n_objects=n_objects)
    lay = layout(scene, rng)
    used = {o.color for o in scene.objects}
    new = [c for c in COLORS if c not in used][int(rng.integers(len(COLORS) - len(used)))]
    first = lay.objects[0]
    r = first.d / 2 + grow
    mask = np.zeros((32, 32), bool)
    mask[max(int(first.cy - r), 0):int(np.ceil(first.cy + r)),
         max(int(first.cx - r), 0):int(np.ceil(first.cx + r))] = True
    blocks = mask.reshape(32 // cell, cell, 32 // cell, cell).any(axis=(1, 3))
    mask = blocks.repeat(cell, 0).repeat(cell, 1)
    objects = (dataclasses.replace(scene.objects[0], color=new), *scene.objects[1:])
    return Case(render(lay), mask, Scene(objects, scene.relation, scene.background).prompt)


def run(pipe: Pipeline, cases: list[Case], strength: float, steps: int, guidance: float,
        masked: bool) -> dict[str, object]:
    specs = []
    for i, case in enumerate(cases):
        edit = EditInput((case.image,), case.mask if masked else None, strength)
        specs.append(GenerationSpec(case.prompt, seed=i, steps=steps, height=32, width=32,
                                    guidance_scale=guidance, start_step=edit.start_step(steps),
                                    init_image=edit.image(0), mask=edit.repaint()))
    start = time.perf_counter()
    results = generate(pipe, specs)
    seconds = time.perf_counter() - start
    recoloured, all_pass, scores, kept_max, kept_mean = [], [], [], [], []
    for case, result in zip(cases, results, strict=True):
        pixels = (np.clip(result.image, 0, 1) * 255).round().astype(np.int16)
        report = score(pixels.astype(np.uint8), case.prompt)
        req = report.requirements
        recoloured.append(all(req[f"object0.{k}"] for k in ("color", "shape", "size")))
        all_pass.append(report.score == 1.0)
        scores.append(report.score)
        outside = np.abs(pixels - case.image.astype(np.int16)).max(-1)[~case.mask]
        kept_max.append(int(outside.max()))
        kept_mean.append(float(outside.mean()))
    return {"recoloured": float(np.mean(recoloured)), "all_pass": float(np.mean(all_pass)),
            "mean_score": round(float(np.mean(scores)), 3),
            "outside_mask_max_diff": max(kept_max),
            "outside_mask_mean_diff": round(float(np.mean(kept_mean)), 3),
            "steps_run": results[0].steps_run, "batch_s": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--variant", default="shapes-l")
    parser.add_argument("--grow", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variant = default_config().variant(args.variant)
    pipe = load_pipeline(variant)
    runs = [("inpaint", True, 1, 1.0), ("inpaint", True, 2, 1.0), ("inpaint", True, 2, 0.8),
            ("img2img", False, 1, 0.8), ("img2img", False, 1, 0.6)]
    for mode, masked, n_objects, strength in runs:
        cases = [make_case(1000 + i, args.grow, n_objects, pipe.latent_factor)
                 for i in range(args.scenes)]
        row = run(pipe, cases, strength, variant.default_steps, variant.guidance_scale, masked)
        print(json.dumps({"mode": mode, "objects": n_objects, "strength": strength,
                          "scenes": args.scenes, "variant": args.variant, **row}), flush=True)


if __name__ == "__main__":
    main()
