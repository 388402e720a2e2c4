"""The audit's Prometheus series (`argus_quality_audit_*`), in the API's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from argus.audit.auditor import Auditor
from argus.audit.stats import Sample


class AuditMetrics:
    """Updated after each audited sample (`Auditor.on_sample`)."""

    def __init__(self, auditor: Auditor, registry: CollectorRegistry) -> None:
        self.auditor = auditor
        r = registry
        self.samples = Counter("argus_quality_audit_samples_total",
                               "Served images audited", ["level"], registry=r)
        self.measured = Gauge("argus_quality_audit_measured",
                              "Mean measured relative quality of the level's audit window",
                              ["level"], registry=r)
        self.predicted = Gauge("argus_quality_audit_predicted",
                               "Mean predicted relative quality of the same images",
                               ["level"], registry=r)
        self.error = Gauge("argus_quality_audit_error",
                           "Measured minus predicted relative quality (window mean)",
                           ["level"], registry=r)
        self.drift = Gauge("argus_quality_audit_drift_alarm",
                           "1 while the level's drift alarm is raised", ["level"], registry=r)
        self.offset = Gauge("argus_quality_audit_offset",
                            "Offset added to the level's predicted quality (recalibration)",
                            ["level"], registry=r)
        self.dropped = Gauge("argus_quality_audit_dropped",
                             "Samples dropped (budget, queue_full, busy, reference_failed, "
                             "error)", ["reason"], registry=r)
        auditor.on_sample.append(self.observe)

    def observe(self, sample: Sample) -> None:
        self.samples.labels(sample.level).inc()
        for name, level in self.auditor.stats.levels.items():
            s = level.summary()
            if s["measured"] is not None:
                self.measured.labels(name).set(s["measured"])
                self.predicted.labels(name).set(s["predicted"])
                self.error.labels(name).set(s["error"])
            self.drift.labels(name).set(int(s["alarm"]))
            self.offset.labels(name).set(s["offset"])
        for reason, count in self.auditor.dropped.items():
            self.dropped.labels(reason).set(count)
