"""Loading a variant's diffusers components into a `Pipeline` (contracts A and B).

A variant's `source` is one of: `random:<arch>` (seeded random weights built from configs),
`builtin:<name>` (shipped weights under `argus/assets/shapes/<name>/`), a local diffusers folder,
or a hub id (loaded by diffusers' `from_pretrained`; needs the hub or a filled local cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from argus.config import VariantConfig
from argus.engine import random_models
from argus.engine.flow_archs import flow_family
from argus.engine.variants import is_random, variant_folder
from argus.engine.variants import read_json as _read_json

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm": DPMSolverMultistepScheduler,
}


@dataclass
class Pipeline:
    """One loaded variant: its components, shared read-only by the generations that use it."""

    name: str
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_class: type[SchedulerMixin]
    scheduler_config: dict[str, Any]
    """Schedulers keep run state, so each generation builds its own from this config."""
    vae: AutoencoderKL | None = None
    """None: pixel-space model (latents = pixel_unshuffle(image, pixel_unshuffle))."""
    text_encoder_2: CLIPTextModelWithProjection | None = None
    """SDXL-class models: the second encoder (its projected pooled output conditions)."""
    tokenizer_2: CLIPTokenizer | None = None
    pixel_unshuffle: int = 1
    random_weights: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    load_time_s: float = 0.0
    eta: float = 0.0
    """DDIM stochasticity (`VariantConfig.eta`)."""

    def new_scheduler(self) -> SchedulerMixin:
        """A fresh scheduler: never share one between concurrent generations."""
        return self.scheduler_class.from_config(self.scheduler_config)

    @property
    def sdxl(self) -> bool:
        return self.unet.config.addition_embed_type == "text_time"

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def latent_factor(self) -> int:
        """Image pixels per latent pixel along one side."""
        if self.vae is None:
            return self.pixel_unshuffle
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.latent_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)


def _load_pretrained(variant: VariantConfig) -> dict[str, Any]:
    folder = variant_folder(variant.source)
    if variant.source.startswith("builtin:") and folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"variant {variant.name}: no shipped weights at {folder}")
    where = str(folder) if folder is not None else variant.source
    model_index = (
        _read_json(folder / "model_index.json")
        if folder is not None
        else DiffusionPipeline.load_config(where)
    )
    has_vae = "vae" in model_index and model_index["vae"] not in (None, [None, None])
    if folder is not None:
        has_vae = (folder / "vae").is_dir()
    scheduler_class = SCHEDULERS[variant.scheduler]
    has_second = "text_encoder_2" in model_index if folder is None else (
        (folder / "text_encoder_2").is_dir()
    )
    return {
        "unet": UNet2DConditionModel.from_pretrained(where, subfolder="unet").eval(),
        "text_encoder": CLIPTextModel.from_pretrained(where, subfolder="text_encoder").eval(),
        "tokenizer": CLIPTokenizer.from_pretrained(where, subfolder="tokenizer"),
        "vae": AutoencoderKL.from_pretrained(where, subfolder="vae").eval() if has_vae else None,
        "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(
            where, subfolder="text_encoder_2"
        ).eval() if has_second else None,
        "tokenizer_2": CLIPTokenizer.from_pretrained(where, subfolder="tokenizer_2")
        if has_second else None,
        "scheduler_config": dict(scheduler_class.load_config(where, subfolder="scheduler")),
        "pixel_unshuffle": int(model_index.get("_argus_pixel_unshuffle", 1)),
    }


def load_pipeline(variant: VariantConfig, device: str = "cpu") -> Pipeline:
    """Load (or build) the components of `variant` onto `device`."""
    if flow_family(variant.source) is not None:  # diffusion transformers: argus.engine.flow
        from argus.engine.flow_loading import load_flow_pipeline

        return load_flow_pipeline(variant, device)  # type: ignore[return-value]
    start = time.perf_counter()
    if is_random(variant.source):
        parts = random_models.build_random_components(
            variant.source.removeprefix("random:"), variant.resolution
        )
    else:
        parts = _load_pretrained(variant)
    target = torch.device(device)
    for key in ("unet", "text_encoder", "text_encoder_2", "vae"):
        if parts[key] is not None:
            parts[key] = parts[key].to(target).requires_grad_(False)
    return Pipeline(
        name=variant.name,
        scheduler_class=SCHEDULERS[variant.scheduler],
        random_weights=is_random(variant.source),
        device=target,
        load_time_s=time.perf_counter() - start,
        eta=variant.eta,
        **parts,
    )
