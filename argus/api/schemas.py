"""HTTP request body of POST /v1/images/generations and its validation into a
`GenerationRequest`.

Types are checked by pydantic (a wrong type is a 400 naming the field); ranges and names that
depend on the deployment (prompt length, n, size, model) are checked against the config here.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from argus.config import ArgusConfig
from argus.engine.variants import size_multiple
from argus.runtime.base import GenerationRequest

MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
MAX_SEED = 2**32 - 1
MEDIUM_FLOOR = 0.8
LOW_FLOOR = 0.6
"""`quality: medium|low` lower the predicted-quality floor to at most these."""


class ImageGenerationBody(BaseModel):
    """OpenAI Images API fields plus diffusers-named extensions; other OpenAI fields (style,
    background, output_format, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: str
    model: str | None = None
    n: int | None = 1
    size: str | None = None
    response_format: Literal["b64_json", "url"] | None = "b64_json"
    quality: Literal["auto", "standard", "hd", "high", "medium", "low"] | None = "auto"
    user: str | None = Field(default=None, max_length=256)
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    stream: bool | None = False


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
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        raise InvalidField("size", f"size must be 'WIDTHxHEIGHT' or 'auto', got {size!r}") from None
    limit = config.server.max_size
    multiple = math.lcm(*(size_multiple(config.variant(v)) for v in variants))
    for side in (width, height):
        if not multiple <= side <= limit or side % multiple:
            raise InvalidField(
                "size",
                f"size {size}: each side must be a multiple of {multiple} between "
                f"{multiple} and {limit}",
            )
    return width, height


def _resolve_model(model: str | None, config: ArgusConfig) -> tuple[str | None, int | None]:
    """(pinned variant, pinned steps) for `model`: auto, a variant name or a level name."""
    if model is None or model == "auto":
        return None, None
    if model in {v.name for v in config.variants}:
        return model, None
    if model in {lv.name for lv in config.levels}:
        level = config.level(model)
        return level.variant, level.steps
    names = ["auto"] + [v.name for v in config.variants] + [lv.name for lv in config.levels]
    known = ", ".join(names)
    raise InvalidField("model", f"unknown model {model!r}; known: {known}", "model_not_found")


def _check_pinned_steps(steps: int, variant: str | None, config: ArgusConfig) -> None:
    """Pinned steps are served exactly, so some level must run them without approximation."""
    allowed = sorted({
        lv.steps
        for lv in config.levels
        if lv.cache_k == 0 and (variant is None or lv.variant == variant)
    })
    if steps not in allowed:
        raise InvalidField(
            "num_inference_steps",
            f"num_inference_steps={steps} is not served"
            + (f" by {variant}" if variant else "")
            + f"; choose one of {allowed}",
            "unsupported_value",
        )


def _quality(quality: str | None, config: ArgusConfig) -> tuple[bool, float | None]:
    """(no approximation, quality floor)."""
    floor = config.control.quality_floor
    if quality in ("high", "hd"):
        return True, None
    if quality == "medium":
        return False, min(floor, MEDIUM_FLOOR)
    if quality == "low":
        return False, min(floor, LOW_FLOOR)
    return False, None


def to_generation_request(body: ImageGenerationBody, config: ArgusConfig) -> GenerationRequest:
    server = config.server
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
    variant, steps = _resolve_model(body.model, config)
    if body.num_inference_steps is not None:
        _check_range("num_inference_steps", body.num_inference_steps, 1, MAX_STEPS)
        steps = body.num_inference_steps
        _check_pinned_steps(steps, variant, config)
    if body.guidance_scale is not None:
        _check_range("guidance_scale", body.guidance_scale, 0.0, MAX_GUIDANCE)
    if body.seed is not None:
        _check_range("seed", body.seed, 0, MAX_SEED)
    width, height = _parse_size(body.size, config, [variant] if variant else [
        v.name for v in config.variants
    ])
    no_approximation, floor = _quality(body.quality, config)
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
        no_approximation=no_approximation,
        quality_floor=floor,
        tenant=body.user or "default",
    )
