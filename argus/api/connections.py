"""Connection-level limits that uvicorn's h11 protocol lacks (issue #15, defect 4).

uvicorn arms its keep-alive timer only after a response, and any received byte disarms it: a
connection that sends nothing, or dribbles a header byte now and then, is kept forever, and
`limit_concurrency` answers 503 to requests but never refuses a connection, so idle sockets pile
up until the process runs out of file descriptors. `guarded_h11` adds the two missing bounds:

- the request line and headers must be complete within `header_timeout_s` of the connection
  opening (or of the previous response on a keep-alive connection), else it is closed;
- past `max_connections` open connections a new one is closed at once (no file descriptor is
  held for it), so open sockets stay bounded whatever clients do.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` with a header deadline and a hard cap on open connections."""

    header_timeout_s: float = 30.0
    max_connections: int | None = None
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            transport.abort()  # over the cap: free the descriptor now
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's headers get the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        """Close unless a request is in progress (its headers arrived; the body has its own
        deadline, `argus.api.edge.BodyGuard`)."""
        self._header_deadline = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


def guarded_h11(header_timeout_s: float, max_connections: int | None) -> type[H11Protocol]:
    """The h11 protocol class for uvicorn's `http` option, with these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout_s": header_timeout_s, "max_connections": max_connections,
    })
