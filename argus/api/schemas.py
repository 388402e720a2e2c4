"""HTTP request body of POST /v1/images/generations and its validation into a
`GenerationRequest`.

Types are checked by pydantic (a wrong type is a 400 naming the field); ranges and names that
depend on the deployment (prompt length, n, size, model) are checked against the config here.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from argus.api.formats import OutputFormat, OutputOptions, transparent_error
from argus.config import ArgusConfig
from argus.engine.variants import size_multiple
from argus.runtime.base import GenerationRequest

MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
MAX_SEED = 2**32 - 1
MEDIUM_FLOOR = 0.8
LOW_FLOOR = 0.6
"""`quality: medium|low` lower the predicted-quality floor to at most these."""
SIZE_PATTERN = re.compile(r"([1-9][0-9]{0,5})[xX]([1-9][0-9]{0,5})")
"""WIDTHxHEIGHT in ASCII digits without leading zeros (`int()` alone would take `３２`, ` 32`,
`3_2` and `032`)."""
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
FORBIDDEN_CHARS = re.compile(f"[{CONTROL_CHARS}\\ud800-\\udfff]")
"""Control characters (tab, newline and carriage return aside) and lone surrogates, which
cannot be encoded as UTF-8 and fail the tokenizer (and with it the worker's whole batch)."""
TEXT_FIELDS = ("prompt", "negative_prompt", "user", "model", "safety_identifier")
HINT_FIELDS = ("moderation", "style", "safety_identifier", "complexity")
"""Optional OpenAI hints with no meaning here: validated, then ignored."""
MAX_PARTIAL_IMAGES = 3


class ImageGenerationBody(BaseModel):
    """OpenAI Images API fields plus diffusers-named extensions. OpenAI's optional hints
    (`HINT_FIELDS`: moderation, style, safety_identifier, complexity) are accepted and ignored;
    any other field is a 400 naming it. Integer fields take integers only (`2`, not `2.0`)."""

    model_config = ConfigDict(extra="allow")

    prompt: str
    model: str | None = None
    n: StrictInt | None = 1
    size: str | None = None
    response_format: Literal["b64_json", "url"] | None = "b64_json"
    quality: Literal[
        "auto", "standard", "hd", "high", "medium", "low", "xhigh", "max"
    ] | None = "auto"
    user: str | None = Field(default=None, max_length=256)
    negative_prompt: str | None = None
    num_inference_steps: StrictInt | None = None
    guidance_scale: StrictFloat | None = None
    seed: StrictInt | None = None
    stream: StrictBool | None = False
    partial_images: StrictInt | None = None
    """Streaming only: x0 previews per image (0-3)."""
    output_format: OutputFormat | None = "png"
    output_compression: StrictInt | None = None
    background: Literal["transparent", "opaque", "auto"] | None = "auto"
    argus_events: StrictBool | None = False
    """Streaming only: also send Argus' `argus.accepted` / `argus.progress` events (which the
    official client would yield as untyped events, hence off by default)."""
    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None
    safety_identifier: str | None = Field(default=None, max_length=256)
    complexity: Literal["low", "medium", "high"] | None = None

    def output_options(self) -> OutputOptions:
        background = "opaque" if self.background == "opaque" else "auto"
        return OutputOptions(self.output_format or "png", self.output_compression, background,
                             self.quality or "auto")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body (OpenAI's shape)."""

    error: ErrorDetail


class InvalidField(ValueError):
    """Bad input: the API answers 400 with `param` = the field."""

    def __init__(self, param: str, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def _check_range(param: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high or (isinstance(value, float) and math.isnan(value)):
        raise InvalidField(param, f"{param} must be between {low} and {high}, got {value}")


def _parse_size(size: str | None, config: ArgusConfig, variants: list[str]) -> tuple[int, int]:
    """(width, height), or (0, 0) for `auto` = the serving variant's native resolution."""
    if size is None or size == "auto":
        return 0, 0
    match = SIZE_PATTERN.fullmatch(size)
    if match is None:
        raise InvalidField("size", f"size must be 'WIDTHxHEIGHT' or 'auto', got {size!r}")
    width, height = int(match[1]), int(match[2])
    limit = config.server.max_size
    multiple = math.lcm(*(size_multiple(config.variant(v)) for v in variants))
    for side in (width, height):
        if not multiple <= side <= limit or side % multiple:
            raise InvalidField(
                "size",
                f"size {size}: each side must be a multiple of {multiple} between "
                f"{multiple} and {limit}",
            )
    # A side's cost grows with its square: cap it near what the model was made (and profiled)
    # for, so one request cannot hold a worker for minutes.
    native = min(config.variant(v).resolution for v in variants)
    factor = config.server.max_size_factor
    cap = int(native * factor)
    if max(width, height) > cap:
        which = variants[0] if len(variants) == 1 else "the variants that may serve it"
        raise InvalidField(
            "size",
            f"size {size} is too large: each side may be at most {cap} px, {factor:g} x the "
            f"{native} px native resolution of {which} (server.max_size_factor)",
        )
    return width, height


def _resolve_model(
    model: str | None, config: ArgusConfig
) -> tuple[str | None, int | None, str | None]:
    """(pinned variant, pinned steps, pinned level) for `model`: auto, a variant name or a
    level name (which also pins that level: its feature cache, say)."""
    if model is None or model == "auto":
        return None, None, None
    if model in {v.name for v in config.variants}:
        return model, None, None
    if model in {lv.name for lv in config.levels}:
        level = config.level(model)
        return level.variant, level.steps, level.name
    names = ["auto"] + [v.name for v in config.variants] + [lv.name for lv in config.levels]
    known = ", ".join(names)
    raise InvalidField("model", f"unknown model {model!r}; known: {known}", "model_not_found")


def _quality(quality: str | None, config: ArgusConfig) -> tuple[bool, float | None]:
    """(no approximation, quality floor)."""
    floor = config.control.quality_floor
    if quality in ("high", "hd", "xhigh", "max"):
        return True, None
    if quality == "medium":
        return False, min(floor, MEDIUM_FLOOR)
    if quality == "low":
        return False, min(floor, LOW_FLOOR)
    return False, None


def _check_text(param: str, text: str | None) -> None:
    bad = FORBIDDEN_CHARS.search(text or "")
    if bad is not None:
        char = ord(bad.group())
        what = "a lone surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
        raise InvalidField(param, f"{param} contains {what} (U+{char:04X}) at index {bad.start()}")


def _check_output(body: ImageGenerationBody) -> int:
    """Unknown fields, output format fields; the x0 previews to stream per image."""
    for name in body.model_extra or {}:
        raise InvalidField(name, f"unknown field {name!r}", "unknown_parameter")
    if body.output_compression is not None:
        _check_range("output_compression", body.output_compression, 0, 100)
    if body.background == "transparent":
        raise InvalidField("background", transparent_error(body.output_format or "png"))
    if body.partial_images is None:
        return 0
    _check_range("partial_images", body.partial_images, 0, MAX_PARTIAL_IMAGES)
    return body.partial_images if body.stream else 0


def to_generation_request(body: ImageGenerationBody, config: ArgusConfig) -> GenerationRequest:
    server = config.server
    partial_images = _check_output(body)
    for field in TEXT_FIELDS:
        _check_text(field, getattr(body, field))
    prompt = body.prompt
    if not prompt.strip():
        raise InvalidField("prompt", "prompt must not be empty")
    if len(prompt) > server.max_prompt_chars:
        raise InvalidField(
            "prompt", f"prompt is {len(prompt)} characters; the limit is {server.max_prompt_chars}"
        )
    negative = body.negative_prompt or ""
    if len(negative) > server.max_prompt_chars:
        raise InvalidField("negative_prompt", "negative_prompt is too long")
    n = 1 if body.n is None else body.n
    _check_range("n", n, 1, server.max_n)
    variant, steps, level = _resolve_model(body.model, config)
    no_approximation, floor = _quality(body.quality, config)
    requested = None
    if body.num_inference_steps is not None:
        # Any count is served: exactly with `quality: high` (or a pinned level), else as the
        # reference the control plane may approximate against (`argus.control.steps`).
        _check_range("num_inference_steps", body.num_inference_steps, 1, MAX_STEPS)
        if no_approximation or steps is not None:
            steps = body.num_inference_steps
        else:
            requested = body.num_inference_steps
    if body.guidance_scale is not None:
        _check_range("guidance_scale", body.guidance_scale, 0.0, MAX_GUIDANCE)
    if body.seed is not None:
        _check_range("seed", body.seed, 0, MAX_SEED)
    width, height = _parse_size(body.size, config, [variant] if variant else [
        v.name for v in config.variants
    ])
    return GenerationRequest(
        prompt=prompt,
        n=n,
        negative_prompt=negative,
        seed=body.seed,
        width=width or None,
        height=height or None,
        guidance_scale=body.guidance_scale,
        pinned_variant=variant,
        pinned_steps=steps,
        pinned_level=level,
        requested_steps=requested,
        no_approximation=no_approximation,
        quality_floor=floor,
        tenant=body.user or "default",
        partial_images=partial_images,
    )


def _sides(config: ArgusConfig) -> list[int]:
    """The image sides `size` takes whatever the model: multiples of every variant's size
    multiple, up to `server.max_size` and the `max_size_factor` cap of the smallest native
    resolution (a pinned variant may take more)."""
    variants = config.variants
    multiple = math.lcm(*(size_multiple(v) for v in variants))
    cap = int(min(v.resolution for v in variants) * config.server.max_size_factor)
    return list(range(multiple, min(config.server.max_size, cap) + 1, multiple))


def body_schema_limits(config: ArgusConfig) -> dict[str, dict[str, object]]:
    """JSON Schema keywords per body field for what `to_generation_request` checks against this
    deployment (the OpenAPI document's request body, so that a body it describes is served and
    one it does not is a 400): ranges, model names, text without control characters, sizes any
    model takes. Lone surrogates (refused too) have no portable pattern; `background:
    transparent` is left out of the enum since every Argus model draws opaque images."""
    server = config.server
    sides = "|".join(str(side) for side in _sides(config))
    size = f"^(auto|({sides})[xX]({sides}))$" if sides else "^auto$"
    text = {"pattern": f"^[^{CONTROL_CHARS}]*$"}
    models = ["auto", *(v.name for v in config.variants), *(lv.name for lv in config.levels)]
    return {
        "prompt": {"minLength": 1, "maxLength": server.max_prompt_chars,
                   "pattern": f"^[^{CONTROL_CHARS}]*[^{CONTROL_CHARS}\\s][^{CONTROL_CHARS}]*$"},
        "negative_prompt": {"maxLength": server.max_prompt_chars, **text},
        "user": text,
        "safety_identifier": text,
        "model": {"enum": models},
        "n": {"minimum": 1, "maximum": server.max_n},
        "size": {"pattern": size},
        "num_inference_steps": {"minimum": 1, "maximum": MAX_STEPS},
        "guidance_scale": {"minimum": 0, "maximum": MAX_GUIDANCE},
        "seed": {"minimum": 0, "maximum": MAX_SEED},
        "partial_images": {"minimum": 0, "maximum": MAX_PARTIAL_IMAGES},
        "output_compression": {"minimum": 0, "maximum": 100},
        "background": {"enum": ["opaque", "auto"]},
    }
