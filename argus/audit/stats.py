"""Per-level audit statistics, the drift alarm and the guarded offset refit.

NOTE: a level's window holds only samples served under its current offset. A refit archives
the window and starts a new one, so "error after" is measured on images predicted by the new
offset, never on the samples the offset was fitted to.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

from argus.config import AuditConfig

log = logging.getLogger("argus.audit")

HISTORY = 50
"""Offset changes and alarm events kept for /v1/cluster and the dashboard."""


@dataclass(frozen=True)
class Sample:
    """One audited image."""

    t_s: float
    level: str
    measured: float
    """Relative quality measured: scorer value of the served image / of the full-level one."""
    predicted: float
    """Relative quality predicted for it when it was served (offset included)."""
    offset: float
    """The level's offset in force when it was served."""
    request_id: str = ""
    prompt: str = ""


@dataclass
class LevelAudit:
    window: deque[Sample]
    offset: float = 0.0
    total: int = 0
    drifting_since: float | None = None
    """When the current window's gap first exceeded the threshold (None: within it)."""
    alarm: bool = False
    last_s: float = -math.inf
    """When its last sample was recorded."""
    previous: dict | None = None
    """The summary of the window the last refit closed (error before the refit)."""

    def summary(self) -> dict:
        w = self.window
        measured = statistics.fmean(s.measured for s in w) if w else None
        predicted = statistics.fmean(s.predicted for s in w) if w else None
        return {
            "count": len(w), "total": self.total, "offset": round(self.offset, 4),
            "measured": _round(measured), "predicted": _round(predicted),
            "error": _round(None if measured is None else measured - predicted),
            "alarm": self.alarm, "previous": self.previous,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass
class AuditStats:
    """Samples per level -> error, alarm and offset refits (`add` is the one entry point)."""

    config: AuditConfig
    levels: dict[str, LevelAudit] = field(default_factory=dict)
    changes: deque[dict] = field(default_factory=lambda: deque(maxlen=HISTORY))
    events: deque[dict] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def level(self, name: str) -> LevelAudit:
        audit = self.levels.get(name)
        if audit is None:
            audit = self.levels[name] = LevelAudit(
                deque(maxlen=self.config.window), self.config.offsets.get(name, 0.0)
            )
        return audit

    def offsets(self) -> dict[str, float]:
        return {n: a.offset for n, a in self.levels.items() if a.offset}

    def add(self, sample: Sample, now: float) -> bool:
        """Record a sample; update the alarm; refit its level's offset when due. True when the
        offset changed (the caller hands `offsets()` to the predictor)."""
        audit = self.level(sample.level)
        if sample.offset != audit.offset:
            return False  # served under an offset since replaced: it says nothing of the new one
        audit.window.append(sample)
        audit.total += 1
        audit.last_s = now
        self._update_alarm(sample.level, audit, now)
        return self.config.recalibrate and self._refit(sample.level, audit, now)

    def drifting(self) -> list[str]:
        return sorted(n for n, a in self.levels.items() if a.alarm)

    def expire(self, now: float) -> None:
        """Clear alarms whose level got no sample for `alarm_idle_s` (no evidence left)."""
        for name, audit in self.levels.items():
            if audit.alarm and now - audit.last_s >= self.config.alarm_idle_s:
                audit.alarm, audit.drifting_since = False, None
                self._event(now, name, "cleared (idle)", audit.summary()["error"])

    def _update_alarm(self, name: str, audit: LevelAudit, now: float) -> None:
        cfg = self.config
        if len(audit.window) < cfg.min_samples:
            return
        error = audit.summary()["error"]
        if abs(error) <= cfg.drift_threshold:
            audit.drifting_since = None
            if audit.alarm:
                audit.alarm = False
                self._event(now, name, "cleared", error)
            return
        if audit.drifting_since is None:
            audit.drifting_since = now
        if not audit.alarm and now - audit.drifting_since >= cfg.alarm_after_s:
            audit.alarm = True
            self._event(now, name, "fired", error)

    def _event(self, now: float, name: str, kind: str, error: float | None) -> None:
        self.events.append({"t_s": round(now, 3), "level": name, "alarm": kind,
                            "error": error})
        level = logging.WARNING if kind == "fired" else logging.INFO
        gap = "no samples" if error is None else f"{error:+.3f}"
        log.log(level, "quality drift alarm %s on level %s: measured - predicted = %s "
                "(threshold %.3f)", kind, name, gap, self.config.drift_threshold)

    def _refit(self, name: str, audit: LevelAudit, now: float) -> bool:
        """Move the offset by the window's median residual, at most `max_step`, within
        +-`max_offset`, once `min_samples` samples were served under the current offset.
        Residuals under half the threshold are noise (left alone); one above the threshold
        moves the offset only once the alarm confirmed it held for `alarm_after_s`."""
        cfg = self.config
        if len(audit.window) < cfg.min_samples:
            return False
        residual = statistics.median(s.measured - s.predicted for s in audit.window)
        if abs(residual) <= cfg.drift_threshold / 2 or (
            abs(residual) > cfg.drift_threshold and not audit.alarm
        ):
            return False
        step = max(-cfg.max_step, min(cfg.max_step, residual))
        new = round(max(-cfg.max_offset, min(cfg.max_offset, audit.offset + step)), 4)
        if abs(new - audit.offset) < 1e-9:
            return False  # at the clamp already
        change = {"t_s": round(now, 3), "level": name, "from": round(audit.offset, 4),
                  "to": round(new, 4), "median_residual": round(residual, 4),
                  "samples": len(audit.window)}
        self.changes.append(change)
        log.info("quality audit: level %s offset %+.3f -> %+.3f (median residual %+.3f over "
                 "%d samples)", name, audit.offset, new, residual, len(audit.window))
        audit.previous = {k: v for k, v in audit.summary().items() if k != "previous"}
        audit.offset = new
        audit.window.clear()
        audit.drifting_since = None if not audit.alarm else audit.drifting_since
        return True

    def snapshot(self) -> dict:
        return {
            "levels": {n: a.summary() for n, a in sorted(self.levels.items())},
            "drifting": self.drifting(),
            "offset_changes": list(self.changes),
            "alarm_events": list(self.events),
        }
