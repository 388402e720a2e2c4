"""Factories for engine tests (tiny random-weight variants, no hub)."""

from __future__ import annotations

from argus.config import VariantConfig


def tiny_variant(arch: str = "pixel-small", **overrides: object) -> VariantConfig:
    fields: dict = {
        "name": arch,
        "source": f"random:{arch}",
        "default_steps": 8,
        "resolution": 32,
        "guidance_scale": 3.0,
    }
    fields.update(overrides)
    return VariantConfig(**fields)
