"""The shapes DiT: built from the shapes text stack, trained with flow matching."""

from __future__ import annotations

import numpy as np
import torch

from argus.shapes.dataset import TrainBatches
from argus.shapes.dit import DitArch, build_dit_components, flow_matching_loss
from argus.shapes.model import FastTokenizer


def test_flow_matching_steps_lower_the_loss_on_a_fixed_batch() -> None:
    """A few AdamW steps on one batch (same noise and sigmas each time) lower the velocity
    error: the loss reaches every part it should train."""
    torch.set_num_threads(1)
    parts = build_dit_components(arch=DitArch(width=32, heads=2, layers=2))
    latents, ids, _ = next(iter(TrainBatches(FastTokenizer(parts.tokenizer), 8, seed=3,
                                             null_caption_p=0.0)))
    params = [*parts.transformer.parameters(), *parts.text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(0)
        loss = flow_matching_loss(parts.text_encoder, parts.transformer, latents, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses
