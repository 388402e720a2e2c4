"""Any requested step count: service time and quality as functions of steps, and a request's
predictions made relative to the step count it asked for.

A profile measures a variant at a few step counts (its cache-free levels). Between two measured
counts, time per image and quality are interpolated linearly in steps. Below the smallest count
both scale with steps towards zero (a one-step run costs and keeps proportionally less). Above
the largest, time per image grows linearly with the slope of the last two measured counts (or in
proportion to steps when only one is measured), and quality is held at the last measured value:
samplers plateau, so a 30-step request whose variant was profiled up to 20 steps is predicted to
lose nothing at 20 steps. A request that must run exactly its count opts out of approximation
(`quality: "high"`).

A request asking for S steps of variant v takes S steps of v as its reference ("full"): a level
is an approximation of it when it costs no more per image than the reference run, and its
predicted relative quality becomes q(level) / q(v, S), capped at 1. Levels that cost more are
not offered (quality 0): they are not what was asked, except v's home level (its deepest
cache-free one), which stands for the reference run itself: it runs exactly S steps there, its
step count overridden (`override`), at relative quality 1.
"""

from __future__ import annotations

from argus.control.levels import LevelTable
from argus.types import Request

__all__ = ["StepModel"]


class StepModel:
    def __init__(self, table: LevelTable) -> None:
        self.table = table
        variants = len(table.variant_names)
        self._ladder: list[list[int]] = [
            sorted((i for i in table.levels_of_variant(v) if table.cache_k[i] == 0
                    and not table.feature_cache[i]),
                   key=lambda i: table.steps[i])
            for v in range(variants)
        ]
        self.home = [ladder[-1] if ladder else -1 for ladder in self._ladder]
        """Per variant: the cache-free level with the most steps, where exact runs queue."""

    def _bracket(self, variant: int, steps: int) -> tuple[int, int, float]:
        """The two measured levels around `steps` and the interpolation weight of the second."""
        ladder = self._ladder[variant]
        counts = [self.table.steps[i] for i in ladder]
        if steps <= counts[0]:
            return ladder[0], ladder[0], 0.0
        for lo, hi in zip(ladder, ladder[1:], strict=False):
            s0, s1 = self.table.steps[lo], self.table.steps[hi]
            if steps <= s1:
                return lo, hi, (steps - s0) / (s1 - s0)
        return ladder[-1], ladder[-1], 0.0

    def image_time(self, variant: int, steps: int) -> float:
        """Worker-seconds per image at the planning batch for `steps` steps of `variant`."""
        table = self.table
        ladder = self._ladder[variant]
        first, last = ladder[0], ladder[-1]
        if steps < table.steps[first]:
            return table.image_time_s[first] * steps / table.steps[first]
        if steps > table.steps[last]:
            if len(ladder) == 1:
                return table.image_time_s[last] * steps / table.steps[last]
            prev = ladder[-2]
            slope = (table.image_time_s[last] - table.image_time_s[prev]) / (
                table.steps[last] - table.steps[prev])
            return table.image_time_s[last] + max(slope, 0.0) * (steps - table.steps[last])
        lo, hi, w = self._bracket(variant, steps)
        return (1 - w) * table.image_time_s[lo] + w * table.image_time_s[hi]

    def quality(self, variant: int, steps: int, quality: dict[str, float]) -> float:
        """Predicted relative quality (full level = 1) of `steps` steps of `variant`."""
        table = self.table
        names, means = table.names, table.mean_quality

        def q(i: int) -> float:
            return quality.get(names[i], means[i])

        ladder = self._ladder[variant]
        if steps < table.steps[ladder[0]]:
            return q(ladder[0]) * steps / table.steps[ladder[0]]
        lo, hi, w = self._bracket(variant, steps)
        return (1 - w) * q(lo) + w * q(hi)

    def exact_level(self, variant: int, steps: int) -> int | None:
        """The cache-free level of `variant` that runs exactly `steps`, if the profile has one."""
        for i in self._ladder[variant]:
            if self.table.steps[i] == steps:
                return i
        return None

    def work_scale(self, variant: int, steps: int) -> float:
        """Cost of an exact `steps`-step run relative to the variant's home level."""
        home = self.home[variant]
        return self.image_time(variant, steps) / self.table.image_time_s[home]

    def relative(self, variant: int, steps: int, quality: dict[str, float]) -> dict[str, float]:
        """The prediction relative to a reference of `steps` steps of `variant` (see above)."""
        table = self.table
        reference_q = max(self.quality(variant, steps, quality), 1e-9)
        reference_t = self.image_time(variant, steps) * (1 + 1e-9)
        names, means = table.names, table.mean_quality
        relative = {
            names[i]: (min(quality.get(names[i], means[i]) / reference_q, 1.0)
                       if table.image_time_s[i] <= reference_t else 0.0)
            for i in range(len(table))
        }
        relative[names[self.home[variant]]] = 1.0  # or the exact run that overrides it
        return relative

    # ----------------------------------------------------------------- per request
    def pinned_level(self, request: Request) -> int | None:
        """The one level a pinned request may run at: the full level for `no_approximation`
        (or the pinned variant at its default steps), never a cache level; a step count the
        profile lacks runs exactly on the variant's home level (see `override`). None for an
        unknown variant. A level named by the request (`_named_level`) comes first."""
        table = self.table
        named = self._named_level(request)
        if named is not None:
            return named
        variant = request.pinned_variant
        if variant is None and request.no_approximation and request.pinned_steps is None \
                and request.requested_steps is None:
            return table.full
        if variant is None:
            variant = table.variant_names[table.variant[table.full]]
        if variant not in table.variant_names:
            return None
        v = table.variant_names.index(variant)
        steps = request.pinned_steps or request.requested_steps
        exact = None if steps is None else self.exact_level(v, steps)
        return self.home[v] if exact is None else exact

    def _named_level(self, request: Request) -> int | None:
        """The level `model: <level name>` pinned, when it can run as asked: a feature-cache
        level always (an asked-for step count runs with its cache on: `override`), a plain one
        at its own step count. A cache level (K > 0) falls back to its variant and steps: a
        resume needs a cache hit no request can be promised."""
        table = self.table
        if request.pinned_level not in table.names:
            return None
        i = table.names.index(request.pinned_level)
        steps = request.pinned_steps or request.requested_steps
        if table.cache_k[i] or not (table.feature_cache[i] or steps in (None, table.steps[i])):
            return None
        return i

    def pin_reason(self, request: Request) -> str:
        """Why `pinned_level` found none."""
        return f"unknown model variant {request.pinned_variant!r}"

    def override(self, request: Request, level: int) -> None:
        """Set (or clear) the request's exact-run override at `level`: a pinned count the level
        does not run, or an asked-for count below its variant's home level's when it lands there
        (above it, the home level's own steps are its approximation)."""
        table = self.table
        v = table.variant[level]
        steps = request.pinned_steps
        reference = table.variant[table.full]  # asked-for counts are of the default variant
        if steps is None and (request.pinned or (v == reference and level == self.home[v])):
            steps = request.requested_steps
            if steps is not None and steps > table.steps[level] and not request.pinned:
                steps = None
        if steps is None or steps == table.steps[level]:
            request.run_steps, request.work_scale = None, request.run_fraction
        else:
            request.run_steps = steps
            request.work_scale = self.work_scale(v, steps) * request.run_fraction
