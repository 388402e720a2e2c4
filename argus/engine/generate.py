"""Argus' own denoising loop (contract B).

Owning the loop (instead of calling a diffusers pipeline's `__call__`) gives the approximation
strategies what they need: start at step K from given latents with a new prompt's conditioning
(approximate-cache resume), capture latents at chosen steps, and stop between steps.

NOTE: diffusers' txt2img pipelines multiply supplied `latents` by `init_noise_sigma` and run the
whole schedule, so they cannot resume at step K; here the schedule is sliced at K instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from argus.engine.edits import EditPlan, check_edit, seeded_noise
from argus.engine.pipeline import Pipeline

StepCallback = Callable[[int, int], bool]
"""(steps done, total steps) -> False to cancel at this step boundary."""
PreviewCallback = Callable[[int, dict[int, np.ndarray]], None]
"""(steps done, {index of the spec in the batch: float32 (H, W, 3) image in [0, 1]}): the
clean image predicted at that step (x0), for the specs whose `preview_steps` hold it."""


class GenerationCancelled(Exception):
    """The step callback asked to stop; no image was produced."""

    def __init__(self, step: int, total_steps: int) -> None:
        super().__init__(f"cancelled after step {step} of {total_steps}")
        self.step = step
        self.total_steps = total_steps


@dataclass
class GenerationSpec:
    """One image to generate. Specs in one batch must be `compatible`."""

    prompt: str
    seed: int
    steps: int
    """N: the full schedule's length (also when starting part-way)."""
    height: int
    width: int
    guidance_scale: float = 1.0
    """Classifier-free guidance weight; active when > 1."""
    negative_prompt: str = ""
    start_step: int = 0
    """K: start at step K of the N-step schedule from `start_latents` (0 = from noise)."""
    start_latents: np.ndarray | None = None
    """Latents BEFORE step K of an N-step run, shape (C, h, w)."""
    capture_steps: Sequence[int] = ()
    """Step indices (0..N) whose pre-step latents are returned; N = the final latents."""
    preview_steps: Sequence[int] = ()
    """Steps done (K+1..N) after which the predicted clean image (x0) is decoded and handed to
    `generate`'s `preview` callback. Empty (the default): no x0 decode, no extra cost."""
    init_image: np.ndarray | None = None
    """Image-to-image: float32 (H, W, 3) in [0, 1], encoded and noised to step K = `start_step`
    with this spec's seed (instead of `start_latents`; `argus.engine.edits`)."""
    mask: np.ndarray | None = None
    """Inpainting (with `init_image`): float32 (H, W), 1 = repaint; the rest is the original."""
    feature_cache: str = ""
    """Transformer feature cache for this batch (`argus.engine.feature_cache`; "" none)."""

    def compatibility_key(self) -> tuple[int, int, int, int, float, str]:
        return (self.steps, self.start_step, self.height, self.width, self.guidance_scale,
                self.feature_cache)


@dataclass
class GenerationResult:
    image: np.ndarray
    """Float32 (H, W, 3) in [0, 1]."""
    captured: dict[int, np.ndarray] = field(default_factory=dict)
    """Step index -> float32 latents before that step."""
    steps_run: int = 0
    """N - K denoiser steps actually run."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """encode, denoise, decode and total, for the whole batch."""
    computed_steps: int | None = None
    """Transformer pipelines: steps whose denoiser ran in full for the batch (a feature cache
    skips the rest). None for UNet pipelines (every step runs)."""


def _check_batch(pipe: Pipeline, specs: Sequence[GenerationSpec]) -> None:
    if not specs:
        raise ValueError("empty batch")
    keys = {s.compatibility_key() for s in specs}
    if len(keys) != 1:
        raise ValueError(f"incompatible specs in one batch: {sorted(keys)}")
    spec = specs[0]
    if not 0 <= spec.start_step < spec.steps:
        raise ValueError(f"start_step {spec.start_step} must be in [0, steps={spec.steps})")
    multiple = pipe.size_multiple
    if spec.height % multiple or spec.width % multiple:
        raise ValueError(f"size {spec.width}x{spec.height} must be a multiple of {multiple}")
    if spec.start_step and any(s.start_latents is None and s.init_image is None for s in specs):
        raise ValueError("start_step > 0 needs start_latents (or an init_image) for every spec")
    for s in specs:
        check_edit(s)


def _token_ids(tokenizer, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    tokens = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return tokens.input_ids.to(device)


@torch.inference_mode()
def encode_prompts(pipe: Pipeline, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token embeddings for cross-attention, pooled embedding) of the prompts."""
    if pipe.text_encoder_2 is None:
        out = pipe.text_encoder(_token_ids(pipe.tokenizer, prompts, pipe.device))
        return out.last_hidden_state, out.pooler_output
    # SDXL: both encoders' penultimate hidden states side by side; the second one's projected
    # pooled output is the pooled embedding.
    first = pipe.text_encoder(
        _token_ids(pipe.tokenizer, prompts, pipe.device), output_hidden_states=True
    )
    second = pipe.text_encoder_2(
        _token_ids(pipe.tokenizer_2, prompts, pipe.device), output_hidden_states=True
    )
    hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    return hidden, second.text_embeds


def unet_conditioning(
    pipe: Pipeline, pooled: torch.Tensor, height: int, width: int
) -> dict[str, object]:
    """Extra UNet inputs carrying the pooled prompt: SDXL's added conditioning (with its
    micro-conditioning time ids: original size, crop (0, 0), target size), or the class
    embedding of `projection` models (contract A)."""
    if pipe.sdxl:
        time_ids = torch.tensor(
            [height, width, 0, 0, height, width], dtype=pooled.dtype, device=pooled.device
        )
        added = {"text_embeds": pooled, "time_ids": time_ids.repeat(len(pooled), 1)}
        return {"added_cond_kwargs": added}
    if pipe.unet.config.class_embed_type == "projection":
        return {"class_labels": pooled}
    return {}


def embed_prompts(pipe: Pipeline, prompts: Sequence[str]) -> np.ndarray:
    """L2-normalised pooled text embeddings, float32 (the approximate cache's key)."""
    if not isinstance(pipe, Pipeline):  # a diffusion transformer (argus.engine.flow)
        from argus.engine.flow import embed_flow_prompts

        return embed_flow_prompts(pipe, prompts)
    _, pooled = encode_prompts(pipe, prompts)
    return F.normalize(pooled.float(), dim=-1).cpu().numpy().astype(np.float32)


def _initial_latents(pipe: Pipeline, specs: Sequence[GenerationSpec], sigma: float) -> torch.Tensor:
    """Per spec: its latents before step K (cache resume), else its seeded noise (an edit's
    row is replaced by its noised image, `EditPlan.start`)."""
    spec = specs[0]
    f = pipe.latent_factor
    shape = (1, pipe.latent_channels, spec.height // f, spec.width // f)
    rows = [
        torch.from_numpy(s.start_latents.astype(np.float32))[None]
        if spec.start_step and s.start_latents is not None else seeded_noise(s.seed, shape) * sigma
        for s in specs
    ]
    return torch.cat(rows).to(pipe.device)


@torch.inference_mode()
def decode_latents(pipe: Pipeline, latents: torch.Tensor) -> np.ndarray:
    """Latents -> float32 images (B, H, W, 3) in [0, 1]."""
    if pipe.vae is None:
        pixels = F.pixel_shuffle(latents, pipe.pixel_unshuffle).clamp(-1, 1)
    else:
        pixels = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    images = (pixels.float() + 1) / 2
    return images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


@torch.inference_mode()
def generate(
    pipe: Pipeline,
    specs: Sequence[GenerationSpec],
    callback: StepCallback | None = None,
    preview: PreviewCallback | None = None,
) -> list[GenerationResult]:
    """Run one batch of compatible specs; raises `GenerationCancelled` if the callback says so.
    `preview` gets the decoded x0 predictions at the specs' `preview_steps` (before `callback`
    is called for that step)."""
    if not isinstance(pipe, Pipeline):  # a diffusion transformer: its own loop
        from argus.engine.flow import generate_flow

        if any(s.init_image is not None for s in specs):  # refused, never silently ignored
            raise ValueError("image edits run on UNet variants only; this one is a transformer")
        return generate_flow(pipe, specs, callback, preview)
    # 0. Check inputs.
    _check_batch(pipe, specs)
    if specs[0].feature_cache:
        raise ValueError("feature caching needs a transformer variant; this one is a UNet")
    spec = specs[0]
    total, start = spec.steps, spec.start_step
    guided = spec.guidance_scale > 1.0
    t0 = time.perf_counter()

    # 1. Encode prompts; the unconditional branch is the negative prompt.
    texts = [s.prompt for s in specs]
    if guided:
        texts = [s.negative_prompt for s in specs] + texts
    hidden, pooled = encode_prompts(pipe, texts)
    conditioning = unet_conditioning(pipe, pooled, spec.height, spec.width)
    t1 = time.perf_counter()

    # 2. A fresh scheduler for this generation, its schedule sliced at K.
    scheduler = pipe.new_scheduler()
    scheduler.set_timesteps(total, device=pipe.device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    timesteps = scheduler.timesteps[start:]

    # 3. Initial latents: seeded noise, or the given latents before step K.
    latents = _initial_latents(pipe, specs, float(scheduler.init_noise_sigma))
    edit = EditPlan.of(pipe, specs)  # image-to-image / inpainting specs, if any
    if edit is not None:
        latents = edit.start(latents, scheduler, start)
    captured: list[dict[int, np.ndarray]] = [{} for _ in specs]
    previews = _preview_plan(specs) if preview is not None else {}

    # 4. Denoise, capturing pre-step latents and calling back after every step.
    for i, t in enumerate(timesteps, start=start):
        _capture(latents, i, specs, captured)
        model_in = torch.cat([latents] * 2) if guided else latents
        model_in = scheduler.scale_model_input(model_in, t)
        pred = pipe.unet(model_in, t, encoder_hidden_states=hidden, **conditioning).sample
        if guided:
            uncond, cond = pred.chunk(2)
            pred = uncond + spec.guidance_scale * (cond - uncond)
        out = scheduler.step(pred, t, latents, **_step_noise(pipe, specs, i, latents))
        if i + 1 in previews and preview is not None:
            wanted = previews[i + 1]
            x0 = predicted_clean(scheduler, out, pred, latents, t)[wanted]
            x0 = x0 if edit is None else edit.clean(x0, wanted)
            preview(i + 1, dict(zip(wanted, decode_latents(pipe, x0), strict=True)))
        latents = out.prev_sample
        if edit is not None:  # inpainting: the known region back from the original
            latents = edit.reimpose(latents, scheduler, i + 1)
        if callback is not None and not callback(i + 1, total):
            raise GenerationCancelled(i + 1, total)
    _capture(latents, total, specs, captured)
    t2 = time.perf_counter()

    # 5. Decode.
    images = decode_latents(pipe, latents)
    t3 = time.perf_counter()
    timings = {
        "encode": (t1 - t0) * 1e3,
        "denoise": (t2 - t1) * 1e3,
        "decode": (t3 - t2) * 1e3,
        "total": (t3 - t0) * 1e3,
    }
    return [
        GenerationResult(image=img, captured=cap, steps_run=total - start, timings_ms=timings)
        for img, cap in zip(images, captured, strict=True)
    ]


def _preview_plan(specs: Sequence[GenerationSpec]) -> dict[int, list[int]]:
    """Steps done -> indices of the specs that want a preview after that step."""
    plan: dict[int, list[int]] = {}
    for j, s in enumerate(specs):
        for step in sorted(set(s.preview_steps)):
            plan.setdefault(step, []).append(j)
    return plan


def preview_steps(count: int, start_step: int, steps: int) -> tuple[int, ...]:
    """`count` previews evenly spaced over the steps a run does (K+1..N), the final step
    excluded (the final image follows it); fewer when the run is too short to space them."""
    run = steps - start_step
    chosen = {start_step + (run * (i + 1)) // (count + 1) for i in range(max(count, 0))}
    return tuple(sorted(s for s in chosen if start_step < s < steps))


def predicted_clean(
    scheduler: object, out: object, pred: torch.Tensor, sample: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The clean latents x0 predicted at timestep `t` from the pre-step `sample`: the step
    output's `pred_original_sample` (DDIM, DDPM, Euler), else from the schedule's alphas
    (DPM-Solver, whose samples are not sigma-scaled)."""
    x0 = getattr(out, "pred_original_sample", None)
    if x0 is not None:
        return x0
    config = scheduler.config  # type: ignore[attr-defined]
    alphas = scheduler.alphas_cumprod.to(sample.device)  # type: ignore[attr-defined]
    alpha = alphas[int(t)].to(sample.dtype)
    kind = config.get("prediction_type", "epsilon")
    if kind == "sample":
        return pred
    if kind == "v_prediction":
        return alpha.sqrt() * sample - (1 - alpha).sqrt() * pred
    return (sample - (1 - alpha).sqrt() * pred) / alpha.sqrt()


MAX_ETA = 1 - 1e-4
"""At eta = 1, DDIM's sqrt(1 - alpha_prev - sigma^2) is sqrt(0) at the first step of a short
trailing schedule, and float rounding of sigma^2 makes it NaN; this margin keeps it real."""


def _step_noise(
    pipe: Pipeline, specs: Sequence[GenerationSpec], step: int, latents: torch.Tensor
) -> dict[str, object]:
    """Stochastic DDIM's arguments for one step (none when `eta` is 0). The noise comes from each
    spec's seed and the step index: an image depends on its seed only, not on its batch, and a
    generation resumed at step K draws what the full run drew."""
    if not pipe.eta:
        return {}
    noise = [
        torch.randn(latents.shape[1:],
                    generator=torch.Generator().manual_seed((s.seed * 1_000_003 + step) % 2**63))
        for s in specs
    ]
    return {"eta": min(pipe.eta, MAX_ETA), "variance_noise": torch.stack(noise).to(latents),
            "use_clipped_model_output": True}


def _capture(
    latents: torch.Tensor,
    step: int,
    specs: Sequence[GenerationSpec],
    captured: list[dict[int, np.ndarray]],
) -> None:
    for j, s in enumerate(specs):
        if step in s.capture_steps:
            captured[j][step] = latents[j].float().cpu().numpy().copy()
