"""OpenAI's output fields: image formats (`output_format`, `output_compression`), `background`,
and the response metadata (`size`, `quality`, `output_format`, `background`, `usage`).

Workers send PNGs; this re-encodes them with Pillow when another format is asked for.

`usage` maps diffusion work onto OpenAI's token fields (there are no image tokens here):
`output_tokens` = images x denoising steps run (cache-resumed steps are not run, so not
counted), `input_tokens` = 0 (prompts are tokenized on the workers, and not counted),
`total_tokens` = their sum; the details split them the same way.
"""

from __future__ import annotations

import asyncio
import io
import struct
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

OutputFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
DEFAULT_COMPRESSION = 100
"""OpenAI's default `output_compression`: 100 = best quality (Pillow's `quality`)."""
ALPHA_FORMATS = ("png", "webp")
TRANSPARENT_UNSUPPORTED = (
    "background 'transparent' is not supported: Argus' models produce opaque RGB images (no "
    "alpha channel); use 'opaque' or 'auto'"
)


@dataclass(frozen=True)
class OutputOptions:
    """How the images of one request are encoded and described."""

    output_format: OutputFormat = "png"
    compression: int | None = None
    """0-100 (JPEG/WebP quality; ignored for PNG, which is lossless); None: 100."""
    background: Literal["opaque", "auto"] = "auto"
    quality: str = "auto"
    """The `quality` asked for."""


def transparent_error(output_format: str) -> str:
    """Why `background: transparent` is refused (every Argus model draws opaque images)."""
    if output_format not in ALPHA_FORMATS:
        return f"{TRANSPARENT_UNSUPPORTED}; {output_format} has no alpha channel either"
    return TRANSPARENT_UNSUPPORTED


def encode(png: bytes, options: OutputOptions) -> bytes:
    """The worker's PNG in the asked format (the PNG itself when that is PNG)."""
    if options.output_format == "png":
        return png
    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
    quality = DEFAULT_COMPRESSION if options.compression is None else options.compression
    buf = io.BytesIO()
    rgb.save(buf, format=PILLOW_FORMATS[options.output_format], quality=max(quality, 1))
    return buf.getvalue()


def png_size(png: bytes) -> str:
    """WIDTHxHEIGHT of a PNG, from its header."""
    width, height = struct.unpack(">II", png[16:24])
    return f"{width}x{height}"


def served_quality(
    requested: str, predicted: float | None, floor: float, medium_floor: float
) -> Literal["low", "medium", "high"]:
    """The `quality` reported: what was asked (`hd`, `xhigh`, `max` are `high`), or for
    `auto`/`standard` the band of the served level's predicted relative quality: at least
    the quality floor -> high, at least `medium_floor` -> medium, else low."""
    if requested in ("high", "hd", "xhigh", "max"):
        return "high"
    if requested in ("medium", "low"):
        return requested  # type: ignore[return-value]
    if predicted is None or predicted >= floor:
        return "high"
    return "medium" if predicted >= medium_floor else "low"


def usage(images: int, steps_run: int) -> dict[str, Any]:
    """OpenAI's `usage` object for `images` images of `steps_run` denoising steps each."""
    output = images * steps_run
    return {
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
        "total_tokens": output,
    }


def response_fields(
    width: int, height: int, quality: str, options: OutputOptions, images: int, steps_run: int
) -> dict[str, Any]:
    """The metadata of an images response (non-streaming) besides `created` and `data`."""
    return {
        "size": f"{width}x{height}",
        "quality": quality,
        "output_format": options.output_format,
        "background": "opaque",
        "usage": usage(images, steps_run),
    }


async def encode_all(pngs: list[bytes], options: OutputOptions) -> list[bytes]:
    """`encode` for each image, off the event loop unless there is nothing to re-encode."""
    if options.output_format == "png":
        return list(pngs)
    return await asyncio.to_thread(lambda: [encode(png, options) for png in pngs])
