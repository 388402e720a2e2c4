"""DiffServe (MLSys'25): a light -> heavy cascade with a per-period deferral threshold.

Every request first runs the light level. A discriminator scores the light image; images scoring
below the threshold are re-run on the heavy (full) level through the plane's `on_complete` hook,
keeping their deadline. Each planning period the policy redoes DiffServe's allocation: enough
light workers for all demand, the rest heavy, and the highest threshold whose deferred share the
heavy workers can absorb (the share comes from the empirical distribution of recent
confidences, DiffServe's profiled f(t)). A deferral that can no longer meet the deadline is not
made (the light image is returned), and, as in DiffServe's workers, a queued request is dropped
once it cannot finish within 1.5x the SLO.

The light level is the fastest unapproximated level of the full model's variant (SDXL at fewer
steps in `a100-sdxl`, the analogue of DiffServe's SDXL-Lightning -> SDXL cascade): DiffServe
preloads both models on every worker, so a light/heavy role change costs no load here either.

The discriminator is modelled: its confidence is the light image's true relative quality (the
simulator's `plane.oracle`) plus Gaussian noise of `DISCRIMINATOR_NOISE`; in the live server,
without an oracle, the request's predicted quality at the light level stands in.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from argus.control.levels import UTILISATION_CAP
from argus.control.policy import Demand, Plan, Policy, PolicyContext, register_policy
from argus.types import Request

DISCRIMINATOR_NOISE = 0.03
"""Std of the discriminator's error, in relative-quality units (modelled)."""
CONFIDENCE_WINDOW = 2000
"""Recent light-image confidences kept to estimate the deferral curve f(t)."""


@register_policy("diffserve")
class DiffServe(Policy):
    expire_after_slo = 1.5

    def bind(self, plane: PolicyContext) -> None:
        super().bind(plane)
        table = plane.table
        self.heavy = table.full
        own = [
            i for i in table.levels_of_variant(table.variant[self.heavy]) if table.cache_k[i] == 0
        ]
        self.light = max(own, key=lambda i: (table.throughput[i], -table.mean_quality[i]))
        self.threshold = -math.inf
        self.confidences: deque[float] = deque(maxlen=CONFIDENCE_WINDOW)
        self.rng = np.random.default_rng(self.seed)
        self.deferred = 0

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        table = plane.table
        workers = np.zeros(len(table), int)
        total = plane.num_workers
        rate = demand.forecast_rps
        light_tp = table.throughput[self.light] * UTILISATION_CAP
        heavy_tp = table.throughput[self.heavy] * UTILISATION_CAP
        light = min(total, max(1, math.ceil(rate / light_tp))) if rate > 0 else total // 2
        heavy = total - light
        workers[self.light], workers[self.heavy] = light, heavy
        deferrable = 1.0 if rate <= 0 else min(1.0, heavy * heavy_tp / rate)
        self.threshold = self._threshold_for(deferrable)
        load = np.zeros(len(table))
        load[self.light] = rate
        load[self.heavy] = rate * deferrable
        return Plan(
            time_s=now, workers=workers, routing=None, forecast_rps=rate, load_rps=load,
            info={"threshold": self.threshold, "deferrable_share": deferrable},
        )

    def _threshold_for(self, share: float) -> float:
        """Highest threshold t with f(t) = P(confidence < t) <= share."""
        if not self.confidences or share <= 0:
            return -math.inf
        if share >= 1:
            return math.inf
        values = np.sort(np.fromiter(self.confidences, float))
        return float(values[int(share * len(values))])

    def route(self, request: Request, now: float) -> int | None:
        return self.light

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        return None

    def confidence(self, request: Request) -> float:
        plane = self.plane
        assert plane is not None
        name = plane.table.names[self.light]
        if plane.oracle is not None:
            true = plane.oracle(request, name)
        else:
            true = (request.predicted_quality or {}).get(name, plane.table.mean_quality[self.light])
        return true + DISCRIMINATOR_NOISE * float(self.rng.standard_normal())

    def on_complete(self, request: Request, now: float) -> int | None:
        plane = self.plane
        assert plane is not None
        if plane.table.index[request.level] != self.light:
            return None
        score = self.confidence(request)
        self.confidences.append(score)
        if score >= self.threshold:
            return None
        if plane.finish_estimate(self.heavy, now, request.n) > request.deadline_s:
            return None
        self.deferred += 1
        return self.heavy
