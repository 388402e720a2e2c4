"""How fast the live server really ran during a bench, against its profile (issue #14 item 4).

The server reports each image's `run` time (dispatch to result, the whole batch's work). Images
of one batch share their dispatch instant and level, so they are grouped back into batches; a
batch's run time over the profile's service time for that level and batch size is its speed
ratio, and the median over batches is the run's speed factor. A profile with every service time
scaled by it is what the simulator needs to model the machine as it was during the run (a shared
machine runs slower than when it was profiled, and not by a constant)."""

from __future__ import annotations

import statistics
from pathlib import Path

from argus.control.profile import Profile

SAME_BATCH_S = 0.03
"""Dispatch instants (client send + server queue time) this close, same level: one batch."""


def batches(records: list[dict]) -> list[tuple[str, int, float]]:
    """(level, images, run seconds) per batch, from the bench's JSON records."""
    jobs = []
    for r in records:
        if r.get("status") != 200 or not r.get("images") or r.get("sent_s") is None:
            continue
        image = r["images"][0]
        t = image.get("timings_ms")
        if not t or image.get("level") is None:
            continue
        jobs.append((r["sent_s"] + t["queue"] / 1e3, image["level"], len(r["images"]),
                     t["run"] / 1e3))
    jobs.sort()
    grouped: list[list[tuple[float, str, int, float]]] = []
    for job in jobs:
        last = grouped[-1][0] if grouped else None
        if last is not None and job[1] == last[1] and job[0] - last[0] <= SAME_BATCH_S:
            grouped[-1].append(job)
        else:
            grouped.append([job])
    return [(g[0][1], sum(j[2] for j in g), max(j[3] for j in g)) for g in grouped]


def speed_factor(records: list[dict], profile: Profile) -> float | None:
    """Median over batches of measured run time / profiled service time; None without data."""
    known = {lv.name for lv in profile.levels}
    ratios = [run / profile.level(level).service_time(size)
              for level, size, run in batches(records) if level in known]
    return statistics.median(ratios) if ratios else None


def scaled_profile(profile: Profile, factor: float) -> Profile:
    """The profile with every level's service times multiplied by `factor`."""
    levels = [lv.model_copy(update={"service_time_s": {b: t * factor
                                                       for b, t in lv.service_time_s.items()}})
              for lv in profile.levels]
    return profile.model_copy(update={
        "levels": levels, "name": f"{profile.name}-x{factor:.2f}",
        "notes": f"{profile.notes} service times x {factor:.3f} (live speed factor)".strip(),
    })


def write_scaled(profile: Profile, factor: float, path: Path) -> Path:
    path.write_text(scaled_profile(profile, factor).model_dump_json(indent=1))
    return path
