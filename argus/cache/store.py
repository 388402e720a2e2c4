"""On-disk latent store: one safetensors file per cached generation plus a small stats file.

`<root>/<namespace dir>/<entry id>.safetensors` holds the prompt embedding and the latents
captured before each stored step (`latents_k0005`, ...). Its header metadata carries everything
immutable about the entry and a SHA-256 over the tensors, checked on every load. Hit counts
change on every hit, so they live beside it in `<entry id>.json`, rewritten off the request path.
The prompt text itself is not stored: exact repeats match on its hash.

Anything unreadable (missing, truncated, checksum mismatch, bad header) raises `CorruptEntry`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

FORMAT = "argus-cache-v1"
ENTRY_SUFFIX = ".safetensors"
STATS_SUFFIX = ".json"
_EMBEDDING = "embedding"
_LATENTS_PREFIX = "latents_k"


class CorruptEntry(Exception):
    """The entry's files cannot be trusted; the cache drops the entry."""


@dataclass(slots=True)
class EntryMeta:
    """Everything the cache keeps in memory about one stored generation."""

    entry_id: str
    namespace: str
    tenant: str
    variant: str
    resolution: int
    steps: int
    guidance: float
    seed: int | None
    prompt_sha: str
    stored_steps: tuple[int, ...]
    created: float
    checksum: str = ""
    nbytes: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    """Hits served per K (LCBFU counts frequency per step skipped)."""
    last_access: float = 0.0

    @property
    def benefit(self) -> float:
        """LCBFU score: hit frequency weighted by the share of steps each hit saved."""
        return sum(count * k / self.steps for k, count in self.hits.items())

    def header(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "entry_id": self.entry_id,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "variant": self.variant,
            "resolution": str(self.resolution),
            "steps": str(self.steps),
            "guidance": repr(self.guidance),
            "seed": "" if self.seed is None else str(self.seed),
            "prompt_sha": self.prompt_sha,
            "stored_steps": json.dumps(list(self.stored_steps)),
            "created": repr(self.created),
            "checksum": self.checksum,
        }

    @classmethod
    def from_header(cls, header: dict[str, str]) -> EntryMeta:
        if header.get("format") != FORMAT:
            raise CorruptEntry(f"unknown format {header.get('format')!r}")
        return cls(
            entry_id=header["entry_id"],
            namespace=header["namespace"],
            tenant=header["tenant"],
            variant=header["variant"],
            resolution=int(header["resolution"]),
            steps=int(header["steps"]),
            guidance=float(header["guidance"]),
            seed=int(header["seed"]) if header["seed"] else None,
            prompt_sha=header["prompt_sha"],
            stored_steps=tuple(int(k) for k in json.loads(header["stored_steps"])),
            created=float(header["created"]),
            checksum=header["checksum"],
        )


def prompt_sha(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def namespace_dir(namespace: str) -> str:
    """A file-system-safe, fixed-length directory name for any tenant string."""
    return hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:24]


def entry_path(root: Path, meta: EntryMeta) -> Path:
    return root / namespace_dir(meta.namespace) / f"{meta.entry_id}{ENTRY_SUFFIX}"


def stats_path(path: Path) -> Path:
    return path.with_suffix(STATS_SUFFIX)


def _checksum(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_entry(
    root: Path, meta: EntryMeta, embedding: np.ndarray, latents: dict[int, np.ndarray]
) -> Path:
    """Write atomically (temp file + rename); fills meta.checksum and meta.nbytes."""
    tensors = {_EMBEDDING: np.ascontiguousarray(embedding, dtype=np.float32)}
    for k, array in latents.items():
        tensors[f"{_LATENTS_PREFIX}{k:04d}"] = np.ascontiguousarray(array)
    meta.checksum = _checksum(tensors)
    path = entry_path(root, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta.header())
    os.replace(tmp, path)
    meta.nbytes = path.stat().st_size
    write_stats(path, meta)
    return path


def _raw_header(path: Path) -> tuple[dict, int]:
    """The safetensors JSON header and where data starts, after checking the file is exactly
    as long as the header says (a truncated or padded file fails)."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CorruptEntry("truncated header")
        (header_len,) = struct.unpack("<Q", prefix)
        size = path.stat().st_size
        if header_len > size - 8:
            raise CorruptEntry("truncated header")
        header = json.loads(f.read(header_len))
    data_end = max(
        (t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"), default=0
    )
    if 8 + header_len + data_end != size:
        raise CorruptEntry(f"size {size} != {8 + header_len + data_end} the header declares")
    return header, 8 + header_len


def read_entry_meta(path: Path) -> tuple[EntryMeta, np.ndarray]:
    """Metadata and embedding, without verifying the latents (restart scan: cheap)."""
    try:
        header, data_start = _raw_header(path)
        meta = EntryMeta.from_header(header.get("__metadata__") or {})
        start, end = header[_EMBEDDING]["data_offsets"]
        with path.open("rb") as f:
            f.seek(data_start + start)
            embedding = np.frombuffer(f.read(end - start), dtype=np.float32).copy()
    except CorruptEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptEntry(f"{path.name}: {err}") from err
    if meta.entry_id != path.stem:
        raise CorruptEntry(f"{path.name}: header names entry {meta.entry_id!r}")
    meta.nbytes = path.stat().st_size
    read_stats(path, meta)
    return meta, embedding


def load_latents(path: Path, meta: EntryMeta) -> dict[int, np.ndarray]:
    """All stored latents of the entry, checksum-verified against the in-memory metadata."""
    try:
        _raw_header(path)
        tensors = load_file(str(path))
    except CorruptEntry:
        raise
    except Exception as err:  # safetensors raises its own error types on damaged files
        raise CorruptEntry(f"{path.name}: {err}") from err
    if _checksum(tensors) != meta.checksum:
        raise CorruptEntry(f"{path.name}: checksum mismatch")
    latents = {
        int(name[len(_LATENTS_PREFIX) :]): array
        for name, array in tensors.items()
        if name.startswith(_LATENTS_PREFIX)
    }
    if sorted(latents) != sorted(meta.stored_steps):
        raise CorruptEntry(f"{path.name}: stored steps {sorted(latents)} != header")
    return latents


def write_stats(path: Path, meta: EntryMeta) -> None:
    stats = {"hits": {str(k): v for k, v in meta.hits.items()}, "last_access": meta.last_access}
    tmp = stats_path(path).with_name(stats_path(path).name + ".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, stats_path(path))


def read_stats(path: Path, meta: EntryMeta) -> None:
    """Hit counts survive restarts; a lost stats file only resets them."""
    try:
        stats = json.loads(stats_path(path).read_text())
        meta.hits = {int(k): int(v) for k, v in stats["hits"].items()}
        meta.last_access = float(stats["last_access"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        meta.hits = {}
        meta.last_access = meta.created


def delete_entry(path: Path) -> None:
    for p in (path, stats_path(path)):
        p.unlink(missing_ok=True)
