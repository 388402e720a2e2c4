"""Loading variants: random configs, diffusers folders (contract A), size rules, bad sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from diffusers import DDIMScheduler
from engine_helpers import tiny_variant

from argus.engine.generate import GenerationSpec, generate
from argus.engine.pipeline import Pipeline, load_pipeline
from argus.engine.variants import size_multiple


def save_folder(pipe: Pipeline, path: Path) -> Path:
    """Write `pipe` as a diffusers-format variant folder (contract A)."""
    index: dict = {"_class_name": "StableDiffusionPipeline"}
    parts = {
        "unet": pipe.unet, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
        "vae": pipe.vae, "text_encoder_2": pipe.text_encoder_2, "tokenizer_2": pipe.tokenizer_2,
    }
    for name, part in parts.items():
        if part is not None:
            part.save_pretrained(path / name)
            index[name] = ["diffusers", type(part).__name__]
    if pipe.vae is None:
        index["_argus_pixel_unshuffle"] = pipe.pixel_unshuffle
    DDIMScheduler(**pipe.scheduler_config).save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(index))
    return path


@pytest.mark.parametrize("kind", ["pixel", "sdxl"])
def test_folder_variant_loads_and_generates_like_the_original(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    original: Pipeline = request.getfixturevalue(f"{kind}_pipe")
    folder = save_folder(original, tmp_path / kind)
    variant = tiny_variant(source=str(folder))
    loaded = load_pipeline(variant)
    assert not loaded.random_weights and loaded.sdxl == original.sdxl
    assert (loaded.vae is None) == (original.vae is None)
    assert loaded.pixel_unshuffle == original.pixel_unshuffle
    assert size_multiple(variant) == loaded.size_multiple == original.size_multiple
    s = GenerationSpec("a red circle", seed=3, steps=4, height=32, width=32, guidance_scale=2.0)
    a, b = generate(original, [s])[0], generate(loaded, [s])[0]
    assert np.abs(a.image - b.image).max() <= 1e-5


def test_random_weights_are_identical_across_loads(pixel_pipe: Pipeline) -> None:
    """Every worker builds the same weights, so a seed gives the same image on any worker."""
    again = load_pipeline(tiny_variant("pixel-small"))
    assert again.random_weights
    for (name, p), (_, q) in zip(
        pixel_pipe.unet.state_dict().items(), again.unet.state_dict().items(), strict=True
    ):
        assert np.array_equal(p.numpy(), q.numpy()), name


@pytest.mark.parametrize(
    ("source", "error"),
    [("random:no-such-arch", ValueError), ("builtin:no-such-variant", FileNotFoundError)],
)
def test_bad_sources_fail_with_a_clear_error(source: str, error: type[Exception]) -> None:
    with pytest.raises(error, match="no-such"):
        load_pipeline(tiny_variant(source=source))


def test_size_multiple_of_random_archs() -> None:
    assert size_multiple(tiny_variant("pixel-small")) == 4
    assert size_multiple(tiny_variant("latent-tiny")) == 4
