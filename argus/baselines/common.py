"""Helpers the baselines share: fixed plans, restricted late-request fixes, sub-tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from argus.control.levels import LevelTable
from argus.control.policy import Plan
from argus.control.profile import Profile
from argus.types import Request

if TYPE_CHECKING:
    from argus.control.plane import ControlPlane


def all_workers_at(level: int, table: LevelTable, num_workers: int, now: float) -> Plan:
    """A plan that puts the whole cluster on one level and routes nothing by matrix."""
    workers = np.zeros(len(table), int)
    workers[level] = num_workers
    return Plan(time_s=now, workers=workers, routing=None)


def fastest_level(table: LevelTable) -> int:
    """Highest throughput per worker at the planning batch; ties go to the better quality."""
    return max(range(len(table)), key=lambda i: (table.throughput[i], table.mean_quality[i]))


def best_timely_level(
    plane: ControlPlane, request: Request, now: float, exclude: int,
    candidates: Sequence[int], quality: Sequence[float],
) -> int | None:
    """Among `candidates` (not `exclude`) whose `quality` meets the request's floor minus the
    redirect tolerance, the best one that still finishes before the deadline; None if none does.
    Baselines pass their own quality belief (population means for input-agnostic policies)."""
    floor = request.quality_floor if request.quality_floor is not None else plane.floor
    best, best_q = None, -1.0
    for j in candidates:
        q = quality[j]
        if j == exclude or q < floor - plane.tolerance or q <= best_q:
            continue
        if plane.finish_estimate(j, now, request.n) <= request.deadline_s:
            best, best_q = j, q
    return best


def sub_table(table: LevelTable, levels: Sequence[int]) -> LevelTable:
    """A level table of only `levels` (positions in `table`), in their original order; its
    level i is `levels[i]` in the full table. The full level must be among them."""
    profile = table.profile
    keep = [profile.levels[i] for i in levels]
    variants = {lv.variant for lv in keep}
    sub = Profile(
        name=f"{profile.name}[subset]", hardware=profile.hardware,
        quality_source=profile.quality_source, full_level=profile.full_level,
        variants=[v for v in profile.variants if v.name in variants], levels=keep,
        similarity_distribution=profile.similarity_distribution,
    )
    return LevelTable.build(sub, table.slo_s)


def population_quality(class_share: np.ndarray, class_quality: np.ndarray,
                       fallback: Sequence[float]) -> np.ndarray:
    """Mean predicted quality per level over all prompts (what an input-agnostic system profiles
    offline); the profile means before any demand was seen."""
    if class_share.sum() <= 0:
        return np.asarray(fallback, float)
    return class_share @ class_quality
