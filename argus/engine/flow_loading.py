"""Loading diffusion-transformer variants: seeded tiny models built from configs
(`random:flux-tiny`, `random:sd3-tiny`; every worker builds the same weights) or diffusers
folders loaded with `from_pretrained` (real FLUX / SD3 weights)."""

from __future__ import annotations

import time
import zlib
from typing import Any

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from argus.config import VariantConfig
from argus.engine.flow import FlowPipeline, load_flow_pretrained
from argus.engine.flow_archs import FLOW_ARCHS, FlowArch, flow_family
from argus.engine.random_models import BOS_TOKEN_ID, EOS_TOKEN_ID, build_tokenizer
from argus.engine.variants import variant_folder

# FLUX.1-dev's and SD3's scheduler settings (resolution-dependent shift for FLUX).
FLUX_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True,
                  "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                  "max_image_seq_len": 4096}
SD3_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
HEAD_DIM = 8


def _clip(a: FlowArch, projected: bool) -> CLIPTextModel | CLIPTextModelWithProjection:
    config = CLIPTextConfig(
        vocab_size=EOS_TOKEN_ID + 1, hidden_size=a.width, intermediate_size=2 * a.width,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32,
        bos_token_id=BOS_TOKEN_ID, eos_token_id=EOS_TOKEN_ID, pad_token_id=EOS_TOKEN_ID,
        projection_dim=a.width,
    )
    return (CLIPTextModelWithProjection if projected else CLIPTextModel)(config).eval()


def _vae(a: FlowArch) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[8, 16], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=a.latent_channels, norm_num_groups=4,
        scaling_factor=1.5, shift_factor=0.1,  # non-trivial, so decoding must apply them
    ).eval()


def _transformer(a: FlowArch, resolution: int) -> torch.nn.Module:
    heads = a.width // HEAD_DIM
    if a.family == "flux":
        return FluxTransformer2DModel(
            patch_size=1, in_channels=4 * a.latent_channels, num_layers=a.layers,
            num_single_layers=a.single_layers, attention_head_dim=HEAD_DIM,
            num_attention_heads=heads, joint_attention_dim=a.width,
            pooled_projection_dim=a.width, guidance_embeds=True, axes_dims_rope=(2, 2, 4),
        ).eval()
    latent = resolution // a.vae_factor
    return SD3Transformer2DModel(
        sample_size=latent, patch_size=2, in_channels=a.latent_channels,
        num_layers=a.layers, attention_head_dim=HEAD_DIM, num_attention_heads=heads,
        joint_attention_dim=a.width, caption_projection_dim=a.width,
        pooled_projection_dim=2 * a.width, out_channels=a.latent_channels,
        pos_embed_max_size=2 * latent,  # up to 2x the native side (server.max_size_factor)
    ).eval()


def build_random_flow(name: str, resolution: int) -> dict[str, Any]:
    """Seeded random components of transformer architecture `name`."""
    a = FLOW_ARCHS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode()))
        parts: dict[str, Any] = {
            "text_encoder": _clip(a, projected=a.family == "sd3"),
            "text_encoder_2": _clip(a, projected=a.family == "sd3"),
            "vae": _vae(a),
            "transformer": _transformer(a, resolution),
        }
    return {**parts, "tokenizer": build_tokenizer(), "tokenizer_2": build_tokenizer(),
            "scheduler_config": dict(FLUX_SCHEDULER if a.family == "flux" else SD3_SCHEDULER)}


def load_flow_pipeline(variant: VariantConfig, device: str = "cpu") -> FlowPipeline:
    """Load (or build) a transformer variant onto `device`."""
    start = time.perf_counter()
    family = flow_family(variant.source)
    assert family is not None, variant.source
    random = variant.source.startswith("random:")
    if random:
        parts = build_random_flow(variant.source.removeprefix("random:"), variant.resolution)
    else:
        parts = load_flow_pretrained(variant_folder(variant.source) or variant.source, family)
    target = torch.device(device)
    for key in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        if parts.get(key) is not None:
            parts[key] = parts[key].to(target).eval().requires_grad_(False)
    return FlowPipeline(name=variant.name, family=family, random_weights=random, device=target,
                        load_time_s=time.perf_counter() - start, **parts)
