"""POST /v1/images/edits with the official client: inpainting keeps what the mask keeps,
image-to-image costs the steps it runs, streaming, formats, and bad input as 400s."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest
from live_server import LiveServer
from openai import OpenAI
from PIL import Image

FAST = {"prompt": "a red circle", "model": "large-5", "size": "32x32"}
"""5 steps at 32x32 on the random-weight pixel model (exact pixel-unshuffle latents)."""


@pytest.fixture(scope="module")
def client_openai(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def scene() -> np.ndarray:
    """A yellow square on blue, uint8 (32, 32, 3)."""
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[..., 2] = 230
    pixels[6:18, 6:18] = (240, 220, 30)
    return pixels


def right_half_mask(size: int = 32) -> tuple[bytes, np.ndarray]:
    """(RGBA PNG, bool repaint): transparent on the right half."""
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[:, size // 2 :, 3] = 0
    return png(rgba), rgba[..., 3] == 0


def pixels_of(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), np.int16)


def test_inpainting_keeps_the_unmasked_region_and_changes_the_masked_one(
    client_openai: OpenAI,
) -> None:
    mask_png, repaint = right_half_mask()
    original = scene()
    result = client_openai.images.edit(image=("scene.png", png(original)),
                                       mask=("mask.png", mask_png), **FAST)
    out = pixels_of(result.data[0].b64_json)
    diff = np.abs(out - original.astype(np.int16)).max(-1)
    assert diff[~repaint].max() <= 1  # the known region is the original (PNG rounding)
    assert diff[repaint].mean() > 20  # the rest was generated
    assert result.size == "32x32" and result.usage.output_tokens == 5  # strength 1: all 5 steps
    assert result.data[0].argus["steps_run"] == 5
    white_right = np.where(repaint, 255, 0).astype(np.uint8)  # diffusers' convention, no alpha
    again = client_openai.images.edit(image=("scene.png", png(original)),
                                      mask=("mask.png", png(white_right)), **FAST)
    diff = np.abs(pixels_of(again.data[0].b64_json) - original.astype(np.int16)).max(-1)
    assert diff[~repaint].max() <= 1 and diff[repaint].mean() > 20


def test_image_to_image_runs_strength_of_the_schedule(client_openai: OpenAI) -> None:
    """strength 0.4 of 5 steps: K = 3, 2 steps run and billed; an earlier start changes more."""
    image = ("scene.png", png(scene()))
    light = client_openai.images.edit(image=image, **FAST, extra_body={"strength": 0.4,
                                                                       "seed": 1})
    heavy = client_openai.images.edit(image=image, **FAST, extra_body={"strength": 1.0,
                                                                       "seed": 1})
    assert light.usage.output_tokens == 2 and heavy.usage.output_tokens == 5
    assert light.data[0].argus["steps_run"] == 2

    def change(result) -> float:
        return float(np.abs(pixels_of(result.data[0].b64_json) - scene()).mean())

    assert change(light) < change(heavy)


def test_several_images_give_one_output_each(client_openai: OpenAI) -> None:
    images = [("a.png", png(scene())), ("b.png", png(scene()[::-1].copy()))]
    result = client_openai.images.edit(image=images, **FAST, output_format="jpeg")
    assert len(result.data) == 2 and result.output_format == "jpeg"
    for item in result.data:
        assert Image.open(io.BytesIO(base64.b64decode(item.b64_json))).format == "JPEG"


def test_auto_size_takes_the_image_size_and_resizes_to_an_asked_one(
    client_openai: OpenAI,
) -> None:
    image = ("scene.png", png(scene()))
    auto = client_openai.images.edit(image=image, prompt="a red circle", model="large-5")
    assert auto.size == "32x32"
    bigger = client_openai.images.edit(image=image, prompt="a red circle", model="large-5",
                                       size="64x64")
    assert pixels_of(bigger.data[0].b64_json).shape == (64, 64, 3)


def test_edit_streams_partials_then_completed(client_openai: OpenAI) -> None:
    mask_png, _ = right_half_mask()
    events = list(client_openai.images.edit(image=("s.png", png(scene())),
                                            mask=("m.png", mask_png), **FAST, stream=True,
                                            partial_images=1))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert all(pixels_of(e.b64_json).shape == (32, 32, 3) for e in events)
    assert events[-1].usage.output_tokens == 5


def bad(client: httpx.Client, files: dict, **data: object) -> dict:
    response = client.post("/v1/images/edits", files=files,
                           data={"prompt": "a red circle", "model": "large-5", **data})
    assert response.status_code == 400, response.text
    return response.json()["error"]


def test_bad_images_and_fields_are_400s_naming_the_field(client: httpx.Client) -> None:
    image = ("s.png", png(scene()), "image/png")
    mask_png, _ = right_half_mask(16)
    assert bad(client, {"image": ("x.png", b"not an image", "image/png")})["param"] == "image"
    assert bad(client, {"image": image, "mask": ("m.png", mask_png, "image/png")})[
        "param"] == "mask"
    huge = png(np.zeros((2048, 8, 3), np.uint8))
    assert bad(client, {"image": ("h.png", huge, "image/png")})["param"] == "image"
    for strength in ("0", "1.5", "x"):
        assert bad(client, {"image": image}, strength=strength)["param"] == "strength"
    assert bad(client, {"image": image}, n="1.0")["param"] == "n"
    assert bad(client, {"image": image}, frame_count="3")["param"] == "frame_count"
    assert bad(client, {"mask": ("m.png", mask_png, "image/png")})["param"] == "image"
    assert bad(client, {"image": image}, background="transparent")["param"] == "background"


def test_the_official_client_gets_a_400_for_a_non_image(client_openai: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_openai.images.edit(image=("x.png", b"\x89PNG garbage"), **FAST)
    assert caught.value.body["param"] == "image"  # type: ignore[index]
