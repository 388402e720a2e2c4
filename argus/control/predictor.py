"""Quality predictors: prompt (text, cache similarity) -> predicted relative quality per level.

Three implementations share one interface (`QualityPredictor.predict`):
- `ProfilePredictor`: the profile's per-level means, with cache levels discounted when the
  request's cache similarity is below the band that level's skip K needs (NIRVANA's bands).
- `TablePredictor`: exact per-prompt values from a profile's table (an oracle, for offline studies
  and the oracle baseline).
- `LinearPredictor` (`argus.control.training`): ridge regression on prompt-text features and
  similarity, trained by `argus train-predictor`.

Returned dicts may be shared between requests (they are cached per input); never mutate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from argus.control.levels import LevelTable
from argus.types import Request

SIMILARITY_PENALTY = 0.5
"""Relative quality lost per unit of similarity below a cache level's band threshold (modelled:
the published numbers give quality per K only for prompts inside the band)."""

DEFAULT_BANDS: tuple[tuple[float, int], ...] = (
    (0.95, 25), (0.90, 20), (0.85, 15), (0.75, 10), (0.65, 5),
)
DEFAULT_BAND_STEPS = 50


class QualityPredictor(Protocol):
    def predict(self, request: Request) -> dict[str, float]:
        """Predicted relative quality (full level = 1.0) for every level name."""
        ...


@dataclass
class BulkPrediction:
    """Predictions of many requests, deduplicated: request i's is `distinct[index[i]]`, and row j
    of `values` holds `distinct[j]` over `levels`."""

    distinct: list[dict[str, float]]
    values: np.ndarray
    index: list[int]
    levels: list[str]


def predict_all(predictor: QualityPredictor, requests: Sequence[Request]) -> BulkPrediction | None:
    """Set `predicted_quality` on every request, in bulk where the predictor can (a
    `predict_bulk(requests)` method, whose result is returned; else None); `ControlPlane.admit`
    keeps a prediction already set. The simulator knows its whole trace up front, so it predicts
    once instead of per arrival."""
    bulk_predict = getattr(predictor, "predict_bulk", None)
    if bulk_predict is None:
        for request in requests:
            request.predicted_quality = predictor.predict(request)
        return None
    bulk = bulk_predict(requests)
    distinct = bulk.distinct
    for request, j in zip(requests, bulk.index, strict=True):
        request.predicted_quality = distinct[j]
    return bulk


def band_threshold(
    cache_k: int,
    steps: int,
    bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
    band_steps: int = DEFAULT_BAND_STEPS,
) -> float:
    """Lowest cache similarity at which skipping `cache_k` of `steps` keeps the level's quality."""
    if cache_k <= 0:
        return 0.0
    needed = cache_k * band_steps / steps
    fitting = [s for s, k in bands if k >= needed - 1e-9]
    return min(fitting) if fitting else 1.0


def cache_level_quality(mean_quality: float, threshold: float, similarity: float | None) -> float:
    """Modelled quality at a cache level: the level mean inside its band, linearly less below it.
    An unknown similarity counts as a miss (0)."""
    shortfall = max(0.0, threshold - (similarity or 0.0))
    return max(0.0, mean_quality - SIMILARITY_PENALTY * shortfall)


def optimal_level(table: LevelTable, quality: dict[str, float], floor: float) -> int:
    """The most approximate level whose predicted quality meets the floor (else the full level)."""
    for i in reversed(table.rank):
        if quality[table.names[i]] >= floor:
            return i
    return table.full


def optimal_levels(table: LevelTable, quality: np.ndarray, floor: float) -> np.ndarray:
    """`optimal_level` for every row of a (predictions, level positions) matrix."""
    order = np.asarray(table.rank[::-1])  # most approximate first
    meets = quality[:, order] >= floor
    return np.where(meets.any(axis=1), order[meets.argmax(axis=1)], table.full)


SIMILARITY_BUCKETS = 200
"""Predictions are cached per cache similarity rounded to 1/200."""


def similarity_bucket(similarity: float | None) -> int:
    """The similarity's cache bucket (`similarity x 200`, rounded, within 0..200); -1 when
    unknown (None, NaN or infinite)."""
    if similarity is None:
        return -1
    try:
        bucket = round(similarity * SIMILARITY_BUCKETS)
    except (ValueError, OverflowError):  # NaN, infinite (try: free on the hot path)
        return -1
    return 0 if bucket < 0 else SIMILARITY_BUCKETS if bucket > SIMILARITY_BUCKETS else bucket


class ProfilePredictor:
    """Per-level profile means; cache levels depend on the request's cache similarity."""

    def __init__(
        self,
        table: LevelTable,
        bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
        band_steps: int = DEFAULT_BAND_STEPS,
    ) -> None:
        self.table = table
        self.thresholds = tuple(
            band_threshold(k, n, bands, band_steps)
            for k, n in zip(table.cache_k, table.steps, strict=True)
        )
        self._cache: dict[int, dict[str, float]] = {}

    def predict(self, request: Request) -> dict[str, float]:
        key = similarity_bucket(request.cache_similarity)
        hit = self._cache.get(key)
        if hit is None:
            sim = None if key < 0 else key / SIMILARITY_BUCKETS
            hit = {
                name: cache_level_quality(q, thr, sim) if k > 0 else q
                for name, q, thr, k in zip(
                    self.table.names, self.table.mean_quality, self.thresholds,
                    self.table.cache_k, strict=True,
                )
            }
            self._cache[key] = hit
        return hit


class TablePredictor:
    """Exact values from the profile's per-prompt table, looked up by `request.prompt_id`
    (falls back to `fallback` for prompts outside the table). Rows of a modelled table without
    similarities hold the in-band value of cache levels (`argus.sim.quality`); those are
    discounted by the request's cache similarity, as the simulator does."""

    def __init__(
        self,
        table: LevelTable,
        fallback: QualityPredictor,
        bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
        band_steps: int = DEFAULT_BAND_STEPS,
    ) -> None:
        self.stable_outputs = isinstance(fallback, ProfilePredictor) or getattr(
            fallback, "stable_outputs", False
        )
        """The same prompt gives the same dict object (the plane caches its optimal level by
        identity)."""
        self.rows = [dict(p.quality) for p in table.profile.prompts]
        for row in self.rows:
            for name, q in zip(table.names, table.mean_quality, strict=True):
                row.setdefault(name, q)
        self.fallback = fallback
        profile = table.profile
        self.in_band = profile.quality_source != "measured" and all(
            p.similarity is None for p in profile.prompts
        )
        self.cache_levels = [
            (name, band_threshold(k, n, bands, band_steps))
            for name, k, n in zip(table.names, table.cache_k, table.steps, strict=True) if k > 0
        ]
        self._discounted: dict[tuple[int, int], dict[str, float]] = {}

    def predict(self, request: Request) -> dict[str, float]:
        pid = request.prompt_id
        if pid is None or not 0 <= pid < len(self.rows):
            return self.fallback.predict(request)
        if not self.in_band or not self.cache_levels:
            return self.rows[pid]
        key = (pid, similarity_bucket(request.cache_similarity))
        hit = self._discounted.get(key)
        if hit is None:
            sim = None if key[1] < 0 else key[1] / SIMILARITY_BUCKETS
            hit = dict(self.rows[pid])
            for name, threshold in self.cache_levels:
                hit[name] = cache_level_quality(hit[name], threshold, sim)
            self._discounted[key] = hit
        return hit


class OffsetPredictor:
    """Another predictor's output plus per-level offsets (`argus.audit` refits them online from
    audited images). Stable like its inner predictor: the same inner dict gives the same
    adjusted dict until the offsets change, so the plane's per-prediction caches stay valid."""

    def __init__(self, inner: QualityPredictor, offsets: dict[str, float] | None = None) -> None:
        self.inner = inner
        self.offsets: dict[str, float] = {}
        self._adjusted: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
        self.set_offsets(offsets or {})

    @property
    def stable_outputs(self) -> bool:
        return isinstance(self.inner, ProfilePredictor) or getattr(
            self.inner, "stable_outputs", False
        )

    def set_offsets(self, offsets: dict[str, float]) -> None:
        """Replace the offsets (zero ones dropped); later predictions are new dict objects."""
        self.offsets = {k: float(v) for k, v in offsets.items() if v}
        self._adjusted = {}

    def predict(self, request: Request) -> dict[str, float]:
        base = self.inner.predict(request)
        if not self.offsets:
            return base
        hit = self._adjusted.get(id(base))
        if hit is not None and hit[0] is base:
            return hit[1]
        adjusted = {k: max(0.0, q + self.offsets.get(k, 0.0)) for k, q in base.items()}
        if len(self._adjusted) >= 65536:
            self._adjusted.clear()
        self._adjusted[id(base)] = (base, adjusted)  # keeps `base` alive: ids are not reused
        return adjusted
