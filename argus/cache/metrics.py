"""Prometheus metrics of the approximate cache.

One set of collectors per registry: caches sharing a registry share them (a registry refuses
the same metric name twice). By default that is `CACHE_REGISTRY`, which the API's /metrics
renders beside its own; tests pass their own `CollectorRegistry`.
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge

CACHE_REGISTRY = CollectorRegistry()

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, CacheMetrics] = (
    weakref.WeakKeyDictionary()
)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.lookups = Counter(
            "argus_cache_lookups", "Approximate-cache lookups.", registry=registry
        )
        self.hits = Counter(
            "argus_cache_hits",
            "Lookups served from the cache, by steps skipped (k) and kind (exact repeat or "
            "similar prompt).",
            ["k", "kind"],
            registry=registry,
        )
        self.misses = Counter(
            "argus_cache_misses",
            "Lookups not served from the cache: no_match (nothing similar enough, damaged "
            "entries included) or capped (the level's K allows no stored step).",
            ["reason"],
            registry=registry,
        )
        self.evictions = Counter(
            "argus_cache_evictions", "Entries evicted (LCBFU) to stay in budget.", registry=registry
        )
        self.corrupt = Counter(
            "argus_cache_corrupt_entries",
            "Entries found missing, truncated or failing their checksum, and removed.",
            registry=registry,
        )
        self.stores = Counter(
            "argus_cache_stores",
            "Store requests by outcome (stored, duplicate, dropped, too_large, not_ready, error).",
            ["outcome"],
            registry=registry,
        )
        self.bytes_used = Gauge(
            "argus_cache_bytes_used", "Bytes of latents on disk.", registry=registry
        )
        self.entries = Gauge("argus_cache_entries", "Entries in the cache.", registry=registry)
        self.capacity = Gauge(
            "argus_cache_capacity_bytes", "Configured byte budget.", registry=registry
        )


def cache_metrics(registry: CollectorRegistry | None = None) -> CacheMetrics:
    registry = registry or CACHE_REGISTRY
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = CacheMetrics(registry)
        return metrics
