"""Two tenants on one server: A floods, B sends at a modest pace; how is B served?

`flood` is tenant A: `concurrency` clients that each send the next request as soon as the last is
answered, ignoring Retry-After (a hostile or careless client), for `duration_s`. Run it in its own
process (`python -m argus.bench.fairness URL KEY CONCURRENCY DURATION_S`, prints its tally as one
JSON line) so that its HTTP work does not share the server's interpreter. `paced` is tenant B:
one request every `period_s`, each answered before the next is sent. The figure of merit is
B's SLO attainment: the share of its requests answered 200 within the SLO.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

PATH = "/v1/images/generations"
BODY = {"prompt": "a red circle", "size": "32x32"}


@dataclass
class Tally:
    """Answers of one tenant: statuses, error codes, latencies of the 200s, Retry-After."""

    slo_s: float
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    served_s: list[float] = field(default_factory=list)
    retry_after_missing: int = 0

    def add(self, response: httpx.Response, latency_s: float) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.served_s.append(latency_s)
            return
        if "retry-after" not in response.headers and response.status_code in (429, 503):
            self.retry_after_missing += 1
        try:
            self.codes[response.json()["error"]["code"]] += 1
        except (ValueError, KeyError, TypeError):
            self.codes["<not an OpenAI error body>"] += 1

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def in_slo(self) -> int:
        return sum(latency <= self.slo_s for latency in self.served_s)

    def summary(self) -> dict:
        served = sorted(self.served_s)
        return {
            "sent": self.sent, "statuses": dict(self.statuses), "codes": dict(self.codes),
            "in_slo": self.in_slo,
            "slo_attainment": round(self.in_slo / self.sent, 3) if self.sent else None,
            "p50_s": round(served[len(served) // 2], 3) if served else None,
            "max_s": round(served[-1], 3) if served else None,
            "retry_after_missing": self.retry_after_missing,
        }


async def _post(http: httpx.AsyncClient, tally: Tally) -> None:
    start = time.monotonic()
    try:
        response = await http.post(PATH, json=BODY)
    except httpx.TransportError:
        tally.statuses[0] += 1  # 0: no HTTP answer (reset, timeout)
        return
    tally.add(response, time.monotonic() - start)


async def flood(url: str, key: str, concurrency: int, duration_s: float,
                slo_s: float = 0.0) -> Tally:
    """Tenant `key` keeps `concurrency` requests in flight for `duration_s`."""
    tally, stop = Tally(slo_s), time.monotonic() + duration_s
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60,
                                 limits=limits) as http:
        async def client() -> None:
            while time.monotonic() < stop:
                await _post(http, tally)
                await asyncio.sleep(0.01)  # a refusal comes back at once: do not spin
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally


def paced(url: str, key: str, period_s: float, duration_s: float, slo_s: float) -> Tally:
    """Tenant `key` sends one request every `period_s` (after the last is answered)."""
    tally = Tally(slo_s)
    start = time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=slo_s * 4) as http:
        for i in range(max(1, int(duration_s / period_s))):
            time.sleep(max(0.0, start + i * period_s - time.monotonic()))
            sent = time.monotonic()
            try:
                response = http.post(PATH, json=BODY)
            except httpx.TransportError:
                tally.statuses[0] += 1
                continue
            tally.add(response, time.monotonic() - sent)
    return tally


def flood_command(url: str, key: str, concurrency: int, duration_s: float) -> list[str]:
    """The command line that runs `flood` in its own process."""
    return [sys.executable, "-m", "argus.bench.fairness", url, key, str(concurrency),
            str(duration_s)]


if __name__ == "__main__":
    target, api_key, width, seconds = sys.argv[1:5]
    result = asyncio.run(flood(target, api_key, int(width), float(seconds)))
    print(json.dumps({**result.summary(), "codes": dict(result.codes)}))
