"""The remote (cloud) tier: any OpenAI-compatible images endpoint, called over HTTP with httpx.

Each call has a per-attempt timeout and is retried with exponential backoff on timeouts,
connection errors, 429 and 5xx. A circuit breaker stops calling a cloud that keeps failing: after
`breaker_failures` consecutive failed calls it opens for `breaker_reset_s`, then lets one trial
call through (half-open). Every call is accounted (calls, failures, cost per tenant). A failure
raises `CloudUnavailable`, which the caller turns into an edge fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from argus.config import RoutingConfig

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 5.0
# Fields of the OpenAI images API forwarded to the cloud (a provider may reject unknown ones).
OPENAI_FIELDS = ("prompt", "n", "size", "quality", "user", "style")


class CloudUnavailable(Exception):
    """The cloud did not produce images: down, slow, failing, or the breaker is open."""


class CloudRejected(CloudUnavailable):
    """The cloud is up but refused this request (a 4xx): not counted against the breaker."""


class CircuitBreaker:
    """closed -> (n consecutive failures) -> open -> (reset_s) -> half-open -> one trial."""

    def __init__(self, failures: int, reset_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = failures
        self.reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.opened_count = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive, self._opened_at, self._trial_in_flight = 0, None, False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial_in_flight or self._consecutive >= self.failures_to_open:
            if self._opened_at is None or self._trial_in_flight:
                self.opened_count += 1
            self._opened_at, self._trial_in_flight = self._clock(), False


@dataclass
class CloudUsage:
    """Accounting of cloud calls (a call = one request, however many retries it took)."""

    calls: int = 0
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    skipped_open: int = 0
    cost: float = 0.0
    cost_by_tenant: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {"calls": self.calls, "succeeded": self.succeeded, "failed": self.failed,
                "attempts": self.attempts, "skipped_breaker_open": self.skipped_open,
                "cost": self.cost, "cost_by_tenant": dict(self.cost_by_tenant)}


class CloudClient:
    """Async client of a remote OpenAI-compatible `/images/generations` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        breaker: CircuitBreaker | None = None,
        cost_per_call: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self.cost_per_call = cost_per_call
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(3, 30.0)
        self.usage = CloudUsage()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                       headers=headers, transport=transport)

    @classmethod
    def from_config(cls, config: RoutingConfig, api_key: str | None = None) -> CloudClient:
        if not config.cloud_url:
            raise ValueError("routing.cloud_url is not set: no cloud tier to call")
        return cls(config.cloud_url, config.cloud_model, api_key, config.timeout_s,
                   config.retries, config.backoff_s,
                   CircuitBreaker(config.breaker_failures, config.breaker_reset_s),
                   config.cost_per_call)

    def request_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI request sent to the cloud: images always come back inline."""
        out = {k: body[k] for k in OPENAI_FIELDS if body.get(k) is not None}
        out["response_format"] = "b64_json"
        if self.model:
            out["model"] = self.model
        return out

    async def generate(self, body: dict[str, Any], tenant: str = "default") -> dict[str, Any]:
        """POST the request; the cloud's JSON response, or `CloudUnavailable` with the reason."""
        if not self.breaker.allow():
            self.usage.skipped_open += 1
            raise CloudUnavailable("circuit breaker open after repeated cloud failures")
        self.usage.calls += 1
        try:
            response = await self._post_with_retries(self.request_body(body))
        except CloudRejected:
            self.usage.failed += 1
            self.breaker.record_success()  # it answered: it is up
            raise
        except CloudUnavailable:
            self.usage.failed += 1
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        self.usage.succeeded += 1
        self.usage.cost += self.cost_per_call
        self.usage.cost_by_tenant[tenant] = (
            self.usage.cost_by_tenant.get(tenant, 0.0) + self.cost_per_call
        )
        return response

    async def _post_with_retries(self, payload: dict[str, Any]) -> dict[str, Any]:
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)))
            self.usage.attempts += 1
            try:
                # httpx's timeouts bound each phase; this bounds the whole attempt.
                async with asyncio.timeout(self.timeout_s):
                    response = await self._http.post("/images/generations", json=payload)
            except (httpx.TimeoutException, TimeoutError):
                last = f"cloud timed out after {self.timeout_s}s"
                continue
            except httpx.TransportError as err:
                last = f"cloud unreachable ({type(err).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"cloud answered {response.status_code}"
                continue
            return _parse_success(response)
        raise CloudUnavailable(f"{last} ({self.retries + 1} attempts)")

    async def aclose(self) -> None:
        await self._http.aclose()


def _parse_success(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise CloudRejected(f"cloud rejected the request: {response.status_code} "
                            f"{response.text[:200]}")
    try:
        data = response.json()
    except ValueError:
        raise CloudUnavailable("cloud answered with a body that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list) or not data["data"]:
        raise CloudUnavailable("cloud answered without images (`data` missing or empty)")
    return data
