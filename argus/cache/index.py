"""Nearest-neighbour index of prompt embeddings for one cache partition.

Vectors are L2-normalised, so inner product = cosine similarity. A partition starts as an exact
flat index and switches to HNSW once it holds `hnsw_threshold` vectors. Removals are tombstones
(HNSW cannot delete): searches ask for extra neighbours and skip dead ones, and the index is
compacted once dead vectors pile up. Rebuilds (the HNSW switch, compaction) run on a snapshot
outside the lock, so lookups keep using the old index meanwhile; the lock is only held for a
search, a single add, and the final swap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import faiss
import numpy as np

# Compact once this many vectors, and this share of the index, are tombstones.
_MIN_DEAD_TO_COMPACT = 32
_DEAD_SHARE_TO_COMPACT = 0.1
_MAX_EXTRA_NEIGHBOURS = 256


class VectorIndex:
    """Maps string ids to unit vectors; `search` returns (id, cosine) best first."""

    def __init__(
        self,
        dim: int,
        hnsw_threshold: int,
        hnsw_m: int = 16,
        ef_search: int = 64,
        ef_construction: int = 40,
    ):
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self._lock = threading.Lock()
        self._index: faiss.Index = faiss.IndexFlatIP(dim)
        self._vectors = np.empty((0, dim), dtype=np.float32)  # row = faiss position
        self._ids: list[str] = []
        self._position: dict[str, int] = {}
        self._dead: set[int] = set()

    def __len__(self) -> int:
        return len(self._position)

    @property
    def is_hnsw(self) -> bool:
        return isinstance(self._index, faiss.IndexHNSWFlat)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            start = len(self._ids)
            self._vectors = _append_rows(self._vectors, start, vectors)
            self._index.add(vectors)
            for offset, entry_id in enumerate(ids):
                self._ids.append(entry_id)
                replaced = self._position.get(entry_id)
                if replaced is not None:
                    self._dead.add(replaced)
                self._position[entry_id] = start + offset
        self.maintain()

    def remove(self, entry_id: str) -> bool:
        with self._lock:
            position = self._position.pop(entry_id, None)
            if position is None:
                return False
            self._dead.add(position)
            return True

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            total = self._index.ntotal
            # Extra neighbours stand in for tombstones; capped so a backlog of removals
            # cannot blow up the search (compaction clears it soon after).
            want = min(total, k + min(len(self._dead), _MAX_EXTRA_NEIGHBOURS))
            if want == 0:
                return []
            params = None
            if self.is_hnsw:
                params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, want))
            scores, positions = self._index.search(query, want, params=params)
            found = [
                (self._ids[p], float(s))
                for s, p in zip(scores[0], positions[0], strict=True)
                if p >= 0 and p not in self._dead
            ]
        return found[:k]

    def maintain(self) -> None:
        """Switch to HNSW or compact if due; call from a background thread, never a lookup."""
        with self._lock:
            alive = len(self._position)
            dead = len(self._dead)
            switch = not self.is_hnsw and alive >= self.hnsw_threshold
            compact = dead >= max(_MIN_DEAD_TO_COMPACT, _DEAD_SHARE_TO_COMPACT * (alive + dead))
        if switch or compact:
            self._rebuild()

    def _build(self, vectors: np.ndarray) -> faiss.Index:
        if len(vectors) >= self.hnsw_threshold:
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
        else:
            index = faiss.IndexFlatIP(self.dim)
        index.add(vectors)
        return index

    def _rebuild(self) -> None:
        with self._lock:
            snapshot_len = len(self._ids)
            keep = sorted(self._position.values())
            ids = [self._ids[p] for p in keep]
            vectors = self._vectors[keep].copy()
        index = self._build(vectors)  # the slow part, outside the lock
        with self._lock:
            # Replay what happened during the build: later adds, and removals of kept ids.
            late = range(snapshot_len, len(self._ids))
            late_ids = [self._ids[p] for p in late]
            if late_ids:
                index.add(self._vectors[snapshot_len : len(self._ids)])
            all_ids = ids + late_ids
            vectors = np.concatenate([vectors, self._vectors[snapshot_len : len(self._ids)]])
            self._index = index
            self._vectors = vectors
            self._ids = all_ids
            self._position = {
                entry_id: p
                for p, entry_id in enumerate(all_ids)
                if entry_id in self._position
            }
            self._dead = set(range(len(all_ids))) - set(self._position.values())

    def memory_bytes(self) -> int:
        """Bytes of the faiss index plus the vector copy kept for rebuilds."""
        with self._lock:
            return int(faiss.serialize_index(self._index).nbytes) + self._vectors.nbytes


def _append_rows(buffer: np.ndarray, used: int, rows: np.ndarray) -> np.ndarray:
    """Append with amortised doubling; `used` rows of `buffer` are valid."""
    need = used + len(rows)
    if need > len(buffer):
        grown = np.empty((max(need, 2 * len(buffer), 64), buffer.shape[1]), dtype=np.float32)
        grown[:used] = buffer[:used]
        buffer = grown
    buffer[used:need] = rows
    return buffer
