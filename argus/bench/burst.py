"""A burst: many simultaneous requests against a running server, every image scored.

The live counterpart of a simulated burst (`benchmarks/live_burst.py`, `tests/shapes/
test_live_burst.py`): per request its status, latency and level; per image its shapes-scorer
score; the quality-weighted goodput is the sum of the scores of images answered within the SLO
(by the server's own time, `argus.timings_ms.server`: request arrival to answer).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from argus.bench.scoring import score_png


@dataclass(frozen=True)
class BurstResult:
    slo_s: float
    statuses: dict[int, int]
    retry_after_missing: int
    """Non-200 answers without a Retry-After header."""
    levels: dict[str, int]
    scores: list[float]
    """Score of every answered request's first image."""
    in_slo: list[float]
    late_answers: int

    def summary(self) -> dict:
        return {
            "slo_s": round(self.slo_s, 3), "answered": len(self.scores),
            "answered_in_slo": len(self.in_slo), "late_answers": self.late_answers,
            "statuses": self.statuses, "levels": self.levels,
            "mean_score": round(sum(self.scores) / len(self.scores), 4) if self.scores else None,
            "quality_weighted_goodput": round(self.quality_weighted_goodput, 3),
        }

    @property
    def quality_weighted_goodput(self) -> float:
        return sum(self.in_slo)


async def _send(url: str, bodies: list[dict]) -> list[tuple[httpx.Response, float]]:
    limits = httpx.Limits(max_connections=len(bodies) + 8)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one(body: dict) -> tuple[httpx.Response, float]:
            start = time.monotonic()
            response = await client.post("/v1/images/generations", json=body)
            return response, time.monotonic() - start

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def run_burst(url: str, prompts: list[str], seeds: list[int], model: str | None = None) \
        -> BurstResult:
    """Send one request per prompt at once (`model` pins a level or variant; None = auto)."""
    slo = float(httpx.get(f"{url}/v1/cluster", timeout=30).json()["slo_s"])
    extra = {} if model is None else {"model": model}
    bodies = [{"prompt": p, "seed": s, **extra} for p, s in zip(prompts, seeds, strict=True)]
    answers = asyncio.run(_send(url, bodies))
    statuses = Counter(response.status_code for response, _ in answers)
    scores, in_slo, late, levels, no_retry = [], [], 0, Counter(), 0
    for (response, latency), prompt in zip(answers, prompts, strict=True):
        if response.status_code != 200:
            no_retry += "retry-after" not in response.headers
            continue
        item = response.json()["data"][0]
        value = score_png(item["b64_json"], prompt)
        levels[item["argus"]["level"]] += 1
        scores.append(value)
        # The server's own time (its arrival to its answer), where it reports one: a client on
        # the same small machine adds its own event loop's delays to what it measures.
        served_s = item["argus"]["timings_ms"].get("server", latency * 1e3) / 1e3
        if served_s <= slo:
            in_slo.append(value)
        else:
            late += 1
    return BurstResult(slo, dict(statuses), no_retry, dict(levels), scores, in_slo, late)
