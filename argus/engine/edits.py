"""Image-to-image and inpainting in the denoising loop (POST /v1/images/edits).

NOTE: the standard recipe (diffusers' img2img and latent-inpainting pipelines): encode the given
image, noise it to the schedule's step K with the spec's seeded noise and denoise from K; for
inpainting, after every step re-impose the known region (mask 0) from the original noised to the
next step's level, and the clean original after the last step, so only the masked region is
generated. The mask is max-pooled to latent size: a latent pixel touching the masked area is
repainted, so the known latents never carry repainted pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from argus.engine.generate import GenerationSpec
    from argus.engine.pipeline import Pipeline


def seeded_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The spec's initial noise: one generator per seed, so an image depends on its seed only."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def check_edit(spec: GenerationSpec) -> None:
    """ValueError (an input error: the API answers 400) for an image or mask of the wrong shape."""
    size = (spec.height, spec.width)
    if spec.init_image is not None and spec.init_image.shape != (*size, 3):
        raise ValueError(f"init_image shape {spec.init_image.shape} is not {(*size, 3)}")
    if spec.mask is not None and (spec.init_image is None or spec.mask.shape != size):
        raise ValueError(f"mask needs an init_image and shape {size}")


@torch.inference_mode()
def encode_images(pipe: Pipeline, images: np.ndarray) -> torch.Tensor:
    """Float32 images (B, H, W, 3) in [0, 1] -> clean latents (the inverse of decoding; the
    VAE's mean, so an edit depends on its seed only)."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(pipe.device)
    pixels = pixels.float() * 2 - 1
    if pipe.vae is None:
        return F.pixel_unshuffle(pixels, pipe.pixel_unshuffle)
    vae = pipe.vae
    mean = vae.encode(pixels.to(vae.dtype)).latent_dist.mean
    return (mean * vae.config.scaling_factor).float()


@dataclass
class EditPlan:
    """The batch's edit specs: their clean latents, noise and known-region masks."""

    rows: list[int]
    """Indices in the batch of the specs with an `init_image`."""
    known: torch.Tensor
    """Clean latents of their images (len(rows), C, h, w)."""
    noise: torch.Tensor
    keep: torch.Tensor | None
    """(len(rows), 1, h, w): 1 where the original is re-imposed (no inpainting spec: None)."""

    @classmethod
    def of(cls, pipe: Pipeline, specs: Sequence[GenerationSpec]) -> EditPlan | None:
        rows = [j for j, s in enumerate(specs) if s.init_image is not None]
        if not rows:
            return None
        edits = [specs[j] for j in rows]
        known = encode_images(pipe, np.stack([s.init_image for s in edits]).astype(np.float32))
        noise = torch.cat([seeded_noise(s.seed, (1, *known.shape[1:])) for s in edits])
        keep = None
        if any(s.mask is not None for s in edits):
            masks = np.stack([np.ones((s.height, s.width), np.float32) if s.mask is None
                              else s.mask.astype(np.float32) for s in edits])
            repaint = F.max_pool2d(torch.from_numpy(masks)[:, None], pipe.latent_factor)
            keep = (1 - repaint).to(pipe.device)
        return cls(rows, known, noise.to(pipe.device), keep)

    def noised(self, scheduler: object, index: int) -> torch.Tensor:
        """The originals noised to the level before step `index` of the schedule."""
        timesteps = scheduler.timesteps  # type: ignore[attr-defined]
        t = timesteps[index : index + 1].repeat(len(self.rows))
        return scheduler.add_noise(self.known, self.noise, t)  # type: ignore[attr-defined]

    def start(self, latents: torch.Tensor, scheduler: object, start_step: int) -> torch.Tensor:
        """The batch's initial latents with the edit rows replaced by their noised originals."""
        latents = latents.clone()
        latents[self.rows] = self.noised(scheduler, start_step).to(latents.dtype)
        return latents

    def reimpose(self, latents: torch.Tensor, scheduler: object, done: int) -> torch.Tensor:
        """After `done` steps of the schedule: the known region back from the original (noised
        to the next step's level, or clean after the last step)."""
        if self.keep is None:
            return latents
        total = len(scheduler.timesteps)  # type: ignore[attr-defined]
        original = self.known if done >= total else self.noised(scheduler, done)
        rows = latents[self.rows]
        latents = latents.clone()
        latents[self.rows] = self.keep * original.to(rows.dtype) + (1 - self.keep) * rows
        return latents

    def clean(self, x0: torch.Tensor, wanted: Sequence[int]) -> torch.Tensor:
        """A preview's predicted clean latents (of the batch's specs `wanted`) with the known
        region shown as it will end: the original."""
        if self.keep is None:
            return x0
        x0 = x0.clone()
        for i, j in enumerate(wanted):
            if j in self.rows:
                r = self.rows.index(j)
                x0[i] = self.keep[r] * self.known[r].to(x0.dtype) + (1 - self.keep[r]) * x0[i]
        return x0

