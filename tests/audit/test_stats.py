"""Drift alarm and guarded recalibration of `argus.audit.stats`, on exact sample streams."""

from __future__ import annotations

from argus.audit import AuditStats, Sample
from argus.config import AuditConfig
from argus.control.predictor import OffsetPredictor
from argus.types import Request


def _config(**overrides: object) -> AuditConfig:
    settings: dict = {"min_samples": 4, "window": 8, "drift_threshold": 0.1,
                      "alarm_after_s": 10.0, "max_step": 0.1, "max_offset": 0.5}
    settings.update(overrides)
    return AuditConfig(**settings)


def _feed(stats: AuditStats, level: str, truth: float, base: float, start_s: float,
          count: int, spacing_s: float = 1.0) -> list[bool]:
    """`count` samples of a level whose true quality is `truth`, predicted `base` + offset."""
    changed = []
    for i in range(count):
        offset = stats.level(level).offset
        sample = Sample(start_s + i * spacing_s, level, truth, base + offset, offset)
        changed.append(stats.add(sample, sample.t_s))
    return changed


def test_alarm_fires_only_after_the_gap_held_for_the_window() -> None:
    """A +0.3 miscalibration alarms once the gap has held alarm_after_s, not at its first
    sample."""
    stats = AuditStats(_config(recalibrate=False, offsets={"l-5": 0.3}))
    _feed(stats, "l-5", truth=0.7, base=0.7, start_s=0.0, count=10)  # t = 0..9 s
    assert stats.drifting() == []
    _feed(stats, "l-5", truth=0.7, base=0.7, start_s=13.0, count=1)
    assert stats.drifting() == ["l-5"]
    assert stats.snapshot()["alarm_events"][0]["alarm"] == "fired"


def test_refit_steps_are_clamped_and_bring_the_error_under_the_threshold() -> None:
    """Recalibration moves the offset at most max_step per refit, and the window served
    under the final offset has an error under the threshold; the alarm then clears."""
    stats = AuditStats(_config(alarm_after_s=0.0, offsets={"l-5": 0.3}))
    changed = _feed(stats, "l-5", truth=0.7, base=0.7, start_s=0.0, count=40)
    steps = [(c["from"], c["to"]) for c in stats.snapshot()["offset_changes"]]
    assert steps == [(0.3, 0.2), (0.2, 0.1), (0.1, 0.0)]
    assert sum(changed) == 3
    summary = stats.snapshot()["levels"]["l-5"]
    assert abs(summary["error"]) < 0.1 and not summary["alarm"]
    assert [e["alarm"] for e in stats.snapshot()["alarm_events"]] == ["fired", "cleared"]


def test_one_bad_batch_cannot_swing_the_offset() -> None:
    """A wild batch of two among calibrated samples leaves the median residual in the dead
    band."""
    stats = AuditStats(_config(alarm_after_s=0.0))
    for i, truth in enumerate([0.8, 0.8, 0.8, 0.8, 0.0, 0.0, 0.8, 0.8]):
        stats.add(Sample(float(i), "l-2", truth, 0.8, 0.0), float(i))
    assert stats.snapshot()["offset_changes"] == []
    assert stats.level("l-2").offset == 0.0


def test_offsets_are_clamped_to_max_offset() -> None:
    """A level far worse than predicted stops at -max_offset."""
    stats = AuditStats(_config(alarm_after_s=0.0, max_offset=0.25))
    _feed(stats, "s-2", truth=0.0, base=0.9, start_s=0.0, count=60)
    assert stats.level("s-2").offset == -0.25


def test_samples_served_under_a_replaced_offset_are_ignored() -> None:
    """An image predicted under the old offset says nothing of the new one."""
    stats = AuditStats(_config(alarm_after_s=0.0, offsets={"l-5": 0.3}))
    _feed(stats, "l-5", truth=0.7, base=0.7, start_s=0.0, count=4)
    assert stats.level("l-5").offset == 0.2
    assert stats.add(Sample(5.0, "l-5", 0.7, 1.0, 0.3), 5.0) is False
    assert stats.snapshot()["levels"]["l-5"]["count"] == 0


def test_offset_predictor_adds_offsets_and_stays_stable_between_changes() -> None:
    """Same input -> the same dict object until the offsets change (the plane caches by it)."""

    class Fixed:
        stable_outputs = True
        out = {"l-20": 1.0, "l-5": 0.8}

        def predict(self, request: Request) -> dict[str, float]:
            return self.out

    predictor = OffsetPredictor(Fixed(), {"l-5": 0.3})
    request = Request(prompt="a red circle", arrival_s=0.0, deadline_s=1.0)
    first = predictor.predict(request)
    assert first == {"l-20": 1.0, "l-5": 0.8 + 0.3}
    assert predictor.predict(request) is first and predictor.stable_outputs
    predictor.set_offsets({"l-5": -0.9})
    assert predictor.predict(request) == {"l-20": 1.0, "l-5": 0.0}  # never below 0
    predictor.set_offsets({})
    assert predictor.predict(request) is Fixed.out


def test_a_large_gap_moves_the_offset_only_once_the_alarm_confirmed_it() -> None:
    """Before alarm_after_s has passed, a gap above the threshold is not refitted."""
    stats = AuditStats(_config(alarm_after_s=10.0, offsets={"l-5": 0.3}))
    _feed(stats, "l-5", truth=0.7, base=0.7, start_s=0.0, count=8)  # t = 0..7 s
    assert stats.level("l-5").offset == 0.3 and stats.drifting() == []
    assert _feed(stats, "l-5", truth=0.7, base=0.7, start_s=14.0, count=1) == [True]
    assert stats.drifting() == ["l-5"] and stats.level("l-5").offset == 0.2


def test_an_alarm_on_a_level_no_longer_served_clears_as_idle() -> None:
    """After the refit lowers a level's prediction the planner may stop serving it: no sample
    can clear its alarm, so it clears as idle after `alarm_idle_s` without samples, logged."""
    stats = AuditStats(_config(recalibrate=False, offsets={"l-5": 0.3}, alarm_idle_s=60.0))
    _feed(stats, "l-5", truth=0.7, base=0.7, start_s=0.0, count=14)  # alarm at t = 10 s
    assert stats.drifting() == ["l-5"]
    stats.expire(60.0)  # 47 s after its last sample: still evidence enough
    assert stats.drifting() == ["l-5"]
    stats.expire(73.0)
    assert stats.drifting() == []
    assert stats.snapshot()["alarm_events"][-1]["alarm"] == "cleared (idle)"
