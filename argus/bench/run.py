"""One bench run: plan the workload, replay it open loop, score every image, fetch the
full-level references, summarise."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from argus.bench.loadgen import Replay, RequestRecord
from argus.bench.report import summarise_bench, write_plots
from argus.bench.scoring import (
    ReferenceCache,
    apply_references,
    default_cache_dir,
    fill_references,
    needed,
    score_images,
    server_key,
)
from argus.bench.workload import SHAPES_PROMPTS, build_workload
from argus.sim.traces import Trace


@dataclass
class BenchSpec:
    url: str
    trace: str
    rate: float | None
    duration_s: float
    seed: int = 0
    prompts: str | None = None
    """`shapes`, a file with one prompt per line, or None (the trace's prompts, else shapes)."""
    model: str | None = None
    steps: int | None = None
    compress: bool = False
    max_requests: int | None = None
    drain_s: float = 120.0
    max_connections: int = 1024
    ref_cache: Path | None = None
    ref_concurrency: int = 4
    plots: Path | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ServerInfo:
    slo_s: float
    level_names: tuple[str, ...]
    workers: int | None
    policy: str | None
    key: str
    """Hash of the model config (and scorer): the reference cache's namespace."""


def server_info(url: str) -> ServerInfo:
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            models = client.get("/v1/models").raise_for_status().json()
            cluster = client.get("/v1/cluster").raise_for_status().json()
    except httpx.HTTPError as err:
        raise ValueError(f"--url {url}: not an Argus server I can reach ({err})") from None
    levels = tuple(m["id"] for m in models["data"] if (m.get("argus") or {}).get("kind") == "level")
    return ServerInfo(float(cluster["slo_s"]), levels, cluster.get("num_workers"),
                      cluster.get("policy"), server_key(models))


def score_and_reference(
    records: list[RequestRecord], spec: BenchSpec, info: ServerInfo, progress: bool,
) -> list[str]:
    """Score all images, then relate them to their full-level references; returns errors."""
    score_images(records)
    cache = ReferenceCache(spec.ref_cache or default_cache_dir(), info.key)
    try:
        errors = asyncio.run(fill_references(
            cache, spec.url, needed(records), spec.ref_concurrency, progress
        ))
    finally:
        cache.save()
    apply_references(records, cache)
    return errors


def run_bench(spec: BenchSpec, progress: bool = False) -> dict:
    """Run the bench against `spec.url`; returns the summary (`argus bench --json`)."""
    info = server_info(spec.url)
    trace, planned = build_workload(
        spec.trace, spec.rate, spec.duration_s, spec.seed, spec.prompts, spec.steps,
        spec.compress, spec.max_requests,
    )
    replay = Replay(planned, spec.url, spec.model, spec.drain_s, spec.max_connections, progress)
    started = time.monotonic()
    records = asyncio.run(replay.run())
    wall_s = time.monotonic() - started
    duration_s = spec.duration_s
    if replay.interrupted:
        records = [r for r in records if r.sent_s is not None]
        duration_s = min(duration_s, max((r.arrival_s for r in records), default=0.0) + 1e-9)
    errors = score_and_reference(records, spec, info, progress)
    meta = _meta(spec, trace, info, replay.interrupted, wall_s)
    meta["duration_s"] = round(duration_s, 3)
    summary, record = summarise_bench(
        records, info.level_names, info.slo_s, max(duration_s, 1e-9), meta
    )
    summary["reference_errors"] = errors
    if spec.plots is not None:
        summary["plots"] = [str(p) for p in write_plots(summary, record, info.level_names,
                                                        spec.plots)]
    return summary


def _meta(spec: BenchSpec, trace: Trace, info: ServerInfo, interrupted: bool,
          wall_s: float) -> dict:
    prompts = spec.prompts or ("trace" if trace.prompt is not None else SHAPES_PROMPTS)
    return {
        "trace": spec.trace, "trace_source": trace.source, "rate_rps": spec.rate,
        "workers": info.workers, "profile": None, "policy": info.policy,
        "url": spec.url, "model": spec.model, "prompts": prompts,
        "duration_s": spec.duration_s, "seed": spec.seed, "interrupted": interrupted,
        "wall_s": round(wall_s, 3), **spec.meta,
    }
