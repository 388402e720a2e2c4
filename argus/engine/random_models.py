"""Small random-weight pipelines built from configs (`source: random:<arch>`), without any hub.

Used by the embedded default config until shipped weights exist, and by the tests, in the spirit
of diffusers' `get_dummy_components()`. Weights are seeded from the architecture name, so every
worker process builds bit-identical models and a seed gives the same image on any worker.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

from argus.engine.variants import RandomArch, random_arch

TOKENIZER_MAX_LENGTH = 32
BOS_TOKEN_ID = 512
EOS_TOKEN_ID = 513

# Pixel-space models follow the shapes-world recipe: cosine schedule, v-prediction, trailing
# spacing, x0 clipped to [-1, 1] (contract A).
PIXEL_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "clip_sample": True,
    "set_alpha_to_one": True,
}
# SD-style latent models use SD's schedule.
LATENT_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}


def build_tokenizer() -> CLIPTokenizer:
    """A character-level CLIP BPE tokenizer (no merges): no files, no hub."""
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = BOS_TOKEN_ID
    vocab["<|endoftext|>"] = EOS_TOKEN_ID
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TOKENIZER_MAX_LENGTH)


SDXL_TIME_EMBED_DIM = 8
SDXL_TIME_IDS = 6
"""(original h, w, crop top, left, target h, w): SDXL's micro-conditioning."""


def _text_config(a: RandomArch) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=EOS_TOKEN_ID + 1,
        hidden_size=a.text_dim,
        intermediate_size=2 * a.text_dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=EOS_TOKEN_ID,
        projection_dim=a.text_dim,
    )


def _unet(a: RandomArch, latent_channels: int, sample_size: int) -> UNet2DConditionModel:
    pixel = a.pixel_unshuffle > 0
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(a.channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(a.channels) - 1) + ("UpBlock2D",)
    extra: dict[str, Any] = {}
    if a.sdxl:  # pooled text + time ids added to the timestep embedding, as in SDXL
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": SDXL_TIME_EMBED_DIM,
            "projection_class_embeddings_input_dim": SDXL_TIME_IDS * SDXL_TIME_EMBED_DIM
            + a.text_dim,
        }
    elif pixel:
        # Pooled prompt embedding added to the timestep embedding (contract A).
        extra = {
            "class_embed_type": "projection",
            "projection_class_embeddings_input_dim": a.text_dim,
        }
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=a.channels,
        layers_per_block=1,
        cross_attention_dim=a.text_dim * (2 if a.sdxl else 1),
        attention_head_dim=4,
        norm_num_groups=a.norm_groups,
        **extra,
    ).eval()


def _vae(a: RandomArch) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=2,
    ).eval()


def build_random_components(name: str, resolution: int) -> dict[str, Any]:
    """Seeded random-weight components of architecture `name` for images of `resolution` px."""
    a = random_arch(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode()))
        text_encoder = CLIPTextModel(_text_config(a)).eval()
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(a)).eval() if a.sdxl else None
        if a.pixel_unshuffle:
            f = a.pixel_unshuffle
            vae = None
            unet = _unet(a, 3 * f * f, resolution // f)
        else:
            vae = _vae(a)
            unet = _unet(a, vae.config.latent_channels, resolution // 2)
    return {
        "unet": unet,
        "text_encoder": text_encoder,
        "tokenizer": build_tokenizer(),
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": build_tokenizer() if a.sdxl else None,
        "vae": vae,
        "scheduler_config": dict(PIXEL_SCHEDULER if a.pixel_unshuffle else LATENT_SCHEDULER),
        "pixel_unshuffle": a.pixel_unshuffle or 1,
    }
