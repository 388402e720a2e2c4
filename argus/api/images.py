"""The image store behind `response_format: url` (`/v1/images/files/{id}.{ext}`).

Images live `ttl_s` (an hour). Capacity is per tenant (`server.image_store_per_tenant`): a
tenant's burst evicts only its own oldest images, never another's. Memory stays bounded by
`server.image_store_max_bytes` over all tenants (each image counts its bytes plus
`ENTRY_OVERHEAD`); past it expired images go first, then the oldest of the tenant holding the
most images. The bucket is the request's tenant (the key's, or without API keys the `user`
label); fetching checks the authenticated owner (`auth.current_tenant`, None without keys):
another tenant's image is not found.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from uuid import uuid4

from argus.api.auth import current_tenant

IMAGE_URL_TTL_S = 3600.0
ENTRY_OVERHEAD = 1024
"""Bytes each stored image is charged beyond its own (ids, dict slots): bounds the count too."""


@dataclass(slots=True)
class _Entry:
    expires: float
    data: bytes
    owner: str | None
    bucket: str

    @property
    def cost(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD


class ImageStore:
    """Stored images by id, per-tenant capacity, overall byte cap (see the module doc)."""

    def __init__(
        self, per_tenant: int = 256, max_bytes: int = 512 * 1024**2, ttl_s: float = IMAGE_URL_TTL_S
    ) -> None:
        self.per_tenant = per_tenant
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._all: OrderedDict[str, _Entry] = OrderedDict()
        """Every image, oldest first (one TTL: expired ones are at the front)."""
        self._buckets: dict[str, OrderedDict[str, None]] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._all)

    def count(self, bucket: str) -> int:
        return len(self._buckets.get(bucket, ()))

    def put(self, data: bytes, tenant: str | None = None) -> str:
        """Store `data` for `tenant` (default: the authenticated one, else "default")."""
        owner = current_tenant()
        bucket = tenant or owner or "default"
        now = time.monotonic()
        image_id = uuid4().hex
        entry = _Entry(now + self.ttl_s, data, owner, bucket)
        self._all[image_id] = entry
        self._buckets.setdefault(bucket, OrderedDict())[image_id] = None
        self.bytes += entry.cost
        mine = self._buckets[bucket]
        while len(mine) > self.per_tenant:
            self._drop(next(iter(mine)))
        if self.bytes > self.max_bytes:
            self._expire(now)
        while self.bytes > self.max_bytes and len(self._all) > 1:
            fullest = max(self._buckets.values(), key=len)
            self._drop(next(iter(fullest)))
        return image_id

    def get(self, image_id: str) -> bytes | None:
        entry = self._all.get(image_id)
        if entry is None or entry.owner != current_tenant():
            return None
        if entry.expires < time.monotonic():
            self._drop(image_id)
            return None
        return entry.data

    def _expire(self, now: float) -> None:
        while self._all:
            image_id, entry = next(iter(self._all.items()))
            if entry.expires >= now:
                return
            self._drop(image_id)

    def _drop(self, image_id: str) -> None:
        entry = self._all.pop(image_id)
        self.bytes -= entry.cost
        bucket = self._buckets[entry.bucket]
        del bucket[image_id]
        if not bucket:
            del self._buckets[entry.bucket]
