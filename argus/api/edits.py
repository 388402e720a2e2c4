"""POST /v1/images/edits: image-to-image and inpainting, multipart as the OpenAI client sends it.

Fields: `image` (one file, or several as `image[]`), optional `mask` (the same size as every
image: with an alpha channel its transparent pixels, alpha < 128, are the area to repaint, as
OpenAI's; without one its white pixels, luminance >= 128, as diffusers'), `prompt`, and the
generation fields of /v1/images/generations as form values (`n`, `size`, `response_format`,
`stream`, `partial_images`, `output_format`, ... plus Argus' `seed`, `num_inference_steps`,
`guidance_scale`, `negative_prompt`) and `strength` (the share of the schedule re-run, (0, 1]:
the run starts at step K = round((1 - strength) x N); default 0.8, 1.0 with a mask).
OpenAI's `input_fidelity` hint is accepted and ignored; any other field is a 400 naming it.

`size`: the output size; the images (and mask) are resized to it. `auto` (default): the first
image's size when the deployment serves it, else the native resolution. Output image i starts
from image i mod the number of images; `n` defaults to the number of images. An edit runs at
its full level and exact steps (never a cache level: its start is the image, not noise) and
costs the plane the steps it runs (`Request.run_fraction`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from argus.api.schemas import (
    MAX_PARTIAL_IMAGES,
    ImageGenerationBody,
    InvalidField,
    _parse_size,
    body_schema_limits,
    to_generation_request,
)
from argus.config import ArgusConfig
from argus.runtime.base import GenerationRequest
from argus.runtime.messages import EditInput

FILE_FIELDS = ("image", "image[]", "mask")
INT_FIELDS = ("n", "num_inference_steps", "seed", "partial_images", "output_compression")
FLOAT_FIELDS = ("guidance_scale", "strength")
BOOL_FIELDS = ("stream", "argus_events")
EDIT_HINTS = {"input_fidelity": ("high", "low")}
"""OpenAI edit hints with no meaning here: checked, then ignored."""
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_STRENGTH = 0.8
INPAINT_STRENGTH = 1.0
MASK_LEVEL = 128
"""Mask pixels with alpha below this (or without alpha, luminance at least this) are repainted
(OpenAI: fully transparent = edit; diffusers: white = repaint)."""

Answer = Callable[..., Awaitable[Response]]


def _typed(name: str, text: str) -> Any:
    """A form value as its field's type (strict, as the JSON route: `2.0` is not an int)."""
    try:
        if name in INT_FIELDS:
            return int(text, 10)
        if name in FLOAT_FIELDS:
            return float(text)
    except ValueError:
        kind = "an integer" if name in INT_FIELDS else "a number"
        raise InvalidField(name, f"{name} must be {kind}, got {text!r}") from None
    if name in BOOL_FIELDS:
        if text.lower() not in ("true", "false"):
            raise InvalidField(name, f"{name} must be true or false, got {text!r}")
        return text.lower() == "true"
    return text


def _fields(form: FormData) -> tuple[dict[str, Any], list[UploadFile], UploadFile | None]:
    """(typed text fields, images, mask); a field given twice or a stray file is a 400."""
    values: dict[str, Any] = {}
    images: list[UploadFile] = []
    mask = None
    for name, value in form.multi_items():
        if isinstance(value, str):
            if name in values or name in FILE_FIELDS:
                raise InvalidField(name, f"{name} given twice (or as text)")
            values[name] = _typed(name, value)
        elif name in ("image", "image[]"):
            images.append(value)
        elif name == "mask" and mask is None:
            mask = value
        else:
            raise InvalidField(name, f"unexpected file field {name!r}", "unknown_parameter")
    if not images:
        raise InvalidField("image", "image is required (one file, or several as image[])")
    return values, images, mask


async def _open(upload: UploadFile, param: str, max_side: int) -> Image.Image:
    """The decoded image; 400 naming `param` if it is not one or is larger than allowed (its
    size is read from the header before any pixel is decoded)."""
    data = await upload.read()
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in IMAGE_FORMATS:
            raise InvalidField(param, f"{param} must be PNG, JPEG or WebP, got {image.format}")
        if max(image.size) > max_side:
            raise InvalidField(param, f"{param} is {image.width}x{image.height}; each side may be"
                                      f" at most {max_side} px (server.max_size)")
        image.load()
    except InvalidField:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidField(param, f"{param} is not a readable image file") from None
    return image


def _output_size(body: ImageGenerationBody, first: Image.Image, config: ArgusConfig,
                 request: GenerationRequest) -> tuple[int, int]:
    if request.width and request.height:
        return request.width, request.height
    variants = [request.pinned_variant] if request.pinned_variant else [
        v.name for v in config.variants]
    try:
        return _parse_size(f"{first.width}x{first.height}", config, variants)
    except InvalidField:  # not a size this deployment serves: its native resolution
        side = min(config.variant(v).resolution for v in variants)
        return side, side


def _mask(mask: Image.Image, images: list[Image.Image], size: tuple[int, int]) -> np.ndarray:
    """Bool (H, W) at the output size, True = repaint."""
    for image in images:
        if image.size != mask.size:
            raise InvalidField("mask", f"mask is {mask.width}x{mask.height} but image is "
                                       f"{image.width}x{image.height}; they must match")
    if "A" in mask.getbands() or "transparency" in mask.info:
        alpha = mask.convert("RGBA").getchannel("A").resize(size, Image.Resampling.NEAREST)
        return np.asarray(alpha) < MASK_LEVEL
    luminance = mask.convert("L").resize(size, Image.Resampling.NEAREST)
    return np.asarray(luminance) >= MASK_LEVEL


def _pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    rgb = image.convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).copy()


async def parse_edit(http: Request, config: ArgusConfig) -> tuple[ImageGenerationBody,
                                                                  GenerationRequest]:
    """The multipart form -> (its generation fields as a body, the edit request)."""
    async with http.form(max_files=MAX_PARTIAL_IMAGES + 16, max_fields=64) as form:
        values, uploads, mask_file = _fields(form)
        max_side = config.server.max_size
        images = [await _open(u, "image", max_side) for u in uploads]
        mask = await _open(mask_file, "mask", max_side) if mask_file is not None else None
    strength = values.pop("strength", INPAINT_STRENGTH if mask else DEFAULT_STRENGTH)
    if not 0.0 < strength <= 1.0:
        raise InvalidField("strength", f"strength must be in (0, 1], got {strength}")
    for hint, allowed in EDIT_HINTS.items():
        if values.pop(hint, allowed[0]) not in allowed:
            raise InvalidField(hint, f"{hint} must be one of {', '.join(allowed)}")
    values.setdefault("n", len(images))
    if "prompt" not in values:
        raise InvalidField("prompt", "prompt is required")
    try:
        body = ImageGenerationBody(**values)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidField(param or "body", f"{param}: {first.get('msg')}") from None
    request = to_generation_request(body, config)
    if request.n < len(images):
        raise InvalidField("n", f"n ({request.n}) must be at least the number of images "
                                f"({len(images)})")
    width, height = _output_size(body, images[0], config, request)
    edit = EditInput(
        images=tuple(_pixels(image, (width, height)) for image in images),
        mask=None if mask is None else _mask(mask, images, (width, height)),
        strength=strength,
    )
    # An exact run at its level: its start is the image, no cache level may stand in for it.
    return body, dataclasses.replace(request, width=width, height=height, edit=edit,
                                     no_approximation=True, quality_floor=None)


def edit_form_schema(config: ArgusConfig) -> dict[str, Any]:
    """The OpenAPI request body (multipart; the route parses the form itself): the generation
    body's fields with this deployment's limits (`schemas.body_schema_limits`), plus the files,
    `strength` and the `input_fidelity` hint."""
    fields: dict[str, Any] = {}
    for name, field in ImageGenerationBody.model_json_schema()["properties"].items():
        fields[name] = next(b for b in field.get("anyOf", [field]) if b.get("type") != "null")
    for name, limits in body_schema_limits(config).items():
        fields[name] = {**fields[name], **limits}
    binary = {"type": "string", "format": "binary"}
    fields.update(
        image={**binary, "description": "PNG, JPEG or WebP; several as `image[]`"},
        mask={**binary, "description": "transparent (or, without alpha, white) = repaint"},
        strength={"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        **{hint: {"enum": list(allowed)} for hint, allowed in EDIT_HINTS.items()},
    )
    schema = {"type": "object", "required": ["image", "prompt"], "properties": fields,
              "additionalProperties": False}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def add_edit_route(app: FastAPI, service: Any, answer: Answer,
                   responses: dict[int | str, dict[str, Any]]) -> None:
    """Register the route; `answer(service, spec, body, http, route=None, kind=...)` is the
    generations route's way of submitting and answering (JSON or server-sent events)."""

    @app.post("/v1/images/edits", responses=responses,
              openapi_extra={"requestBody": edit_form_schema(service.config)})
    async def edit(http: Request) -> Response:
        body, request = await parse_edit(http, service.config)
        return await answer(service, service.auth.scoped(request), body, http, kind="image_edit")
