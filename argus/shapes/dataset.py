"""Procedural, seeded training data: random scenes, their prompts and their exact renderings."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from argus.shapes.grammar import is_held_out, sample_scene
from argus.shapes.model import PIXEL_UNSHUFFLE, FastTokenizer
from argus.shapes.render import layout, render_batch


def sample_batch(
    rng: np.random.Generator, batch: int, null_caption_p: float = 0.1
) -> tuple[np.ndarray, list[str]]:
    """Images (B, 32, 32, 3) uint8 and their captions ("" = null caption for guidance).

    Held-out multi-object prompts never appear; the caption names the background half the time.
    """
    layouts, captions = [], []
    while len(layouts) < batch:
        scene = sample_scene(rng)
        if is_held_out(scene.prompt):
            continue
        layouts.append(layout(scene, rng))
        captions.append("" if rng.random() < null_caption_p else scene.prompt)
    return render_batch(layouts), captions


def to_latents(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> pixel-unshuffled latents (B, 12, H/2, W/2) in [-1, 1] (contract A)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return F.pixel_unshuffle(x, PIXEL_UNSHUFFLE)


def foreground(images: np.ndarray) -> torch.Tensor:
    """Share of object (non-white, non-black) pixels per latent pixel, (B, 1, H/2, W/2)."""
    plain = np.all(images == 255, -1) | np.all(images == 0, -1)
    mask = torch.from_numpy(~plain).float()[:, None]
    return F.avg_pool2d(mask, PIXEL_UNSHUFFLE)


class TrainBatches(torch.utils.data.IterableDataset):
    """Endless (latents, token ids, foreground share) batches; each DataLoader worker has its own
    seeded stream."""

    def __init__(self, tokenize: FastTokenizer, batch: int, seed: int, null_caption_p: float):
        super().__init__()
        self.tokenize = tokenize
        self.batch = batch
        self.seed = seed
        self.null_caption_p = null_caption_p

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, worker])
        while True:
            images, captions = sample_batch(rng, self.batch, self.null_caption_p)
            yield to_latents(images), self.tokenize(captions), foreground(images)
