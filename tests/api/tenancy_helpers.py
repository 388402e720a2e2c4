"""API keys for the tenancy tests, and a workerless runtime that holds some requests (so they
can be seen, cancelled and counted) and answers the rest at once."""

from __future__ import annotations

from typing import Any

import httpx
from api_helpers import api_config
from edge_helpers import InstantRuntime
from live_server import LiveServer

from argus.api import create_app
from argus.api.auth import hash_key
from argus.runtime.base import GenerationCancelledError, GenerationRequest, JobHandle

KEY_A, KEY_B, KEY_ADMIN = "sk-test-tenant-a", "sk-test-tenant-b", "sk-test-operator"
KEYS = {
    hash_key(KEY_A): {"tenant": "tenant-a"},
    hash_key(KEY_B): {"tenant": "tenant-b"},
    hash_key(KEY_ADMIN): {"tenant": "ops", "admin": True},
}
HOLD = "hold me"
"""Requests with this prompt stay running until cancelled."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class HoldingRuntime(InstantRuntime):
    """`InstantRuntime`, but a request with prompt `HOLD` runs until cancelled; the snapshot
    lists the running ones' ids as the dispatcher's does."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, JobHandle] = {}
        self.is_ready = True
        self.reason: str | None = None

    async def submit(self, request: GenerationRequest) -> JobHandle:
        if request.prompt != HOLD:
            return await super().submit(request)
        self.submitted.append(request)
        handle = JobHandle(f"img-{len(self.submitted):020x}")
        self.held[handle.request_id] = handle
        return handle

    async def cancel(self, request_id: str) -> bool:
        handle = self.held.pop(request_id, None)
        if handle is None:
            return False
        handle.finish(error=GenerationCancelledError("cancelled"))
        return True

    def ready(self) -> bool:
        return self.is_ready

    def not_ready_reason(self) -> str | None:
        return None if self.is_ready else self.reason

    def snapshot(self) -> dict[str, Any]:
        running = sorted(self.held)
        last = running[-1] if running else None
        workers = {0: {"running": running}}
        return {"runtime": {"workers": workers, "by_id": dict.fromkeys(running, 1), "last": last}}


class TenantServer:
    """An Argus app with API keys over a `HoldingRuntime` on a live server."""

    def __init__(self, **server: object) -> None:
        self.runtime = HoldingRuntime()
        config = api_config(api_keys=KEYS, **server)
        self.server = LiveServer(create_app(config, runtime=self.runtime))
        self.url = self.server.wait_started()

    def client(self, key: str | None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, headers=bearer(key) if key else {})

    def close(self) -> None:
        self.server.stop()
