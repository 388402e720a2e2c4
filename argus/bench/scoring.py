"""Scoring off the clock: every returned image against its prompt with the shapes scorer, and
its relative quality against the full-level image of the same prompt, seed and size.

The references come from the same server, pinned to its full level (`quality: "high"`: no
approximation, the plane's full level), after the timed run, a few at a time. Their scores are
cached on disk per server model config (the `/v1/models` answer) and scorer version.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from argus.bench.loadgen import (
    GENERATIONS,
    ImageResult,
    RequestRecord,
    error_of,
    images_of,
    new_client,
    progress_bar,
    stop_on_sigint,
    wait_or_stop,
)

REFERENCE_ATTEMPTS = 8
REFERENCE_TIMEOUT_S = 300.0


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "argus-bench"


def decode_png(b64: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        return np.asarray(image.convert("RGB"))


def score_png(b64: str, prompt: str) -> float:
    from argus.shapes.scorer import score

    return score(decode_png(b64), prompt).score


def score_images(records: Iterable[RequestRecord]) -> int:
    """Score every returned image in place (dropping its PNG); returns how many."""
    count = 0
    for record in records:
        for image in record.images:
            if image.png_b64:
                image.score = score_png(image.png_b64, record.prompt)
                image.png_b64 = ""
                count += 1
    return count


def server_key(models: dict) -> str:
    """Hash of the server's model config and of the scorer's source."""
    import argus.shapes.scorer as scorer

    blob = json.dumps(models, sort_keys=True).encode() + Path(scorer.__file__).read_bytes()
    return hashlib.sha256(blob).hexdigest()[:20]


@dataclass(frozen=True)
class Reference:
    score: float
    level: str | None


class ReferenceCache:
    """Full-level reference scores on disk: one JSON file per server key."""

    def __init__(self, root: Path, key: str) -> None:
        self.path = root / f"references-{key}.json"
        self.entries: dict[str, dict] = self._read()

    @staticmethod
    def key(prompt: str, seed: int, size: str) -> str:
        return f"{size}|{seed}|{prompt}"

    def _read(self) -> dict[str, dict]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def get(self, key: str) -> Reference | None:
        entry = self.entries.get(key)
        return None if entry is None else Reference(entry["score"], entry.get("level"))

    def put(self, key: str, reference: Reference) -> None:
        self.entries[key] = {"score": reference.score, "level": reference.level}

    def save(self) -> None:
        """Merge with what another run may have written meanwhile, then replace atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**self._read(), **self.entries}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=0, sort_keys=True))
        tmp.replace(self.path)


def reference_body(prompt: str, seed: int, size: str) -> dict:
    body = {"prompt": prompt, "seed": seed, "n": 1, "quality": "high",
            "response_format": "b64_json"}
    if size:
        body["size"] = size
    return body


async def fetch_reference(
    client: httpx.AsyncClient, prompt: str, seed: int, size: str,
) -> Reference:
    """Generate at the full level and score; retries while the server is overloaded."""
    for _ in range(REFERENCE_ATTEMPTS):
        response = await client.post(GENERATIONS, json=reference_body(prompt, seed, size))
        if response.status_code == 200:
            image = images_of(response.json())[0]
            return Reference(score_png(image.png_b64, prompt), image.level)
        message, _ = error_of(response)
        if response.status_code not in (429, 503):
            raise RuntimeError(f"reference request failed ({response.status_code}): {message}")
        await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
    raise RuntimeError(f"reference request still rejected after {REFERENCE_ATTEMPTS} tries")


def needed(records: Iterable[RequestRecord]) -> dict[str, tuple[str, int, str]]:
    """Cache key -> (prompt, seed, size) of every returned image."""
    return {
        ReferenceCache.key(r.prompt, im.seed, im.size): (r.prompt, im.seed, im.size)
        for r in records for im in r.images
    }


async def fill_references(
    cache: ReferenceCache, url: str, wanted: dict[str, tuple[str, int, str]],
    concurrency: int = 4, progress: bool = False,
) -> list[str]:
    """Fetch the references missing from `cache` (Ctrl-C stops early); returns the errors."""
    missing = [k for k in wanted if cache.get(k) is None]
    errors: list[str] = []
    if not missing:
        return errors
    gate = asyncio.Semaphore(concurrency)
    bar = progress_bar(len(missing), progress, "references", "img")
    stop = asyncio.Event()

    async def one(key: str, client: httpx.AsyncClient) -> None:
        async with gate:
            if stop.is_set():
                return
            try:
                cache.put(key, await fetch_reference(client, *wanted[key]))
            except (httpx.HTTPError, RuntimeError) as err:
                errors.append(f"{type(err).__name__}: {err}")
        if bar is not None:
            bar.update(1)

    async with new_client(url, REFERENCE_TIMEOUT_S, concurrency) as client:
        with stop_on_sigint(stop):
            tasks = [asyncio.create_task(one(k, client)) for k in missing]
            await wait_or_stop(tasks, stop)
    if bar is not None:
        bar.close()
    return errors


def apply_references(records: Iterable[RequestRecord], cache: ReferenceCache) -> int:
    """Set each scored image's reference and relative quality; returns how many got one."""
    from argus.profiling import relative_quality

    count = 0
    for record in records:
        for image in record.images:
            reference = cache.get(ReferenceCache.key(record.prompt, image.seed, image.size))
            if reference is None or image.score is None:
                continue
            _set_reference(image, reference, relative_quality(image.score, reference.score))
            count += 1
    return count


def _set_reference(image: ImageResult, reference: Reference, relative: float) -> None:
    image.reference_score = reference.score
    image.reference_level = reference.level
    image.relative_quality = relative
