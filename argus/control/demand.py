"""What the planner is told each period: class counts and shares, and each class's mean predicted
quality per level (an EWMA over periods of a bounded sample of its requests' predictions)."""

from __future__ import annotations

import operator

import numpy as np

from argus.control.levels import LevelTable
from argus.control.policy import DEMAND_SMOOTHING, Demand

__all__ = ["DemandTracker", "QUALITY_SAMPLES"]

QUALITY_SAMPLES = 64
"""Distinct predictions kept per class and period for the planner's quality matrix."""


class DemandTracker:
    def __init__(self, table: LevelTable) -> None:
        num = len(table)
        self.names = table.names
        self._level_values = operator.itemgetter(*table.names)
        self.class_counts = [0] * num
        """Images per class (optimal level) this period."""
        self.class_samples: list[dict[int, list]] = [{} for _ in range(num)]
        """Per class: id(prediction) -> [prediction, count], at most `QUALITY_SAMPLES`."""
        self.class_share = np.zeros(num)
        self.share_samples = 0.0
        self.class_quality = np.tile(np.asarray(table.mean_quality), (num, 1))

    def count(self, cls: int, quality: dict[str, float], images: int = 1) -> None:
        """One request of class `cls` with this prediction, weighted by its images."""
        self.class_counts[cls] += images
        samples = self.class_samples[cls]
        key = id(quality)
        seen = samples.get(key)
        if seen is not None:
            seen[1] += images
        elif len(samples) < QUALITY_SAMPLES:
            samples[key] = [quality, images]

    def demand(self, now: float, forecast: float, workers: np.ndarray, queued: list[int]) \
            -> Demand:
        """Close the period: fold its counts and samples into the EWMAs."""
        counts = np.asarray(self.class_counts, float)
        total = counts.sum()
        if total > 0:
            share = counts / total
            if self.class_share.sum() > 0:
                share = DEMAND_SMOOTHING * share + (1 - DEMAND_SMOOTHING) * self.class_share
                # Variance of the EWMA of two independent estimates -> its effective size.
                self.share_samples = 1 / (DEMAND_SMOOTHING**2 / total
                                          + (1 - DEMAND_SMOOTHING) ** 2 / self.share_samples)
            else:
                self.share_samples = total
            self.class_share = share / share.sum()
        self._update_class_quality()
        self.class_counts = [0] * len(self.names)
        return Demand(
            time_s=now,
            forecast_rps=forecast,
            class_share=self.class_share.copy(),
            class_quality=self.class_quality.copy(),
            workers=workers.copy(),
            queued=np.asarray(queued),
            share_samples=self.share_samples,
        )

    def _update_class_quality(self) -> None:
        """EWMA of each class's mean sampled prediction; one matrix for all classes' samples."""
        sampled = [(cls, list(samples.values()))
                   for cls, samples in enumerate(self.class_samples) if samples]
        if not sampled:
            return
        entries = [entry for _, class_entries in sampled for entry in class_entries]
        counts = np.asarray([n for _, n in entries], float)
        weighted = self.matrix([q for q, _ in entries]) * counts[:, None]
        start = 0
        for cls, class_entries in sampled:
            end = start + len(class_entries)
            mean = weighted[start:end].sum(axis=0) / counts[start:end].sum()  # rows in order
            self.class_quality[cls] = (
                DEMAND_SMOOTHING * mean + (1 - DEMAND_SMOOTHING) * self.class_quality[cls]
            )
            self.class_samples[cls].clear()
            start = end

    def matrix(self, predictions: list[dict[str, float]]) -> np.ndarray:
        """Predictions as rows over level positions (a level a prediction lacks counts 0)."""
        names = self.names
        try:
            rows = list(map(self._level_values, predictions))
        except KeyError:
            rows = [[q.get(name, 0.0) for name in names] for q in predictions]
        return np.array(rows, float).reshape(len(predictions), len(names))
