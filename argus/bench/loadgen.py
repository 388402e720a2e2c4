"""Open-loop replay over HTTP: each request is sent at its arrival time whatever is still
outstanding (asyncio + one `httpx.AsyncClient` with a large connection pool).

Latency is measured from the planned arrival (not from the actual send), so a late send is
charged to the request rather than hidden. A stop event (set on Ctrl-C) ends sending and
cancels what is outstanding; the records then say what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from argus.bench.workload import PlannedRequest

GENERATIONS = "/v1/images/generations"
UNFINISHED = "unfinished at the end of the run"
"""Error of a request without a response (the simulator's reason for the same thing)."""


@dataclass
class ImageResult:
    """One returned image: the server's `argus` metadata, and the scores added afterwards."""

    seed: int
    level: str | None
    variant: str | None
    steps: int | None
    steps_run: int | None
    cache_hit: bool
    predicted_quality: float | None
    size: str
    png_b64: str = field(default="", repr=False)
    score: float | None = None
    reference_score: float | None = None
    reference_level: str | None = None
    relative_quality: float | None = None
    timings_ms: dict[str, float] | None = None
    """The server's queue/run/total times (the study compares run with the profile's)."""


@dataclass
class RequestRecord:
    index: int
    arrival_s: float
    prompt: str
    seed: int
    n: int
    steps: int | None
    sent_s: float | None = None
    """When it was actually sent (seconds from the start)."""
    status: int | None = None
    latency_s: float | None = None
    """From the planned arrival to the response."""
    error: str | None = None
    error_code: str | None = None
    met_slo: bool = False
    images: list[ImageResult] = field(default_factory=list)

    @property
    def served(self) -> bool:
        return self.status == 200 and bool(self.images)

    @property
    def level(self) -> str | None:
        return self.images[0].level if self.images else None

    @property
    def measured_quality(self) -> float | None:
        """Mean relative quality of its images, None when any is unscored."""
        values = [im.relative_quality for im in self.images]
        if not values or any(v is None for v in values):
            return None
        return sum(values) / len(values)

    @property
    def predicted_quality(self) -> float | None:
        return self.images[0].predicted_quality if self.images else None


def request_body(planned: PlannedRequest, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": planned.prompt, "n": planned.n, "seed": planned.seed,
        "response_format": "b64_json",
    }
    if model is not None:
        body["model"] = model
    if planned.steps is not None:
        body["num_inference_steps"] = planned.steps
    return body


def images_of(payload: dict[str, Any]) -> list[ImageResult]:
    """The images of a `/v1/images/generations` response with their `argus` metadata."""
    size = payload.get("size", "")
    out = []
    for item in payload.get("data", []):
        info = item.get("argus") or {}
        out.append(ImageResult(
            seed=int(info.get("seed", 0)), level=info.get("level"), variant=info.get("variant"),
            steps=info.get("steps"), steps_run=info.get("steps_run"),
            cache_hit=bool((info.get("cache") or {}).get("hit")),
            predicted_quality=info.get("predicted_quality"), size=size,
            png_b64=item.get("b64_json") or "", timings_ms=info.get("timings_ms"),
        ))
    return out


def error_of(response: httpx.Response) -> tuple[str, str | None]:
    """(message, code) of an OpenAI-shaped error response."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return response.text[:200], None
    return str(error.get("message", "")), error.get("code")


def new_client(url: str, timeout_s: float, max_connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0), pool=timeout_s)
    return httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits)


@contextlib.contextmanager
def stop_on_sigint(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C sets `stop` (outside the main thread, where signals cannot be caught, no-op)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (RuntimeError, ValueError, NotImplementedError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


class Replay:
    """Sends the planned requests open loop; `records` fill in as responses arrive."""

    def __init__(
        self, planned: list[PlannedRequest], url: str, model: str | None = None,
        drain_s: float = 120.0, max_connections: int = 1024, progress: bool = False,
    ) -> None:
        self.planned = planned
        self.model = model
        self.drain_s = drain_s
        last = planned[-1].arrival_s if planned else 0.0
        self.client = new_client(url, last + drain_s, max_connections)
        self.records = [
            RequestRecord(p.index, p.arrival_s, p.prompt, p.seed, p.n, p.steps) for p in planned
        ]
        self.bar = progress_bar(len(planned), progress, "bench", "req")
        self.interrupted = False

    async def run(self) -> list[RequestRecord]:
        stop = asyncio.Event()
        async with self.client:
            with stop_on_sigint(stop):
                tasks = await self._send_all(stop)
                await self._drain(tasks, stop)
        if self.bar is not None:
            self.bar.close()
        return self.records

    async def _send_all(self, stop: asyncio.Event) -> list[asyncio.Task]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for planned, record in zip(self.planned, self.records, strict=True):
            delay = start + planned.arrival_s - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                self.interrupted = True
                break
            tasks.append(asyncio.create_task(self._send(planned, record, start)))
        return tasks

    async def _drain(self, tasks: list[asyncio.Task], stop: asyncio.Event) -> None:
        self.interrupted |= await wait_or_stop(tasks, stop, self.drain_s)

    async def _send(self, planned: PlannedRequest, record: RequestRecord, start: float) -> None:
        loop = asyncio.get_running_loop()
        record.sent_s = loop.time() - start
        record.error = UNFINISHED
        try:
            response = await self.client.post(GENERATIONS, json=request_body(planned, self.model))
        except httpx.HTTPError as err:
            record.error = f"{type(err).__name__}: {err}"
            self._tick(record)
            return
        record.latency_s = loop.time() - start - planned.arrival_s
        record.status = response.status_code
        if response.status_code == 200:
            record.error = None
            record.images = images_of(response.json())
        else:
            record.error, record.error_code = error_of(response)
        self._tick(record)

    def _tick(self, record: RequestRecord) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if record.status != 200:
            self.bar.set_postfix_str(f"last error {record.status}", refresh=False)


async def wait_or_stop(
    tasks: list[asyncio.Task], stop: asyncio.Event, timeout_s: float | None = None,
) -> bool:
    """Wait for `tasks` until all are done, `stop` is set or the timeout passes; cancel the
    rest. True when stopped."""
    stopper = asyncio.create_task(stop.wait())
    pending = set(tasks)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while pending and not stop.is_set():
                _, pending = await asyncio.wait(
                    pending | {stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopper)
    for task in (*pending, stopper):
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    return stop.is_set()


def progress_bar(total: int, enabled: bool, desc: str, unit: str):  # noqa: ANN201 - tqdm | None
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, mininterval=0.5)
