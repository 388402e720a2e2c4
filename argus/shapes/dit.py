"""A small diffusion transformer for the shapes world, trained with flow matching (issue #18
item 3, groundwork): the shapes tokenizer and text encoder with an `SD3Transformer2DModel`
over 2x2 pixel-unshuffled images (12 channels at 16x16, 2x2 patches: 64 image tokens), so the
engine's feature caches can be measured on a model that draws something.

NOTE (flow matching, rectified flow as in SD3): x_t = (1 - sigma) x0 + sigma noise, the model
predicts the velocity v = noise - x0 at timestep sigma x 1000; sigma is drawn logit-normal
(SD3's default), which spends training on the middle of the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

from argus.shapes.grammar import CANVAS
from argus.shapes.model import (
    PIXEL_UNSHUFFLE,
    Arch,
    build_text_encoder,
    build_tokenizer,
    save_folder,
)


@dataclass(frozen=True)
class DitArch:
    """Sizes of the shapes DiT."""

    width: int = 96
    """Heads x head dim; also the text encoder's width."""
    heads: int = 4
    layers: int = 6
    text_layers: int = 2


DIT_ARCHS: dict[str, DitArch] = {"shapes-dit": DitArch()}


def build_dit(a: DitArch) -> SD3Transformer2DModel:
    channels = 3 * PIXEL_UNSHUFFLE**2
    side = CANVAS // PIXEL_UNSHUFFLE
    return SD3Transformer2DModel(
        sample_size=side, patch_size=2, in_channels=channels, out_channels=channels,
        num_layers=a.layers, attention_head_dim=a.width // a.heads, num_attention_heads=a.heads,
        joint_attention_dim=a.width, caption_projection_dim=a.width,
        pooled_projection_dim=a.width,
        pos_embed_max_size=2 * side,  # serves up to 2x the native side (server.max_size_factor)
    )


@dataclass
class DitComponents:
    tokenizer: object
    text_encoder: torch.nn.Module
    transformer: SD3Transformer2DModel


def build_dit_components(
    name: str = "shapes-dit", seed: int = 0, arch: DitArch | None = None
) -> DitComponents:
    """Tokenizer, text encoder and transformer of `name` (or of `arch`, for tests)."""
    a = arch or DIT_ARCHS[name]
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    text = build_text_encoder(Arch(channels=(0, 0, 0), text_dim=a.width,
                                   text_layers=a.text_layers), tokenizer)
    return DitComponents(tokenizer, text, build_dit(a))


# Inference schedule of the shipped DiT: shift 1 (SD3 shifts to 3 for 64x64+ latent grids; at 64
# tokens the logit-normal training sigmas are centred and need no shift).
DIT_SCHEDULER = {"num_train_timesteps": 1000, "shift": 1.0}


def save_dit_variant(folder: str | Path, parts: DitComponents) -> None:
    """A diffusers folder the engine's flow loop serves: transformer, one text encoder, tokenizer,
    a flow-matching scheduler and no VAE (pixel space: 2x2 pixel-unshuffled images)."""
    save_folder(folder, "ArgusShapesDiTPipeline", {
        "transformer": (parts.transformer, "diffusers", "SD3Transformer2DModel"),
        "text_encoder": (parts.text_encoder, "transformers", "CLIPTextModel"),
        "tokenizer": (parts.tokenizer, "transformers", "CLIPTokenizer"),
        "scheduler": (FlowMatchEulerDiscreteScheduler(**DIT_SCHEDULER), "diffusers",
                      "FlowMatchEulerDiscreteScheduler"),
    })


def flow_matching_loss(
    text_encoder: torch.nn.Module, transformer: SD3Transformer2DModel,
    x0: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared velocity error of one batch (x0: unshuffled images in [-1, 1])."""
    sigma = torch.sigmoid(torch.randn(len(x0), device=x0.device)).view(-1, 1, 1, 1)
    noise = torch.randn_like(x0)
    text = text_encoder(ids)
    pred = transformer(
        hidden_states=(1 - sigma) * x0 + sigma * noise,
        timestep=sigma.flatten() * 1000,
        encoder_hidden_states=text.last_hidden_state,
        pooled_projections=text.pooler_output,
    ).sample
    error = (pred.float() - (noise - x0)) ** 2
    if weight is not None:  # foreground pixels count more (`--fg-weight`)
        error = weight * error / weight.mean()
    return error.mean()
