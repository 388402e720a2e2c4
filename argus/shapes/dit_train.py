"""Training loop of the shapes DiT (`scripts/train_shapes.py --arch dit`): flow matching on the
shapes data stream, AdamW with warm-up and cosine decay, an EMA copy, checkpoints every
`--checkpoint-minutes`, and at the end a servable diffusers folder (`--out`, EMA weights) and a
training record. `--init FOLDER` starts the text encoder from a trained shapes UNet variant of the
same width (shapes-l: the words are already learned; the transformer starts fresh); given a DiT
folder, it starts from its transformer too (continuing a shipped model with a fresh schedule)."""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel
from transformers import CLIPTextModel

from argus.shapes.dataset import TrainBatches
from argus.shapes.dit import (
    DitComponents,
    build_dit_components,
    flow_matching_loss,
    save_dit_variant,
)
from argus.shapes.model import FastTokenizer, parameter_count

LOG_EVERY_S = 10.0


def _lr(step: int, progress: float, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _checkpoint_path(args: argparse.Namespace) -> str:
    return args.checkpoint or f"{args.out.rstrip('/')}.ckpt.pt"


def _save(args: argparse.Namespace, model: torch.nn.Module, ema: torch.nn.Module,
          opt: torch.optim.Optimizer, step: int, parts: DitComponents) -> None:
    torch.save({"ema": ema.state_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                "step": step, "variant": args.variant}, _checkpoint_path(args))
    save_dit_variant(args.out, DitComponents(parts.tokenizer, copy.deepcopy(ema.text_encoder),
                                             copy.deepcopy(ema.transformer)))


def _start(args: argparse.Namespace, model: torch.nn.Module, ema: torch.nn.Module,
           opt: torch.optim.Optimizer) -> int:
    """Weights to start from: a checkpoint (`--resume`, all state), or `--init`'s text encoder
    (and its transformer when `--init` is a DiT folder)."""
    if args.resume:
        state = torch.load(args.resume, map_location="cpu")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        if "opt" in state:
            opt.load_state_dict(state["opt"])
        return 0  # a new schedule (warm-up + cosine) over this run's budget
    if args.init:
        text = CLIPTextModel.from_pretrained(args.init, subfolder="text_encoder")
        model.text_encoder.load_state_dict(text.state_dict())
        ema.text_encoder.load_state_dict(text.state_dict())
        if (Path(args.init) / "transformer").is_dir():
            dit = SD3Transformer2DModel.from_pretrained(args.init, subfolder="transformer")
            model.transformer.load_state_dict(dit.state_dict())
            ema.transformer.load_state_dict(dit.state_dict())
    return 0


def train_dit(args: argparse.Namespace) -> dict:
    """Train for `--minutes` (or `--steps`); returns the record also written next to `--out`."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    parts = build_dit_components(args.variant, seed=args.seed)
    model = torch.nn.ModuleDict({"transformer": parts.transformer,
                                 "text_encoder": parts.text_encoder})
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99),
                            weight_decay=0.01)
    step = _start(args, model, ema, opt)
    data = iter(TrainBatches(FastTokenizer(parts.tokenizer), args.batch, seed=args.seed,
                             null_caption_p=args.null_caption))
    losses: list[tuple[int, float]] = []
    t0 = last = saved = time.perf_counter()
    running = 0.0
    while True:
        progress = step / args.steps if args.steps else (time.perf_counter() - t0) / (
            args.minutes * 60)
        if progress >= 1.0:
            break
        latents, ids, fg = next(data)
        weight = 1 + (args.fg_weight - 1) * fg
        loss = flow_matching_loss(model.text_encoder, model.transformer, latents, ids, weight)
        for group in opt.param_groups:
            group["lr"] = _lr(step, progress, args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
        value = float(loss.detach())
        running = value if step == 0 else 0.95 * running + 0.05 * value
        step += 1
        if step == 1 or time.perf_counter() - last >= LOG_EVERY_S:
            last = time.perf_counter()
            losses.append((step, round(running, 5)))
            print(f"[{args.variant}] step {step} ({progress:.0%}) loss {running:.4f} "
                  f"{last - t0:.0f}s", flush=True)
        if time.perf_counter() - saved >= args.checkpoint_minutes * 60:
            _save(args, model, ema, opt, step, parts)
            saved = time.perf_counter()
    losses.append((step, round(running, 5)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    _save(args, model, ema, opt, step, parts)
    record = {"variant": args.variant, "arch": "dit", "objective": "flow matching (velocity)",
              "steps": step, "batch": args.batch, "threads": args.threads, "lr": args.lr,
              "init": args.init, "resume": args.resume,
              "seconds": round(time.perf_counter() - t0, 1),
              "parameters": parameter_count(model), "loss_curve": losses}
    Path(f"{args.out.rstrip('/')}.record.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
