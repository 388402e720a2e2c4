"""Server-sent events of `stream: true`, in OpenAI's image-streaming format.

The stream, in order (`event:` names the type; `data:` is one JSON object carrying it as
`type`):

- `argus.accepted` `{type, request_id, level}` and one `argus.progress` `{type, request_id,
  step, total_steps}` per denoising step: only with `argus_events: true` (the official client
  does not skip unknown types, it yields them as untyped events);
- `image_generation.partial_image` `{type, b64_json, partial_image_index, size, quality,
  background, output_format, created_at, argus: {request_id, image_index, step,
  total_steps}}`: `partial_images` (0-3) previews per image, the predicted clean image (x0)
  decoded at evenly spaced steps; `partial_image_index` counts 0.. per image;
- `image_generation.completed` `{type, b64_json, size, quality, background, output_format,
  created_at, usage, argus: {..., image_index}}`: one per image (`n > 1`: n events), `usage`
  that image's (see `argus.api.formats`), `argus` the same object as in a JSON response;
- or `error` `{type: "error", error: {message, type, param, code}}` (the official client
  raises it as `APIError`), e.g. code `cancelled` after a DELETE.

Images are always inline (`b64_json`) in a stream. A client that goes away mid-stream cancels
the generation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from argus.api.formats import OutputOptions, encode, png_size, usage
from argus.runtime.base import JobHandle, JobOutcome, ProgressUpdate, Runtime, ServingError


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def b64(png: bytes, options: OutputOptions) -> str:
    """The image in the asked format, base64 (re-encoding off the event loop)."""
    data = png if options.output_format == "png" else await asyncio.to_thread(encode, png, options)
    return base64.b64encode(data).decode("ascii")


@dataclass
class ImageStream:
    """One request's stream: how to describe its images and how to report its outcome."""

    runtime: Runtime
    handle: JobHandle
    options: OutputOptions
    quality_of: Callable[[float | None], str]
    """Predicted relative quality -> the `quality` reported."""
    argus_info: Callable[[JobOutcome, int], dict[str, Any]]
    error_of: Callable[[Exception], JSONResponse]
    argus_events: bool = False
    kind: str = "image_generation"
    """Event type prefix: `image_generation`, or `image_edit` for POST /v1/images/edits."""

    def _image_fields(self, kind: str, quality: str, size: str) -> dict[str, Any]:
        return {
            "type": f"{self.kind}.{kind}",
            "size": size,
            "quality": quality,
            "background": "opaque",
            "output_format": self.options.output_format,
            "created_at": int(time.time()),
        }

    async def partials(self, update: ProgressUpdate, index: int) -> AsyncIterator[str]:
        quality = self.quality_of(self.handle.predicted_quality)
        for image_index, png in enumerate(update.previews):
            yield sse(f"{self.kind}.partial_image", {
                **self._image_fields("partial_image", quality, png_size(png)),
                "b64_json": await b64(png, self.options),
                "partial_image_index": index,
                "argus": {"request_id": self.handle.request_id, "image_index": image_index,
                          "step": update.step, "total_steps": update.total_steps},
            })

    async def completed(self, outcome: JobOutcome) -> AsyncIterator[str]:
        quality = self.quality_of(outcome.predicted_quality)
        size = f"{outcome.width}x{outcome.height}"
        for i, png in enumerate(outcome.images_png):
            yield sse(f"{self.kind}.completed", {
                **self._image_fields("completed", quality, size),
                "b64_json": await b64(png, self.options),
                "usage": usage(1, outcome.steps_run),
                "argus": {**self.argus_info(outcome, i), "image_index": i},
            })

    async def events(self) -> AsyncIterator[str]:
        """The whole stream; a disconnect (the generator closed early) cancels the job."""
        handle = self.handle
        request_id = handle.request_id
        try:
            if self.argus_events:
                yield sse("argus.accepted", {"type": "argus.accepted", "request_id": request_id,
                                             "level": handle.level})
            previews = 0
            while (update := await handle.progress.get()) is not None:
                if self.argus_events:
                    yield sse("argus.progress", {
                        "type": "argus.progress", "request_id": request_id,
                        "step": update.step, "total_steps": update.total_steps,
                    })
                if update.previews:
                    async for event in self.partials(update, previews):
                        yield event
                    previews += 1
            try:
                outcome = handle.outcome.result()
            except ServingError as err:
                yield sse("error", {"type": "error", **json.loads(self.error_of(err).body)})
                return
            async for event in self.completed(outcome):
                yield event
        finally:
            if not handle.outcome.done():  # the client went away mid-stream
                await self.runtime.cancel(request_id)
