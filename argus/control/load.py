"""Arrival-rate estimation: a sliding window, smoothed (up at once, down by an EWMA), plus burst
headroom.

`observe()` is O(1) per arrival (it bumps a per-second bucket); `forecast()` folds closed buckets
into the EWMA and returns the rate to plan the next period for.
"""

from __future__ import annotations

import math
from collections import deque

DEFAULT_DECAY = 0.15
"""`LoadEstimator.alpha` where variant loads are quick."""
FORECAST_MEMORY = 4.0
"""Variant load times over which a burst's planned rate decays (see `forecast_decay`)."""


def forecast_decay(period_s: float, load_time_s: float) -> float:
    """How fast the planned rate falls after a burst, per planning period: capacity that takes
    long to load cannot be brought back for the next burst, so it is let go over
    `FORECAST_MEMORY` variant loads (the default decay where loads are quick)."""
    return min(DEFAULT_DECAY, period_s / max(period_s, FORECAST_MEMORY * load_time_s))


class LoadEstimator:
    def __init__(
        self,
        window_s: float = 30.0,
        alpha: float = 0.15,
        headroom: float = 0.1,
        bucket_s: float = 1.0,
        burst_s: float | None = None,
    ) -> None:
        """`alpha`: weight of the newest rate when the load falls; `headroom`: extra share
        planned above the forecast (DiffServe plans demand x 1.2); `burst_s`: if set, at least
        the busiest `burst_s`-second stretch of the window (bursts shorter than the queueing
        slack are absorbed by queues; longer ones need capacity)."""
        self.window_s = window_s
        self.burst_s = burst_s
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

    def sustained_rate(self, now: float) -> float:
        """Arrivals per second over the closed buckets of the window, divided by the whole
        window even when less has elapsed: a rate that has not lasted a window yet counts only
        for the share it has lasted (a first burst is not a sustained load)."""
        bucket = int(now // self.bucket_s)
        if bucket != self._current:
            self._close(bucket)
        return self._in_window / self.window_s

    def recent(self, now: float, span_s: float) -> tuple[int, float]:
        """(arrivals, their rate per second) over the last `span_s` seconds, the open bucket
        included (a burst shows here before any bucket closes)."""
        bucket = int(now // self.bucket_s)
        if bucket != self._current:
            self._close(bucket)
        first = bucket - max(1, round(span_s / self.bucket_s)) + 1
        count = self._count
        for b, c in reversed(self._buckets):
            if b < first:
                break
            count += c
        elapsed = now - first * self.bucket_s
        return count, count / max(elapsed, self.bucket_s)

    def peak_rate(self) -> float:
        """The highest mean rate over `burst_s`-second stretches of the closed buckets."""
        if not self.burst_s or not self._buckets:
            return 0.0
        span = max(1, round(self.burst_s / self.bucket_s))
        first = self._buckets[0][0]
        counts = [0] * (self._buckets[-1][0] - first + 1)
        for bucket, count in self._buckets:
            counts[bucket - first] = count
        running = sum(counts[:span])
        best = running
        for i in range(span, len(counts)):
            running += counts[i] - counts[i - span]
            best = max(best, running)
        return best / (min(span, len(counts)) * self.bucket_s)

    def forecast(self, now: float) -> float:
        """Rate to plan for, plus headroom: the latest window rate (or the busiest burst stretch
        in it, when `burst_s` is set) when it is higher than the smoothed rate; when lower, the
        smoothed rate decays towards it by `alpha` per call (up fast, down slowly: a burst
        gets capacity at once, and the plan does not flap back between bursts)."""
        rate = max(self.window_rate(now), self.peak_rate())
        if self.ewma is None or rate >= self.ewma:
            self.ewma = rate
        else:
            self.ewma += self.alpha * (rate - self.ewma)
        return self.ewma * (1 + self.headroom)
