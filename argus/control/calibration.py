"""How much slower (or faster) than its profile the cluster runs: the control plane's
calibration from measured batch times.

Every measured batch gives a ratio measured / profiled (clamped: a stalled or cancelled batch
must not swing the estimates). The plane keeps an exponentially weighted mean and variance of
it, bias-corrected (the first measurement replaces the prior of 1, as in Adam). Deadlines are
checked against `deadline_factor` = mean + one standard deviation: a promise made on the mean
breaks half of the time the machine is noisier than usual (a shared CPU, a neighbour's job).
Load is converted at the mean (`load_factor`). A simulated executor runs exactly the profile
and reports nothing: both stay 1.
"""

from __future__ import annotations

import math

WEIGHT = 0.2
"""EWMA weight of the newest batch (after the first few, which are averaged evenly)."""
RANGE = (0.5, 4.0)
"""One batch's measured / profiled ratio is clamped to this range."""


class Calibration:
    """Measured / profiled service time, as an EWMA mean and variance."""

    def __init__(self) -> None:
        self.mean = 1.0
        self.variance = 0.0
        self.observed = 0

    def observe(self, measured_s: float, profiled_s: float) -> None:
        if profiled_s <= 0 or measured_s <= 0:
            return
        ratio = round(min(max(measured_s / profiled_s, RANGE[0]), RANGE[1]), 9)
        self.observed += 1
        weight = max(WEIGHT, 1 / self.observed)
        delta = ratio - self.mean
        self.mean += weight * delta
        self.variance = (1 - weight) * (self.variance + weight * delta * delta)

    @property
    def deadline_factor(self) -> float:
        """Mean + one standard deviation: what deadline checks scale profiled times by."""
        return self.mean + math.sqrt(self.variance)

    @property
    def load_factor(self) -> float:
        """Load in the profile's time, rounded so float noise cannot flip a plan."""
        return round(self.mean, 3)
