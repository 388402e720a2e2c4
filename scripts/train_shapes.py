"""Train one shapes-world variant from scratch; save a diffusers folder and a training record.

    python scripts/train_shapes.py --variant shapes-l --minutes 55 --threads 1 --seed 0 \
        --out argus/assets/shapes/shapes-l [--resume CKPT] [--device cuda]

Recipe (docs/shapes.md): v-prediction on the cosine schedule (T=1000), AdamW with warm-up and
cosine decay over the run's steps, EMA weights saved, 10% null captions (classifier-free
guidance). The cosine runs over `--minutes` of wall clock (the step count reached is recorded), or
over `--steps N` for an exactly repeatable run. `--resume` continues from a checkpoint
(weights, EMA, optimizer, counters) with a fresh schedule over the new run; `--init FOLDER`
continues from a saved variant folder (e.g. the shipped weights) with a fresh optimizer.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import socket
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from argus.shapes.dataset import TrainBatches  # noqa: E402
from argus.shapes.evaluate import evaluate, pipeline_from, summarize  # noqa: E402
from argus.shapes.grammar import sample_prompts  # noqa: E402
from argus.shapes.model import (  # noqa: E402
    Components,
    FastTokenizer,
    arch_record,
    build_components,
    load_variant,
    parameter_count,
    save_variant,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", required=True,
                   choices=["shapes-l", "shapes-m", "shapes-s", "shapes-dit"])
    p.add_argument("--arch", default="unet", choices=["unet", "dit"],
                   help="dit: the shapes diffusion transformer, flow matching "
                        "(argus.shapes.dit_train)")
    p.add_argument("--minutes", type=float, required=True, help="training wall-clock budget")
    p.add_argument("--steps", type=int, default=0, help="fix the step count (0: from --minutes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="diffusers folder to write (EMA weights)")
    p.add_argument("--checkpoint", default="", help="checkpoint path (default: OUT.ckpt.pt)")
    p.add_argument("--resume", default="", help="checkpoint to continue from")
    p.add_argument("--init", default="", help="start from a saved variant folder's weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--null-caption", type=float, default=0.1)
    p.add_argument("--fg-weight", type=float, default=1.0,
                   help="loss weight of object pixels relative to background pixels")
    p.add_argument("--min-snr", type=float, default=0.0,
                   help="min-SNR-gamma timestep weighting (Hang et al. 2023); 0 = off")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes")
    p.add_argument("--procs", type=int, default=1,
                   help="data-parallel training processes (gloo; each runs --threads threads "
                        "on its own --batch, gradients averaged)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--eval-prompts", type=int, default=48, help="held-out prompts scored at end")
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--record", default="", help="training record JSON (default: docs/...)")
    return p.parse_args(argv)


class Trainer:
    """Model, EMA copy, optimizer and counters of one training run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.parts = build_components(args.variant, seed=args.seed)
        self.model = torch.nn.ModuleDict(
            {"unet": self.parts.unet, "text_encoder": self.parts.text_encoder}
        ).to(self.device)
        self.model.unet.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        fused = {"fused": True} if self.device.type in ("cuda", "cpu") else {}
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01, **fused
        )
        acp = self.parts.scheduler.alphas_cumprod.to(self.device)
        self.sqrt_acp, self.sqrt_1m_acp = acp.sqrt(), (1 - acp).sqrt()
        self.step = 0
        self.samples = 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.seconds = 0.0
        self.runs: list[dict] = []

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "samples": self.samples,
            "seconds": self.seconds,
            "runs": self.runs,
            "variant": self.args.variant,
        }

    def load(self, path: str) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["variant"] != self.args.variant:
            raise ValueError(f"checkpoint is {state['variant']}, not {self.args.variant}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.samples = state["step"], state["samples"]
        self.seconds, self.runs = state["seconds"], state["runs"]

    def init_from(self, folder: str) -> None:
        """Start model and EMA from a shipped folder's (EMA) weights, with a fresh optimizer."""
        saved = load_variant(folder)
        for module in (self.model, self.ema):
            module.unet.load_state_dict(saved.unet.state_dict())
            module.text_encoder.load_state_dict(saved.text_encoder.state_dict())
        self.runs.append({"initialised_from": folder})

    def train_step(
        self, latents: torch.Tensor, ids: torch.Tensor, fg: torch.Tensor, lr: float
    ) -> float:
        x0 = latents.to(self.device, non_blocking=True).contiguous(
            memory_format=torch.channels_last
        )
        ids = ids.to(self.device, non_blocking=True)
        t = torch.randint(0, len(self.sqrt_acp), (len(x0),), device=self.device)
        noise = torch.randn_like(x0)
        a = self.sqrt_acp[t].view(-1, 1, 1, 1)
        s = self.sqrt_1m_acp[t].view(-1, 1, 1, 1)
        target = a * noise - s * x0  # v-prediction
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.device.type == "cuda"):
            text = self.model.text_encoder(ids)
            pred = self.model.unet(
                a * x0 + s * noise,
                t,
                encoder_hidden_states=text.last_hidden_state,
                class_labels=text.pooler_output,
            ).sample
        # Objects cover a fifth of the canvas; `--fg-weight` makes their pixels count more.
        weight = 1 + (self.args.fg_weight - 1) * fg.to(self.device)
        loss = (weight * (pred.float() - target) ** 2).mean((1, 2, 3)) / weight.mean()
        if self.args.min_snr:
            # Cap the weight of low-noise steps, where detail is refined, so that the steps
            # that decide layout and shape dominate: converges faster (Hang et al. 2023).
            snr = (a / s).square().flatten()
            loss = loss * snr.clamp(max=self.args.min_snr) / (snr + 1)
        loss = loss.mean()
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            self._average_gradients()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        decay = min(self.args.ema, (1 + self.step) / (10 + self.step))
        ema_p = list(self.ema.parameters())
        torch._foreach_lerp_(ema_p, list(self.model.parameters()), 1 - decay)
        self.step += 1
        self.samples += len(x0) * self.world
        return float(loss.detach())

    def _average_gradients(self) -> None:
        """Data-parallel step: every process's gradients averaged in one all-reduce."""
        params = list(self.model.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
            # Copied in place: a grad must keep its parameter's memory layout (channels-last
            # convolutions), or the fused AdamW step reads it in the wrong order.
            p.grad.copy_(g.view_as(p))

    def ema_components(self) -> Components:
        ema = copy.deepcopy(self.ema).float().cpu()
        return Components(self.parts.tokenizer, ema.text_encoder, ema.unet, self.parts.scheduler)


def lr_at(step: int, progress: float, args: argparse.Namespace) -> float:
    """Linear warm-up over `--warmup` steps, then cosine decay to 5% of the peak at the end."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def run(args: argparse.Namespace) -> dict | None:
    """Train; with `--procs N` the N processes train one model on N data streams (gradients
    averaged each step): on a CPU, N one-thread processes outrun one N-thread process."""
    if args.arch == "dit":
        from argus.shapes.dit_train import train_dit

        return train_dit(args)
    if args.procs > 1:
        with socket.socket() as probe:  # a free port for the process group's rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        torch.multiprocessing.spawn(_ranked_run, args=(args, port), nprocs=args.procs)
        return json.loads(Path(_record_path(args)).read_text())
    return _train(args, rank=0)


def _ranked_run(rank: int, args: argparse.Namespace, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.procs)
    try:
        _train(args, rank)
    finally:
        dist.destroy_process_group()


def _record_path(args: argparse.Namespace) -> Path:
    return Path(args.record or REPO / "docs" / "shapes-training" / f"{args.variant}.json")


def _train(args: argparse.Namespace, rank: int) -> dict | None:
    """One process's training loop; rank 0 logs, checkpoints, saves and evaluates."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    trainer = Trainer(args)
    if args.resume:
        trainer.load(args.resume)
    elif args.init:
        trainer.init_from(args.init)
    checkpoint = Path(args.checkpoint or f"{args.out.rstrip('/')}.ckpt.pt")
    data = TrainBatches(
        FastTokenizer(trainer.parts.tokenizer),
        args.batch,
        seed=args.seed * 1_000_003 + trainer.samples + rank * 7919,
        null_caption_p=args.null_caption,
    )
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=None,
        num_workers=args.workers,
        pin_memory=trainer.device.type == "cuda",
        prefetch_factor=8 if args.workers else None,
        persistent_workers=bool(args.workers),
    )
    budget = args.minutes * 60
    start_step, start_samples = trainer.step, trainer.samples
    losses: list[tuple[int, float]] = []
    t0 = last_log = last_ckpt = time.perf_counter()
    running = 0.0
    for i, (latents, ids, fg) in enumerate(loader):
        # Progress through the schedule: by steps when fixed, else by wall-clock time (the
        # machine may be shared, so a step count timed up front would over- or undershoot).
        progress = i / args.steps if args.steps else (time.perf_counter() - t0) / budget
        if trainer.world > 1:  # every process follows rank 0's clock, and stops with it
            shared = torch.tensor([progress])
            dist.broadcast(shared, 0)
            progress = float(shared)
        if progress >= 1.0:
            break
        lr = lr_at(i, progress, args)
        loss = trainer.train_step(latents, ids, fg, lr)
        running = loss if i == 0 else 0.98 * running + 0.02 * loss
        now = time.perf_counter()
        if rank == 0 and now - last_log >= 30:
            rate = (trainer.samples - start_samples) / (now - t0)
            print(
                f"[{args.variant}] step {i} ({progress:.0%}) loss {running:.4f} "
                f"lr {lr:.2e} {rate:.0f} samples/s {now - t0:.0f}s",
                flush=True,
            )
            losses.append((trainer.step, round(running, 5)))
            last_log = now
        if rank == 0 and now - last_ckpt >= args.checkpoint_minutes * 60:
            torch.save(trainer.state(), checkpoint)
            last_ckpt = now
    elapsed = time.perf_counter() - t0
    if rank != 0:
        return None
    trainer.seconds += elapsed
    this_run = {
        "steps": trainer.step - start_step,
        "schedule": f"{args.steps} steps" if args.steps else f"{args.minutes} min wall clock",
        "samples": trainer.samples - start_samples,
        "seconds": round(elapsed, 1),
        "final_loss": round(running, 5),
        "loss_curve": losses,
        "args": vars(args),
        "hardware": hardware(trainer.device, args.threads),
        "resumed_from": args.resume or None,
    }
    trainer.runs.append(this_run)
    torch.save(trainer.state(), checkpoint)
    parts = trainer.ema_components()
    save_variant(args.out, parts)
    record = {
        "variant": args.variant,
        "arch": arch_record(args.variant),
        "parameters": {
            "unet": parameter_count(parts.unet),
            "text_encoder": parameter_count(parts.text_encoder),
        },
        "total_steps": trainer.step,
        "total_samples": trainer.samples,
        "total_train_seconds": round(trainer.seconds, 1),
        "checkpoint": str(checkpoint),
        "runs": trainer.runs,
    }
    if args.eval_prompts:
        record["eval"] = quick_eval(parts, args)
        print(f"[{args.variant}] eval {record['eval']}", flush=True)
    record_path = _record_path(args)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def quick_eval(parts: Components, args: argparse.Namespace) -> dict:
    """Score held-out prompts (one seed each) with the engine, on the training device."""
    pipe = pipeline_from(parts, args.variant, args.device)
    pipe.unet.to(pipe.device)
    pipe.text_encoder.to(pipe.device)
    prompts = sample_prompts(seed=1234, count=args.eval_prompts, held_out=True)
    seeds = [0]
    results = evaluate(pipe, prompts, seeds, steps=args.eval_steps, guidance=args.guidance)
    summary = summarize(results)
    summary.update({"prompts": len(prompts), "seeds": len(seeds), "steps": args.eval_steps})
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}


def hardware(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {threads} torch thread(s)"


if __name__ == "__main__":
    run(parse_args())
