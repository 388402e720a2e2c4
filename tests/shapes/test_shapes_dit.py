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


def test_saved_dit_serves_through_the_engines_flow_loop(tmp_path) -> None:
    """A saved shapes DiT folder (no VAE, one text encoder) loads as a transformer variant and
    generates in pixel space: per-seed noise is independent of the batch, sizes up to 2x the
    native side work, and resuming a prompt from its own latents at step K reproduces the run."""
    from argus.config import VariantConfig
    from argus.engine.generate import GenerationSpec, generate
    from argus.engine.pipeline import load_pipeline
    from argus.shapes.dit import save_dit_variant

    torch.set_num_threads(1)
    save_dit_variant(tmp_path / "dit", build_dit_components(arch=DitArch(width=32, heads=2,
                                                                         layers=2)))
    pipe = load_pipeline(VariantConfig(name="dit", source=str(tmp_path / "dit"),
                                       default_steps=6, resolution=32, guidance_scale=4.0))
    assert (pipe.latent_channels, pipe.latent_factor, pipe.size_multiple) == (12, 2, 4)

    def spec(prompt: str, seed: int, side: int = 32, **kw) -> GenerationSpec:
        return GenerationSpec(prompt=prompt, seed=seed, steps=6, height=side, width=side,
                              guidance_scale=4.0, **kw)

    batch = generate(pipe, [spec("a red circle", 1, capture_steps=(3,)), spec("a blue square", 2)])
    alone = generate(pipe, [spec("a blue square", 2)])
    assert batch[0].image.shape == (32, 32, 3)
    np.testing.assert_allclose(batch[1].image, alone[0].image, atol=1e-5)
    assert not np.allclose(batch[0].image, batch[1].image)
    resumed = generate(pipe, [spec("a red circle", 1, start_step=3,
                                   start_latents=batch[0].captured[3])])
    np.testing.assert_allclose(resumed[0].image, batch[0].image, atol=1e-5)
    assert generate(pipe, [spec("a red circle", 1, side=64)])[0].image.shape == (64, 64, 3)
