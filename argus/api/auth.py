"""API keys, tenants and per-tenant limits.

Off unless `server.api_keys` lists keys (by SHA-256 digest, `argus hash-key KEY`): then every
route but `PUBLIC_PATHS` needs `Authorization: Bearer KEY` (what the OpenAI client sends) and
answers 401 without a valid one. The key names the tenant; the request's `user` field is then
only a label. What a tenant starts is its own: its request ids (DELETE .../{id} of another
tenant's is a 404, /v1/cluster hides them unless the key is `admin`), its image URLs (404 for
another tenant) and, since the runtime's `GenerationRequest.tenant` is the key's tenant, its
approximate-cache namespace.

Limits, with or without keys (without, the tenant is the `user` label, so they are advisory):
`server.tenant_rate_rps` (token bucket of `tenant_rate_burst`) and `server.tenant_max_queued`
(requests queued or running), both answered 429 with Retry-After; and fair sharing under
overload (`argus.api.fairness`: a tenant within its share displaces the newest queued request of
the tenant most over its share).

The principal of the request being served lives in a context variable set by `AuthGuard`
(`current_tenant`), so that e.g. the image store can tag and check images without threading it
through every call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from argus.api.errors import error_response
from argus.api.fairness import FairShare
from argus.config import ArgusConfig
from argus.runtime.base import GenerationRequest, JobHandle, Overloaded, Runtime

PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Open without a key (probes and scrapers); they show no tenant's data."""
REQUEST_ID = re.compile(r"img-[0-9a-f]{20}")
"""How `argus.types.new_request_id` ids look (for hiding them in /v1/cluster)."""
HIDDEN = "<another tenant's request>"
TENANTS_TRACKED = 10_000
"""Rate-limit buckets kept (least recently used dropped: a forgotten tenant starts full)."""


def hash_key(key: str) -> str:
    """The digest `server.api_keys` lists a key under."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for; `tenant` None = no keys configured (anyone, as before)."""

    tenant: str | None = None
    admin: bool = False


ANONYMOUS = Principal()
_current: ContextVar[Principal] = ContextVar("argus_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    return _current.get()


def current_tenant() -> str | None:
    """The authenticated tenant of the request being served (None without keys)."""
    return _current.get().tenant


class TenantLimited(Overloaded):
    """Over the tenant's rate or queue quota: 429 + Retry-After."""

    def __init__(self, reason: str, retry_after_s: float, code: str) -> None:
        super().__init__(reason, retry_after_s=retry_after_s, status_code=429, code=code)


class TokenBuckets:
    """One token bucket per key: `rate` tokens/s up to `burst`."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > TENANTS_TRACKED:
            self._buckets.popitem(last=False)
        return wait


class TenantAuth:
    """Keys -> principals, request ownership, and the per-tenant limits."""

    def __init__(self, config: ArgusConfig) -> None:
        server = config.server
        self.keys = dict(server.api_keys)
        self.enabled = bool(self.keys)
        rate = server.tenant_rate_rps
        self.buckets = (
            TokenBuckets(rate, server.tenant_rate_burst or max(1.0, rate)) if rate > 0 else None
        )
        self.max_queued = server.tenant_max_queued
        self._owners: dict[str, str] = {}
        """Live (queued or running) request id -> its tenant."""
        self._in_flight: dict[str, int] = {}
        """Requests submitted and not yet ended per tenant (including ones being admitted)."""
        self.fair = FairShare(server.slo_s or 5.0)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer KEY` header, None if not a valid key."""
        scheme, _, key = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        entry = self.keys.get(hash_key(key.strip()))
        return None if entry is None else Principal(entry.tenant, entry.admin)

    # -- generation -----------------------------------------------------------------------

    def scoped(self, spec: GenerationRequest) -> GenerationRequest:
        """With keys, the request runs as the key's tenant (cache namespace included)."""
        tenant = current_tenant()
        return spec if tenant is None else dataclasses.replace(spec, tenant=tenant)

    async def submit(self, runtime: Runtime, spec: GenerationRequest) -> JobHandle:
        """`runtime.submit` within the tenant's limits (`TenantLimited` past them); the request
        is the tenant's until it ends."""
        tenant = spec.tenant
        queued = self._in_flight.get(tenant, 0)
        if self.max_queued and queued >= self.max_queued:  # retry when its oldest is due
            raise TenantLimited(
                f"tenant {tenant!r} has {queued} requests queued or running, its quota "
                f"(server.tenant_max_queued)", self.fair.oldest_ends_in_s(tenant),
                "tenant_queue_full",
            )
        if self.buckets is not None and (wait := self.buckets.take(tenant)) > 0:
            raise TenantLimited(
                f"tenant {tenant!r} is over its rate limit of {self.buckets.rate:g} requests/s "
                "(server.tenant_rate_rps)", wait, "rate_limit_exceeded",
            )
        self._in_flight[tenant] = queued + 1  # held across the await: no quota race
        try:
            handle = await self.fair.submit(runtime, spec)
        except BaseException:
            self._release(tenant)
            raise
        request_id = handle.request_id
        self._owners[request_id] = tenant
        self.fair.admitted(tenant, handle, spec.n)
        handle.outcome.add_done_callback(lambda _: self._ended(request_id, tenant))
        return handle

    def _ended(self, request_id: str, tenant: str) -> None:
        self._owners.pop(request_id, None)
        self.fair.ended(tenant, request_id)
        self._release(tenant)

    def _release(self, tenant: str) -> None:
        left = self._in_flight.get(tenant, 0) - 1
        if left > 0:
            self._in_flight[tenant] = left
        else:
            self._in_flight.pop(tenant, None)

    # -- ownership ------------------------------------------------------------------------

    def may_cancel(self, request_id: str) -> bool:
        """Another tenant's request is as unknown as a finished one (admins may cancel any)."""
        principal = current_principal()
        if not self.enabled or principal.admin:
            return True
        return self._owners.get(request_id) == principal.tenant

    def visible(self, snapshot: Any) -> Any:
        """/v1/cluster as this principal may see it: other tenants' request ids hidden."""
        principal = current_principal()
        if not self.enabled or principal.admin:
            return snapshot
        return _hide(snapshot, lambda rid: self._owners.get(rid) == principal.tenant)


def _hide(value: Any, mine: Callable[[str], bool]) -> Any:
    """`value` with every request id that is not `mine` dropped (from lists and as keys) or
    replaced by `HIDDEN` (as a value)."""
    def foreign(item: Any) -> bool:
        return isinstance(item, str) and REQUEST_ID.fullmatch(item) is not None and not mine(item)

    if isinstance(value, dict):
        return {k: HIDDEN if foreign(v) else _hide(v, mine)
                for k, v in value.items() if not foreign(k)}
    if isinstance(value, list | tuple | set | frozenset):
        return [_hide(v, mine) for v in value if not foreign(v)]
    return value


class AuthGuard:
    """ASGI middleware: with keys configured, 401 for a request without a valid key (but on
    `PUBLIC_PATHS`); sets the request's principal for the routes (`current_principal`)."""

    def __init__(self, app: ASGIApp, auth: TenantAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        principal = self.auth.authenticate(Headers(scope=scope).get("authorization"))
        if principal is None and _route_path(scope) not in PUBLIC_PATHS:
            message = ("a valid API key is required: send `Authorization: Bearer KEY` "
                       "(keys are listed in server.api_keys)")
            response = error_response(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        token = _current.set(principal or ANONYMOUS)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    path = path[len(root):] if root and path.startswith(root) else path
    return path.rstrip("/") or "/"
