"""The level table: a profile's levels flattened into arrays the hot paths index by number.

Every control-plane component (predictor, planner, aligner, dispatcher, policies) and the simulator
refer to a level by its position in `LevelTable.names`. Positions follow the profile's order;
`rank` orders levels from least to most approximate (slowest to fastest per image).
"""

from __future__ import annotations

from dataclasses import dataclass

from argus.config import ArgusConfig
from argus.control.profile import LevelProfile, Profile

UTILISATION_CAP = 0.85
"""Planned load per worker as a share of its throughput: queueing headroom for the SLO."""


def default_slo_s(config: ArgusConfig, profile: Profile) -> float:
    """The one SLO definition: the configured deadline, else a multiple of the full level's
    batch-1 service time."""
    if config.server.slo_s > 0:
        return config.server.slo_s
    return config.server.slo_multiplier * profile.level(profile.full_level).service_time(1)


def planning_batch(level: LevelProfile, slo_s: float) -> int:
    """Largest profiled batch whose service time fits in half the SLO (the other half is queueing);
    at least 1."""
    fitting = [b for b in sorted(level.service_time_s) if level.service_time(b) <= slo_s / 2]
    return fitting[-1] if fitting else 1


@dataclass(frozen=True)
class LevelTable:
    profile: Profile
    slo_s: float
    names: tuple[str, ...]
    index: dict[str, int]
    variant_names: tuple[str, ...]
    variant: tuple[int, ...]
    """Variant position of each level."""
    steps: tuple[int, ...]
    cache_k: tuple[int, ...]
    feature_cache: tuple[str, ...]
    """Per level: its transformer feature cache ("" none); such a level is not a step count."""
    batch: tuple[int, ...]
    """Planning batch size per level (see `planning_batch`)."""
    batch_time_s: tuple[float, ...]
    """Service time of a planning-size batch."""
    image_time_s: tuple[float, ...]
    """Seconds of worker time per image at the planning batch size."""
    throughput: tuple[float, ...]
    """Images per second of one worker at the planning batch size."""
    service_s: tuple[tuple[float, ...], ...]
    """service_s[l][b - 1] = seconds for a batch of b at level l, b up to the profiled maximum."""
    load_time_s: tuple[float, ...]
    """Per variant: seconds a worker is idle while loading it."""
    mean_quality: tuple[float, ...]
    rank: tuple[int, ...]
    """Level positions from least to most approximate."""
    full: int

    @classmethod
    def build(cls, profile: Profile, slo_s: float) -> LevelTable:
        levels = profile.levels
        variant_names = tuple(v.name for v in profile.variants)
        vindex = {name: i for i, name in enumerate(variant_names)}
        batch = tuple(planning_batch(lv, slo_s) for lv in levels)
        batch_time = tuple(lv.service_time(b) for lv, b in zip(levels, batch, strict=True))
        order = profile.levels_by_approximation()
        names = tuple(lv.name for lv in levels)
        return cls(
            profile=profile,
            slo_s=slo_s,
            names=names,
            index={name: i for i, name in enumerate(names)},
            variant_names=variant_names,
            variant=tuple(vindex[lv.variant] for lv in levels),
            steps=tuple(lv.steps for lv in levels),
            cache_k=tuple(lv.cache_k for lv in levels),
            feature_cache=tuple(lv.feature_cache for lv in levels),
            batch=batch,
            batch_time_s=batch_time,
            image_time_s=tuple(t / b for t, b in zip(batch_time, batch, strict=True)),
            throughput=tuple(b / t for t, b in zip(batch_time, batch, strict=True)),
            service_s=tuple(
                tuple(lv.service_time(b) for b in range(1, lv.max_batch + 1)) for lv in levels
            ),
            load_time_s=tuple(v.load_time_s for v in profile.variants),
            mean_quality=tuple(lv.mean_quality for lv in levels),
            rank=tuple(names.index(lv.name) for lv in order),
            full=names.index(profile.full_level),
        )

    def __len__(self) -> int:
        return len(self.names)

    def levels_of_variant(self, variant: int) -> list[int]:
        return [i for i, v in enumerate(self.variant) if v == variant]
