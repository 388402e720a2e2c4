"""Fair sharing under overload: one tenant's flood cannot starve another tenant's requests.

Admission itself is first come, first served: a tenant that floods fills the queue (or the
deadline-feasible work) and every later request, whoever sends it, is refused. So when the
runtime refuses a request (queue full, or no level can meet its deadline) of a tenant holding
no more than its fair share of the images queued or running (an equal split between the tenants
that have any, the asker included), the tenant most over its share gives way: its newest
still-queued request is ended with 429 `fair_share_exceeded` and the refused request is tried
again (a few times at most). Work-conserving: a tenant alone may use all of the capacity; it
is displaced only by another tenant's arrival. Running requests are never displaced.

Needs a runtime that can say whether a request is still queued (`request_of`, as
`argus.runtime.dispatcher.Dispatcher` has); with any other runtime it only keeps the books.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argus.runtime.base import GenerationRequest, JobHandle, Overloaded, Runtime
from argus.types import Rejection, RequestStatus

DISPLACING_REJECTIONS = frozenset({"queue_full", "overloaded"})
"""Error codes of runtime refusals that displacing queued work can cure (the queue's room and
the deadline-feasible work; not e.g. a shutdown or a missing worker)."""
MAX_DISPLACED = 4
"""Queued requests displaced for one arrival at most (each frees its images and its work)."""


@dataclass
class _Live:
    """One of a tenant's requests that is queued or running."""

    images: int
    handle: JobHandle
    admitted_s: float


class FairShare:
    """Per-tenant books of the requests queued or running, and the displacement rule."""

    def __init__(self, slo_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.slo_s = slo_s
        self.clock = clock
        self._live: dict[str, OrderedDict[str, _Live]] = {}
        """tenant -> its live requests, oldest first."""
        self.displaced = 0
        """Requests displaced so far (for tests and /metrics-style reporting)."""

    # -- books ----------------------------------------------------------------------------

    def images(self, tenant: str) -> int:
        return sum(live.images for live in self._live.get(tenant, {}).values())

    def count(self, tenant: str) -> int:
        return len(self._live.get(tenant, ()))

    def admitted(self, tenant: str, handle: JobHandle, images: int) -> None:
        live = _Live(images, handle, self.clock())
        self._live.setdefault(tenant, OrderedDict())[handle.request_id] = live

    def ended(self, tenant: str, request_id: str) -> None:
        mine = self._live.get(tenant)
        if mine is not None:
            mine.pop(request_id, None)
            if not mine:
                del self._live[tenant]

    def oldest_ends_in_s(self, tenant: str) -> float:
        """Seconds until the tenant's oldest live request is due (its deadline: answered or
        expired by then, freeing its slot), at least 1; the SLO if it has none."""
        mine = self._live.get(tenant)
        if not mine:
            return self.slo_s
        oldest = next(iter(mine.values()))
        return max(1.0, oldest.admitted_s + self.slo_s - self.clock())

    # -- the rule -------------------------------------------------------------------------

    def fair_share(self, asker: str, images: int) -> float:
        """Images each tenant may hold of what would be live with the asker's request in."""
        total = sum(self.images(t) for t in self._live) + images
        tenants = len(self._live) + (asker not in self._live)
        return total / tenants

    def victim(self, asker: str, images: int) -> str | None:
        """The tenant most over its fair share, if the asker is within its own."""
        share = self.fair_share(asker, images)
        if self.images(asker) + images > share:
            return None
        over = [(self.images(t) - share, t) for t in self._live if t != asker]
        over = [(excess, t) for excess, t in over if excess > 0]
        return max(over)[1] if over else None

    async def submit(self, runtime: Runtime, spec: GenerationRequest) -> JobHandle:
        """`runtime.submit`; if refused and the asker is within its share, displace the newest
        queued requests of the tenant most over its share and try again."""
        for _ in range(MAX_DISPLACED + 1):
            try:
                return await runtime.submit(spec)
            except Overloaded as refused:
                if refused.code not in DISPLACING_REJECTIONS or not await self._displace(
                    runtime, spec, refused
                ):
                    raise
        return await runtime.submit(spec)

    async def _displace(
        self, runtime: Runtime, spec: GenerationRequest, refused: Overloaded
    ) -> bool:
        """End one queued request of the tenant most over its share; False if there is none."""
        victim = self.victim(spec.tenant, spec.n)
        request_of: Callable[[str], Any] | None = getattr(runtime, "request_of", None)
        if victim is None or request_of is None:
            return False
        for request_id in reversed(self._live[victim]):  # newest first
            request = request_of(request_id)
            if request is None or request.status != RequestStatus.QUEUED:
                continue
            share = self.fair_share(spec.tenant, spec.n)
            error = Overloaded.of(Rejection.QUEUE_FULL, (
                f"displaced by another tenant's request: tenant {victim!r} held "
                f"{self.images(victim)} of the images queued or running, over its fair share "
                f"of {share:.1f} (an equal split between the tenants with requests in)"
            ), refused.retry_after_s)
            error.code = "fair_share_exceeded"
            self._live[victim][request_id].handle.finish(error=error)  # before the cancel's 409
            await runtime.cancel(request_id)
            self.ended(victim, request_id)
            self.displaced += 1
            return True
        return False
