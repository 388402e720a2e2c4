"""Generate with the serving core's engine and score with the shapes scorer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import Pipeline
from argus.shapes.grammar import CANVAS, parse
from argus.shapes.model import PIXEL_UNSHUFFLE, Components
from argus.shapes.scorer import ScoreReport, score


def pipeline_from(
    parts: Components, name: str, device: str = "cpu", eta: float = 0.0
) -> Pipeline:
    """An engine pipeline around in-memory components (e.g. EMA weights during training)."""
    return Pipeline(
        name=name,
        unet=parts.unet.eval(),
        text_encoder=parts.text_encoder.eval(),
        tokenizer=parts.tokenizer,
        scheduler_class=type(parts.scheduler),
        scheduler_config=dict(parts.scheduler.config),
        pixel_unshuffle=PIXEL_UNSHUFFLE,
        device=torch.device(device),
        eta=eta,
    )


@dataclass(frozen=True)
class Scored:
    prompt: str
    seed: int
    report: ScoreReport

    @property
    def objects(self) -> int:
        scene = parse(self.prompt)
        return 0 if scene is None else len(scene.objects)


def generate_images(
    pipe: Pipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    batch: int = 64,
) -> list[np.ndarray]:
    """Float images in [0, 1], one per (prompt, seed) pair, in order."""
    specs = [
        GenerationSpec(p, s, steps, CANVAS, CANVAS, guidance)
        for p, s in zip(prompts, seeds, strict=True)
    ]
    images: list[np.ndarray] = []
    for i in range(0, len(specs), batch):
        images += [r.image for r in generate(pipe, specs[i : i + batch])]
    return images


def evaluate(
    pipe: Pipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    batch: int = 64,
) -> list[Scored]:
    """Score every prompt with every seed at one (variant, steps) level."""
    pairs = [(p, s) for p in prompts for s in seeds]
    images = generate_images(
        pipe, [p for p, _ in pairs], [s for _, s in pairs], steps, guidance, batch
    )
    return [Scored(p, s, score(img, p)) for (p, s), img in zip(pairs, images, strict=True)]


def summarize(results: Sequence[Scored]) -> dict[str, float]:
    """Mean score overall, per object count, mean cleanliness and per requirement kind."""
    out: dict[str, float] = {"all": float(np.mean([r.report.score for r in results]))}
    for n in (1, 2, 3):
        sub = [r.report.score for r in results if r.objects == n]
        if sub:
            out[f"{n}obj"] = float(np.mean(sub))
    out["cleanliness"] = float(np.mean([r.report.cleanliness for r in results]))
    kinds: dict[str, list[float]] = {}
    for r in results:
        for k, v in r.report.by_kind().items():
            kinds.setdefault(k, []).append(v)
    out.update({f"req.{k}": float(np.mean(v)) for k, v in sorted(kinds.items())})
    return out
