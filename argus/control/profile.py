"""Profiles: what each level costs and what quality it gives, as one validated JSON schema.

A profile is measured (`argus profile` on real hardware) or built from published numbers
(`a100-sdxl`). The control plane plans from it, the simulator replays it, the predictor trains on
its per-prompt table. Quality is *relative*: the full level scores 1.0 for every prompt.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantProfile(_Strict):
    name: str
    load_time_s: float = Field(ge=0.0)
    """What a running worker's switch to this variant costs the planner (the warm load)."""
    memory_gb: float = Field(default=0.0, ge=0.0)
    cold_load_time_s: float | None = Field(default=None, ge=0.0)
    """A fresh worker process's first load (weight files evicted from the page cache where the OS
    allows): what a worker start or restart costs."""
    warm_load_time_s: float | None = Field(default=None, ge=0.0)
    """Best reload in a running process (a worker switching variants)."""


class LevelProfile(_Strict):
    name: str
    variant: str
    steps: int = Field(ge=1)
    cache_k: int = Field(default=0, ge=0)
    service_time_s: dict[int, float] = Field(min_length=1)
    """Batch size -> seconds to serve the whole batch on one worker."""
    mean_quality: float = Field(ge=0.0)
    """Mean relative quality over prompts (the full level is 1.0)."""
    quality_std: float = Field(default=0.0, ge=0.0)
    feature_cache: str = ""
    """Transformer feature cache (`LevelConfig.feature_cache`); no load cost, like steps."""
    computed_steps: dict[int, int] = Field(default_factory=dict)
    """Feature-cache levels: full transformer steps per generation -> prompts that ran that
    many (a dynamic cache skips a prompt-dependent number). `service_time_s` is costed at
    `COST_QUANTILE` of it (`argus.profiling`)."""

    @model_validator(mode="after")
    def _positive_times(self) -> LevelProfile:
        for b, t in self.service_time_s.items():
            if b < 1 or t <= 0:
                raise ValueError(f"service_time_s[{b}]={t}: batch >= 1 and time > 0 required")
        return self

    def service_time(self, batch: int) -> float:
        """Seconds for a batch, interpolated linearly between profiled sizes."""
        sizes = sorted(self.service_time_s)
        if batch in self.service_time_s:
            return self.service_time_s[batch]
        if batch <= sizes[0]:
            return self.service_time_s[sizes[0]] * batch / sizes[0]
        if batch >= sizes[-1]:
            return self.service_time_s[sizes[-1]] * batch / sizes[-1]
        hi = bisect.bisect_left(sizes, batch)
        b0, b1 = sizes[hi - 1], sizes[hi]
        t0, t1 = self.service_time_s[b0], self.service_time_s[b1]
        return t0 + (t1 - t0) * (batch - b0) / (b1 - b0)

    def throughput(self, batch: int) -> float:
        """Images per second of one worker running batches of `batch`."""
        return batch / self.service_time(batch)

    @property
    def max_batch(self) -> int:
        return max(self.service_time_s)


class PromptQuality(_Strict):
    """Measured quality of one prompt at every level."""

    prompt: str
    quality: dict[str, float]
    """Level name -> relative quality (score at the level / score at the full level)."""
    score: dict[str, float] | None = None
    """Level name -> absolute scorer value, when measured."""
    metrics: dict[str, dict[str, float]] | None = None
    """Level name -> metric name -> value, for multi-metric routing."""
    similarity: float | None = None
    """Top-1 similarity to earlier prompts when replayed in order (cache studies)."""


class Profile(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    hardware: str
    quality_source: Literal["measured", "published", "modelled"]
    full_level: str
    variants: list[VariantProfile] = Field(min_length=1)
    levels: list[LevelProfile] = Field(min_length=1)
    prompts: list[PromptQuality] = Field(default_factory=list)
    similarity_distribution: list[tuple[float, float]] | None = None
    """(similarity threshold, share of prompts whose top-1 cache similarity exceeds it)."""
    notes: str = ""

    @model_validator(mode="after")
    def _cross_check(self) -> Profile:
        variants = {v.name for v in self.variants}
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: duplicate names in {names}")
        for i, lv in enumerate(self.levels):
            if lv.variant not in variants:
                raise ValueError(f"levels.{i}.variant: unknown variant {lv.variant!r}")
        if self.full_level not in names:
            raise ValueError(f"full_level: {self.full_level!r} is not a level")
        for i, p in enumerate(self.prompts):
            unknown = set(p.quality) - set(names)
            if unknown:
                raise ValueError(f"prompts.{i}.quality: unknown levels {sorted(unknown)}")
        return self

    def level(self, name: str) -> LevelProfile:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"unknown level {name!r}")

    def variant(self, name: str) -> VariantProfile:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"unknown variant {name!r}")

    def levels_by_approximation(self) -> list[LevelProfile]:
        """Levels from least to most approximate (slowest to fastest at batch 1)."""
        return sorted(self.levels, key=lambda lv: (-lv.service_time(1), -lv.mean_quality))

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as err:
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5]
            )
            raise ValueError(f"invalid profile {path}: {fields}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=1) + "\n")
