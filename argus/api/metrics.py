"""Prometheus metrics of the API (seconds, `_total` counters; one registry per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from argus.cache.metrics import CACHE_REGISTRY
from argus.runtime.base import JobOutcome, Runtime

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self._judged = 0
        self._met = 0
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "argus_requests_total",
            "Image requests by final status and serving level",
            ["status", "level"],
            registry=r,
        )
        self.images = Counter("argus_images_total", "Images generated", ["level"], registry=r)
        self.latency = Histogram(
            "argus_request_latency_seconds",
            "End-to-end latency of completed requests",
            ["level"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue_time = Histogram(
            "argus_request_queue_seconds",
            "Time completed requests waited for a worker",
            ["level"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.run_time = Histogram(
            "argus_request_run_seconds",
            "Worker time of completed requests (batch included)",
            ["level"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.slo_requests = Counter(
            "argus_slo_requests_total", "Admitted-or-rejected requests judged for SLO", registry=r
        )
        self.slo_met = Counter(
            "argus_slo_met_total", "Requests completed within their deadline", registry=r
        )
        self.slo_attainment = Gauge(
            "argus_slo_attainment_ratio", "Share of requests that met their SLO", registry=r
        )
        self.queue_length = Gauge(
            "argus_queue_length", "Queued requests per level", ["level"], registry=r
        )
        self.workers_ready = Gauge("argus_workers_ready", "Workers able to take work", registry=r)
        self.worker_deaths = Gauge(
            "argus_worker_deaths", "Worker processes that died since start", registry=r
        )
        self.inflight = Gauge(
            "argus_requests_in_flight", "Requests admitted and not finished", registry=r
        )

    def completed(self, outcome: JobOutcome) -> None:
        level = outcome.level
        self.requests.labels("completed", level).inc()
        self.images.labels(level).inc(len(outcome.images_png))
        t = outcome.timings_ms
        self.latency.labels(level).observe(t["total"] / 1e3)
        self.queue_time.labels(level).observe(t["queue"] / 1e3)
        self.run_time.labels(level).observe(t["run"] / 1e3)
        self._slo(outcome.met_slo)

    def ended(self, status: str, level: str | None, counts_for_slo: bool = True) -> None:
        """A request that was not completed (rejected, cancelled, failed, invalid)."""
        self.requests.labels(status, level or "none").inc()
        if counts_for_slo:
            self._slo(False)

    def _slo(self, met: bool) -> None:
        self._judged += 1
        self._met += int(met)
        self.slo_requests.inc()
        self.slo_met.inc(int(met))
        self.slo_attainment.set(self._met / self._judged)

    def render(self, runtime: Runtime) -> bytes:
        for level, count in runtime.queue_lengths().items():
            self.queue_length.labels(level).set(count)
        snap = runtime.snapshot().get("runtime", {})
        workers = snap.get("workers", {})
        self.workers_ready.set(sum(1 for w in workers.values() if w.get("ready")))
        self.worker_deaths.set(snap.get("worker_deaths", 0))
        return generate_latest(self.registry) + generate_latest(CACHE_REGISTRY)
