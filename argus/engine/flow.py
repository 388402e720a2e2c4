"""Diffusion transformers with flow matching in Argus' own loop (FLUX-class and SD3-class).

The same contract as the UNet loop (`argus.engine.generate`): batches of compatible specs,
per-seed noise, a per-step callback that can cancel, latents captured at chosen steps, and a
start at step K from given latents with the new prompt's conditioning. Latents are kept
unpacked, (C, h, w), so captures look like the UNet path's; FLUX's 2x2 packing happens around
each transformer call only.

NOTE: flow matching interpolates x_t = (1 - sigma) x0 + sigma noise and the transformer predicts
the velocity v = noise - x0; Euler steps x along v, so x0 = x_t - sigma v (the previews).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
)

from argus.engine import feature_cache
from argus.engine.flow_archs import FlowFamily
from argus.engine.generate import (
    GenerationCancelled,
    GenerationResult,
    GenerationSpec,
    PreviewCallback,
    StepCallback,
    _capture,
    _check_batch,
    _initial_latents,
    _preview_plan,
    _token_ids,
    decode_latents,
)


@dataclass
class FlowPipeline:
    """One loaded transformer variant. FLUX: CLIP (pooled) + T5 (sequence; a tiny CLIP stands
    in for it in random models). SD3: two CLIPs (pooled + sequence) and an optional T5, or one
    CLIP for both (the shapes DiT). No VAE: the transformer works on 2x2 pixel-unshuffled
    images (`pixel_unshuffle`), like the shapes UNets."""

    name: str
    family: FlowFamily
    transformer: FluxTransformer2DModel | SD3Transformer2DModel
    vae: AutoencoderKL | None
    text_encoder: Any
    tokenizer: Any
    text_encoder_2: Any
    tokenizer_2: Any
    scheduler_config: dict[str, Any]
    text_encoder_3: Any = None
    """SD3 only: T5; None = zeros in its place, as diffusers' SD3 pipeline does."""
    tokenizer_3: Any = None
    pixel_unshuffle: int = 1
    """Pixel-space models (no VAE): image pixels per latent pixel side."""
    max_sequence_length: int = 8
    """T5 tokens (zeros' length when SD3 has no T5)."""
    random_weights: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    load_time_s: float = 0.0
    cache: feature_cache.CacheState = field(default_factory=feature_cache.CacheState)
    """The feature cache currently applied to `transformer` (switched per batch)."""

    def new_scheduler(self) -> FlowMatchEulerDiscreteScheduler:
        return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config)

    @property
    def latent_channels(self) -> int:
        if self.vae is None:
            return int(self.transformer.config.in_channels)
        return int(self.vae.config.latent_channels)

    @property
    def latent_factor(self) -> int:
        if self.vae is None:
            return self.pixel_unshuffle
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.latent_factor * 2


@torch.inference_mode()
def encode_flow_prompts(
    pipe: FlowPipeline, prompts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequence embeddings for joint attention, pooled embedding), as the diffusers pipelines
    of each family compute them."""
    ids = _token_ids(pipe.tokenizer, prompts, pipe.device)
    if pipe.family == "flux":
        pooled = pipe.text_encoder(ids).pooler_output
        seq_ids = _token_ids(pipe.tokenizer_2, prompts, pipe.device)
        return pipe.text_encoder_2(seq_ids)[0], pooled
    if pipe.text_encoder_2 is None:  # one encoder: its sequence and its pooled output
        out = pipe.text_encoder(ids)
        return out.last_hidden_state, out.pooler_output
    first = pipe.text_encoder(ids, output_hidden_states=True)
    second = pipe.text_encoder_2(
        _token_ids(pipe.tokenizer_2, prompts, pipe.device), output_hidden_states=True
    )
    clip = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    width = int(pipe.transformer.config.joint_attention_dim)
    clip = F.pad(clip, (0, width - clip.shape[-1]))
    if pipe.text_encoder_3 is None:
        t5 = torch.zeros(len(prompts), pipe.max_sequence_length, width, device=pipe.device)
    else:
        t5 = pipe.text_encoder_3(_token_ids(pipe.tokenizer_3, prompts, pipe.device))[0]
    return torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(
        [first.text_embeds, second.text_embeds], dim=-1
    )


def _pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): FLUX's 2x2 patches as tokens."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def _unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, c4 = tokens.shape
    x = tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)


def _image_ids(h: int, w: int, device: torch.device) -> torch.Tensor:
    """FLUX's RoPE positions of the packed tokens: (row, column) per 2x2 patch."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device)


def _velocity(
    pipe: FlowPipeline,
    latents: torch.Tensor,
    t: torch.Tensor,
    text: tuple[torch.Tensor, torch.Tensor],
    guidance: float,
) -> torch.Tensor:
    """One transformer call: the velocity for every latent of the batch."""
    hidden, pooled = text
    if pipe.family == "flux":
        b, _, h, w = latents.shape
        embed = pipe.transformer.config.guidance_embeds
        out = pipe.transformer(
            hidden_states=_pack(latents),
            timestep=t.expand(b).to(latents.dtype) / 1000,  # FLUX scales it back by 1000
            guidance=torch.full((b,), guidance, device=latents.device) if embed else None,
            pooled_projections=pooled,
            encoder_hidden_states=hidden,
            txt_ids=torch.zeros(hidden.shape[1], 3, device=latents.device),
            img_ids=_image_ids(h, w, latents.device),
            return_dict=False,
        )[0]
        return _unpack(out, h, w)
    guided = guidance > 1.0
    model_in = torch.cat([latents] * 2) if guided else latents
    pred = pipe.transformer(
        hidden_states=model_in,
        timestep=t.expand(model_in.shape[0]),
        encoder_hidden_states=hidden,
        pooled_projections=pooled,
        return_dict=False,
    )[0]
    if not guided:
        return pred
    uncond, cond = pred.chunk(2)
    return uncond + guidance * (cond - uncond)


def _schedule(pipe: FlowPipeline, spec: GenerationSpec) -> FlowMatchEulerDiscreteScheduler:
    """A fresh scheduler set to the full N-step schedule (FLUX: its sigmas and the resolution-
    dependent shift `mu`), begun at step K."""
    scheduler = pipe.new_scheduler()
    config = scheduler.config
    kwargs: dict[str, Any] = {}
    if pipe.family == "flux":
        kwargs["sigmas"] = np.linspace(1.0, 1 / spec.steps, spec.steps)
    if config.get("use_dynamic_shifting"):
        f = pipe.latent_factor * 2
        tokens = (spec.height // f) * (spec.width // f)
        slope = (config.max_shift - config.base_shift) / (
            config.max_image_seq_len - config.base_image_seq_len
        )
        kwargs["mu"] = config.base_shift + slope * (tokens - config.base_image_seq_len)
    if "sigmas" in kwargs:
        scheduler.set_timesteps(device=pipe.device, **kwargs)
    else:
        scheduler.set_timesteps(spec.steps, device=pipe.device, **kwargs)
    scheduler.set_begin_index(spec.start_step)
    return scheduler


@torch.inference_mode()
def decode_flow_latents(pipe: FlowPipeline, latents: torch.Tensor) -> np.ndarray:
    """Latents -> float32 images (B, H, W, 3) in [0, 1]."""
    if pipe.vae is None:  # pixel space: decoded as the shapes UNets' latents are
        return decode_latents(pipe, latents)  # type: ignore[arg-type]
    config = pipe.vae.config
    scaled = latents / config.scaling_factor + (config.shift_factor or 0.0)
    pixels = pipe.vae.decode(scaled).sample.clamp(-1, 1)
    return ((pixels.float() + 1) / 2).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


@torch.inference_mode()
def generate_flow(
    pipe: FlowPipeline,
    specs: Sequence[GenerationSpec],
    callback: StepCallback | None = None,
    preview: PreviewCallback | None = None,
) -> list[GenerationResult]:
    """`argus.engine.generate.generate` for transformer pipelines (it dispatches here)."""
    # 0. Check inputs; apply the batch's feature cache (a no-op when the model has it).
    _check_batch(pipe, specs)
    spec = specs[0]
    total, start = spec.steps, spec.start_step
    t0 = time.perf_counter()
    switch_ms = feature_cache.use(pipe.transformer, pipe.cache, spec.feature_cache)

    # 1. Encode prompts; SD3's unconditional branch is the negative prompt (FLUX: none, its
    # guidance is an embedding).
    texts = [s.prompt for s in specs]
    if pipe.family == "sd3" and spec.guidance_scale > 1.0:
        texts = [s.negative_prompt for s in specs] + texts
    text = encode_flow_prompts(pipe, texts)
    t1 = time.perf_counter()

    # 2. The schedule, sliced at K; 3. seeded noise or the given latents before step K.
    scheduler = _schedule(pipe, spec)
    timesteps = scheduler.timesteps[start:]
    latents = _initial_latents(pipe, specs, 1.0)  # type: ignore[arg-type]
    captured: list[dict[int, np.ndarray]] = [{} for _ in specs]
    previews = _preview_plan(specs) if preview is not None else {}

    # 4. Denoise; the counter sees which steps ran the transformer in full.
    with feature_cache.counting(pipe.transformer, pipe.cache) as computed:
        for i, t in enumerate(timesteps, start=start):
            _capture(latents, i, specs, captured)
            velocity = _velocity(pipe, latents, t, text, spec.guidance_scale)
            if i + 1 in previews and preview is not None:
                wanted = previews[i + 1]
                x0 = (latents - scheduler.sigmas[i] * velocity)[wanted]
                preview(i + 1, dict(zip(wanted, decode_flow_latents(pipe, x0), strict=True)))
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
            if callback is not None and not callback(i + 1, total):
                raise GenerationCancelled(i + 1, total)
    _capture(latents, total, specs, captured)
    t2 = time.perf_counter()

    # 5. Decode.
    images = decode_flow_latents(pipe, latents)
    t3 = time.perf_counter()
    timings = {"encode": (t1 - t0) * 1e3, "denoise": (t2 - t1) * 1e3,
               "decode": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3, "cache_switch": switch_ms}
    return [
        GenerationResult(image=img, captured=cap, steps_run=total - start,
                         timings_ms=timings, computed_steps=computed.count)
        for img, cap in zip(images, captured, strict=True)
    ]


def embed_flow_prompts(pipe: FlowPipeline, prompts: Sequence[str]) -> np.ndarray:
    """L2-normalised pooled embeddings (the approximate cache's key)."""
    _, pooled = encode_flow_prompts(pipe, prompts)
    return F.normalize(pooled.float(), dim=-1).cpu().numpy().astype(np.float32)


def load_flow_pretrained(where: str | Path, family: FlowFamily) -> dict[str, Any]:
    """A diffusers FLUX or SD3 folder (or hub id), each component by `from_pretrained`. A local
    SD3-class folder without `vae/` or `text_encoder_2/` is a pixel-space, one-encoder model
    (the shapes DiT)."""
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(where) if Path(where).is_dir() else None
    where = str(where)
    sub = {"pretrained_model_name_or_path": where}
    if family == "sd3" and folder is not None and not (folder / "text_encoder_2").is_dir():
        return _load_one_encoder(folder)
    transformer_cls = FluxTransformer2DModel if family == "flux" else SD3Transformer2DModel
    first_cls = CLIPTextModel if family == "flux" else CLIPTextModelWithProjection
    parts: dict[str, Any] = {
        "transformer": transformer_cls.from_pretrained(**sub, subfolder="transformer"),
        "vae": AutoencoderKL.from_pretrained(**sub, subfolder="vae"),
        "text_encoder": first_cls.from_pretrained(**sub, subfolder="text_encoder"),
        "tokenizer": AutoTokenizer.from_pretrained(where, subfolder="tokenizer"),
        "tokenizer_2": AutoTokenizer.from_pretrained(where, subfolder="tokenizer_2"),
        "scheduler_config": _scheduler_config(where),
        "max_sequence_length": 512 if family == "flux" else 256,
    }
    if family == "flux":
        from transformers import T5EncoderModel

        parts["text_encoder_2"] = T5EncoderModel.from_pretrained(**sub, subfolder="text_encoder_2")
    else:
        parts["text_encoder_2"] = CLIPTextModelWithProjection.from_pretrained(
            **sub, subfolder="text_encoder_2")
        parts.update(_optional_t5(where))
    return parts


def _scheduler_config(where: str) -> dict[str, Any]:
    return dict(FlowMatchEulerDiscreteScheduler.load_config(where, subfolder="scheduler"))


def _load_one_encoder(folder: Path) -> dict[str, Any]:
    """SD3-class transformer + one CLIP text encoder, optionally without a VAE."""
    from transformers import AutoTokenizer, CLIPTextModel

    index = json.loads((folder / "model_index.json").read_text())
    has_vae = (folder / "vae").is_dir()
    return {
        "transformer": SD3Transformer2DModel.from_pretrained(folder, subfolder="transformer"),
        "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae") if has_vae else None,
        "text_encoder": CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        "tokenizer": AutoTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        "text_encoder_2": None, "tokenizer_2": None,
        "scheduler_config": _scheduler_config(str(folder)),
        "pixel_unshuffle": 1 if has_vae else int(index.get("_argus_pixel_unshuffle", 1)),
    }


def _optional_t5(where: str) -> dict[str, Any]:
    """SD3's T5, when the folder has one (SD3 runs without it, on zeros)."""
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        encoder = T5EncoderModel.from_pretrained(where, subfolder="text_encoder_3")
    except (OSError, ValueError):
        return {}
    return {"text_encoder_3": encoder,
            "tokenizer_3": AutoTokenizer.from_pretrained(where, subfolder="tokenizer_3")}
