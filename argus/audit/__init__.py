"""Online quality audit: score a sample of served images in the background against full-level
references, compare with the predicted relative quality per level, raise a drift alarm and refit
the predictor's per-level offsets (docs/audit.md)."""

from argus.audit.auditor import Auditor, build_auditor
from argus.audit.stats import AuditStats, Sample

__all__ = ["AuditStats", "Auditor", "Sample", "build_auditor"]
