"""Arrival-rate estimation: a sliding window smoothed by an EWMA, plus burst headroom.

`observe()` is O(1) per arrival (it bumps a per-second bucket); `forecast()` folds closed buckets
into the EWMA and returns the rate to plan the next period for.
"""

from __future__ import annotations

import math
from collections import deque


class LoadEstimator:
    def __init__(
        self,
        window_s: float = 30.0,
        alpha: float = 0.3,
        headroom: float = 0.1,
        bucket_s: float = 1.0,
    ) -> None:
        """`alpha`: EWMA weight of the newest window rate; `headroom`: extra share planned above
        the forecast for bursts (DiffServe plans demand x 1.2)."""
        self.window_s = window_s
        self.alpha = alpha
        self.headroom = headroom
        self.bucket_s = bucket_s
        self._buckets: deque[tuple[int, int]] = deque()
        self._current = -1
        self._count = 0
        self._in_window = 0
        self.ewma: float | None = None

    def observe(self, now: float, count: int = 1) -> None:
        bucket = int(now // self.bucket_s)
        if bucket != self._current:
            self._close(bucket)
        self._count += count

    def _close(self, bucket: int) -> None:
        if self._current >= 0:
            self._buckets.append((self._current, self._count))
            self._in_window += self._count
        self._current, self._count = bucket, 0
        oldest = bucket - math.ceil(self.window_s / self.bucket_s)
        while self._buckets and self._buckets[0][0] < oldest:
            self._in_window -= self._buckets.popleft()[1]

    def window_rate(self, now: float) -> float:
        """Arrivals per second over the closed buckets of the window ending now."""
        bucket = int(now // self.bucket_s)
        if bucket != self._current:
            self._close(bucket)
        if not self._buckets:
            return self._count / self.bucket_s
        span = (bucket - self._buckets[0][0]) * self.bucket_s
        return self._in_window / max(span, self.bucket_s)

    def forecast(self, now: float) -> float:
        """Rate to plan for: EWMA of window rates, not below the latest window, plus headroom."""
        rate = self.window_rate(now)
        self.ewma = rate if self.ewma is None else self.alpha * rate + (1 - self.alpha) * self.ewma
        return max(self.ewma, rate) * (1 + self.headroom)
