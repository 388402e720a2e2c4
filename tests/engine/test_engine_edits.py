"""Image-to-image and inpainting in the loop (`argus.engine.edits`)."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_loop import STEPS, run_one, spec

from argus.engine.generate import generate
from argus.engine.pipeline import Pipeline


def picture() -> np.ndarray:
    """A hard-edged test image: a yellow square on blue, float (32, 32, 3) in [0, 1]."""
    image = np.zeros((32, 32, 3), np.float32)
    image[..., 2] = 0.9
    image[8:20, 8:20] = (0.95, 0.85, 0.1)
    return image


def right_half() -> np.ndarray:
    mask = np.zeros((32, 32), np.float32)
    mask[:, 16:] = 1.0
    return mask


def test_inpainting_keeps_the_unmasked_region_exactly(pixel_pipe: Pipeline) -> None:
    """Pixel-space model: outside the mask the output is the original (up to float rounding),
    inside it is generated."""
    image, mask = picture(), right_half()
    result = run_one(pixel_pipe, spec(init_image=image, mask=mask, start_step=2))
    assert result.steps_run == STEPS - 2
    kept = mask == 0
    assert np.abs(result.image - image)[kept].max() <= 1e-5
    assert np.abs(result.image - image)[~kept].mean() > 0.05


def test_inpainting_keeps_the_unmasked_region_through_a_vae(latent_pipe: Pipeline) -> None:
    """With a VAE the known latents are exact, so the kept region is the VAE's reconstruction:
    an inpainting with an empty mask is image-to-image's clean end, identical everywhere."""
    image = picture()
    empty = run_one(latent_pipe, spec(init_image=image, mask=np.zeros((32, 32), np.float32)))
    again = run_one(latent_pipe, spec(init_image=image, mask=np.zeros((32, 32), np.float32),
                                      seed=99, prompt="a blue square"))
    assert np.abs(empty.image - again.image).max() <= 1e-5  # nothing generated at all


def test_image_to_image_strength_sets_how_far_it_goes(pipe: Pipeline) -> None:
    """Starting late (low strength) stays nearer the original than starting from step 0."""
    image = picture()
    near = run_one(pipe, spec(init_image=image, start_step=STEPS - 1))
    far = run_one(pipe, spec(init_image=image, start_step=0))
    assert near.steps_run == 1 and far.steps_run == STEPS
    assert np.abs(near.image - image).mean() < np.abs(far.image - image).mean()


def test_an_edit_batched_with_others_is_what_it_is_alone(pixel_pipe: Pipeline) -> None:
    """An edit depends on its own inputs only: batched with a plain spec and an image-to-image
    spec it gives what it gives alone, and so do they."""
    image, mask = picture(), right_half()
    specs = [spec(init_image=image, mask=mask, start_step=3),
             spec("a blue square", seed=3, init_image=image, start_step=3),
             spec("a green circle", seed=5, start_step=3, init_image=image * 0.5)]
    together = generate(pixel_pipe, specs)
    for s, result in zip(specs, together, strict=True):
        assert np.abs(run_one(pixel_pipe, s).image - result.image).max() <= 1e-5


@pytest.mark.parametrize(("field", "value"), [
    ("init_image", np.zeros((16, 16, 3), np.float32)),
    ("mask", np.zeros((16, 16), np.float32)),
])
def test_wrong_shapes_are_input_errors(pixel_pipe: Pipeline, field: str, value) -> None:
    """A ValueError (the worker reports it as the request's input, a 400)."""
    fields = {"init_image": picture(), field: value}
    with pytest.raises(ValueError, match=field):
        run_one(pixel_pipe, spec(**fields))
