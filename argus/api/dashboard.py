"""The live dashboard (`GET /dashboard`, state at `GET /v1/dashboard/state`) and the hooks that
feed it and the quality audit from completed requests.

The page (`argus/assets/dashboard/index.html`) is self-contained (inline SVG charts, no CDN) and
polls the state once a second. The state is sampled here once a second from the runtime's
snapshot (the same for the local and the Ray runtime) into a bounded history, so the charts show
the last `HISTORY_POINTS` seconds whoever watches.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from prometheus_client import CollectorRegistry

from argus.api.auth import current_principal
from argus.audit import Auditor, build_auditor
from argus.audit.metrics import AuditMetrics
from argus.config import ArgusConfig
from argus.runtime.base import GenerationRequest, JobOutcome, Runtime

PAGE = Path(__file__).resolve().parents[1] / "assets" / "dashboard" / "index.html"
SAMPLE_S = 1.0
HISTORY_POINTS = 300
RECENT_REQUESTS = 15
THUMBNAILS = 6
THUMB_PX = 96
RATE_WINDOW = 5
"""History points the arrival rate and SLO attainment are averaged over."""


def thumbnail(png: bytes) -> str:
    """A data URL of the image scaled to at most THUMB_PX (pixel art stays sharp in the page)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


class Dashboard:
    """Observes completed requests (`completed`), samples the cluster (`sample`), and answers
    the page's state; owns the quality auditor."""

    def __init__(self, config: ArgusConfig, runtime: Runtime, registry: CollectorRegistry,
                 auditor: Auditor | None) -> None:
        self.config = config
        self.runtime = runtime
        self.registry = registry
        self.auditor = auditor
        self.audit_metrics = AuditMetrics(auditor, registry) if auditor else None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_REQUESTS)
        self.thumbs: deque[dict[str, Any]] = deque(maxlen=THUMBNAILS)
        self.plans: deque[dict[str, Any]] = deque(maxlen=10)
        self._by_id: dict[str, dict[str, Any]] = {}
        self._completed = 0
        self._cache_hits = 0
        self._task: asyncio.Task | None = None
        self._t0 = time.monotonic()
        if auditor is not None:
            auditor.on_sample.append(self._audited)

    async def start(self) -> None:
        if self.auditor is not None:
            await self.auditor.start()
        self._task = asyncio.create_task(self._sample_forever(), name="argus-dashboard")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.auditor is not None:
            await self.auditor.stop()

    # -- hooks ----------------------------------------------------------------------------
    def completed(self, request: GenerationRequest, outcome: JobOutcome) -> None:
        """A request was answered (on the event loop): count it, list it, offer it to audit."""
        self._completed += 1
        self._cache_hits += int(outcome.cache.hit)
        row = {"id": outcome.request_id, "t_s": round(self._now(), 1), "tenant": request.tenant,
               "prompt": request.prompt[:80], "level": outcome.level, "steps": outcome.steps_run,
               "cache_hit": outcome.cache.hit, "predicted": outcome.predicted_quality,
               "audited": None, "ms": round(outcome.timings_ms.get("total", 0.0)),
               "met_slo": outcome.met_slo}
        if len(self._by_id) >= RECENT_REQUESTS * 4:
            self._by_id.pop(next(iter(self._by_id)))
        self._by_id[outcome.request_id] = row
        self.recent.appendleft(row)
        if outcome.images_png:
            self.thumbs.appendleft({"id": outcome.request_id, "tenant": request.tenant,
                                    "level": outcome.level, "png": outcome.images_png[0]})
        if self.auditor is not None:
            row["audited"] = "queued" if self.auditor.offer(request, outcome) else None

    def _audited(self, sample: Any) -> None:
        row = self._by_id.get(sample.request_id)
        if row is not None:
            row["audited"] = round(sample.measured, 3)

    # -- sampling -------------------------------------------------------------------------
    def _now(self) -> float:
        return time.monotonic() - self._t0

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def sample(self) -> None:
        snap = self.runtime.snapshot()
        workers = snap.get("runtime", {}).get("workers", {})
        point = {
            "t_s": round(self._now(), 2),
            "workers_per_level": {k: v for k, v in snap.get("workers_per_level", {}).items()
                                  if v},
            "workers_per_variant": dict(Counter(w.get("variant") or "(loading)"
                                                for w in workers.values())),
            "queued": sum(self.runtime.queue_lengths().values()),
            "arrivals": snap.get("admitted", 0) + snap.get("rejected", 0),
            "forecast_rps": round(snap.get("forecast_rps", 0.0), 3),
            "slo_judged": self.registry.get_sample_value("argus_slo_requests_total") or 0.0,
            "slo_met": self.registry.get_sample_value("argus_slo_met_total") or 0.0,
            "completed": self._completed, "cache_hits": self._cache_hits,
        }
        self.history.append(point)
        self._track_plan(snap)

    def _track_plan(self, snap: dict[str, Any]) -> None:
        t = snap.get("plan_time_s")
        last = self.plans[0] if self.plans else None
        if t is None or (last is not None and last["plan_time_s"] == t):
            return
        period = self.config.control.planning_period_s
        workers = {k: v for k, v in snap.get("workers_per_level", {}).items() if v}
        if last is None:
            trigger = "first plan seen"
        elif t - last["plan_time_s"] < 0.99 * period:
            trigger = "burst: arrivals above the forecast (event-triggered re-plan)"
        else:
            trigger = f"planning period ({period:g} s)"
        self.plans.appendleft({
            "plan_time_s": t, "trigger": trigger, "workers_per_level": workers,
            "changed": last is None or workers != last["workers_per_level"],
            "forecast_rps": round(snap.get("forecast_rps", 0.0), 3),
            "planned_load_rps": {k: round(v, 3) for k, v in
                                 (snap.get("planned_load_rps") or {}).items() if v},
            "unserved_rps": round(snap.get("unserved_rps", 0.0), 3),
            "solve_ms": round(snap.get("solve_ms", 0.0), 2),
        })

    def drifting(self) -> list[str]:
        """Levels whose drift alarm is raised (the /ready body's `quality_drift`)."""
        return self.auditor.drifting() if self.auditor else []

    def audit_snapshot(self) -> dict[str, Any]:
        return self.auditor.snapshot() if self.auditor else {"enabled": False}

    # -- the page's state -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        snap = self.runtime.snapshot()
        mine = _visible_tenant()
        return {
            "t_s": round(self._now(), 2),
            "policy": snap.get("policy"), "slo_s": snap.get("slo_s"),
            "num_workers": snap.get("num_workers"),
            "backend": snap.get("runtime", {}).get("backend"),
            "levels": [lv.name for lv in self.config.levels],
            "level_share": snap.get("level_share", {}),
            "queue_lengths": snap.get("queue_lengths", {}),
            "admitted": snap.get("admitted", 0), "completed": snap.get("completed", 0),
            "rejected": snap.get("rejected", 0),
            "series": _series(list(self.history)),
            "plans": list(self.plans),
            "recent": [dict(r) for r in self.recent if mine is None or r["tenant"] == mine],
            "thumbnails": [{"id": t["id"], "level": t["level"], "src": thumbnail(t["png"])}
                           for t in self.thumbs if mine is None or t["tenant"] == mine],
            "audit": self.audit_snapshot(),
        }


def _visible_tenant() -> str | None:
    """None: every tenant's requests may be shown (no keys, or an admin key)."""
    principal = current_principal()
    return None if principal.tenant is None or principal.admin else principal.tenant


def _series(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Chart series from the history: rates and ratios over RATE_WINDOW points."""
    out: dict[str, list] = {k: [] for k in ("t_s", "arrival_rps", "forecast_rps", "queued",
                                            "slo_attainment", "cache_hit_rate",
                                            "workers_per_level", "workers_per_variant")}
    for i, p in enumerate(points):
        q = points[max(0, i - RATE_WINDOW)]
        dt = p["t_s"] - q["t_s"]
        judged = p["slo_judged"] - q["slo_judged"]
        done = p["completed"] - q["completed"]
        out["t_s"].append(p["t_s"])
        out["arrival_rps"].append(round((p["arrivals"] - q["arrivals"]) / dt, 3) if dt else 0.0)
        out["forecast_rps"].append(p["forecast_rps"])
        out["queued"].append(p["queued"])
        out["slo_attainment"].append(
            round((p["slo_met"] - q["slo_met"]) / judged, 3) if judged else None)
        out["cache_hit_rate"].append(
            round((p["cache_hits"] - q["cache_hits"]) / done, 3) if done else None)
        out["workers_per_level"].append(p["workers_per_level"])
        out["workers_per_variant"].append(p["workers_per_variant"])
    return out


def install_dashboard(app: FastAPI, config: ArgusConfig, runtime: Runtime,
                      registry: CollectorRegistry) -> Dashboard:
    """Build the auditor and the dashboard, add their routes; the caller starts and stops it."""
    dashboard = Dashboard(config, runtime, registry, build_auditor(config, runtime))

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/v1/dashboard/state")
    async def state() -> JSONResponse:
        return JSONResponse(dashboard.state())

    return dashboard
