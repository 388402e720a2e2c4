"""Nearest-neighbour index of prompt embeddings for one cache partition.

Vectors are L2-normalised, so inner product = cosine similarity. Every vector lives in one row
of `_vectors` (row = position = faiss id). The rows split in two:

- **main** `[0, main_len)`: an approximate faiss index (IVF-flat by default, or HNSW), absent
  while the partition is smaller than `hnsw_threshold`;
- **buffer** `[main_len, total)`: the newest rows, searched exactly (brute force over the rows
  themselves, no copy). Below `hnsw_threshold` the whole partition is the buffer, i.e. exact.

A search asks both and merges by score. An add only appends a row, so it never waits for an
index build. A background thread (one per index, started on demand, gone when idle) does the
slow work on snapshots outside the lock:

- **build**: the first switch to the main index, a compaction (tombstones piling up), and an
  IVF retrain once the partition has grown `_RETRAIN_GROWTH` times past the size its lists
  were trained for. Rows added meanwhile stay in the buffer; the lock is held for the swap.
- **merge**: once the buffer holds `buffer_size` rows they move into the main index. For IVF
  the list assignment is computed outside the lock; inside it the rows are only appended to
  their lists. HNSW has to insert into the graph under the lock, in small chunks.

Removals are tombstones (neither index can delete cheaply): searches ask for extra neighbours
and skip dead ones, and the index is compacted once dead vectors pile up.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Literal

import faiss
import numpy as np

log = logging.getLogger(__name__)

IndexKind = Literal["ivf", "hnsw"]

# Compact once this many vectors, and this share of the index, are tombstones.
_MIN_DEAD_TO_COMPACT = 32
_DEAD_SHARE_TO_COMPACT = 0.1
_MAX_EXTRA_NEIGHBOURS = 256
# IVF: lists are sized for the partition at training time; retrain once it is this much bigger.
_RETRAIN_GROWTH = 4.0
# IVF training: this many sample vectors per list (faiss wants >= 39), k-means iterations.
_TRAIN_PER_LIST = 40
_TRAIN_ITERATIONS = 10
# IVF coarse quantizer: HNSW over the centroids from this many lists on (exact below; an
# exact scan of 4096 centroids costs ~0.05 ms and keeps the quantizer out of the recall loss).
_HNSW_QUANTIZER_FROM = 16384
# HNSW merges insert this many rows per lock hold.
_HNSW_MERGE_CHUNK = 64


def ivf_lists(n: int, nlist: int = 0) -> int:
    """Inverted lists for `n` vectors: `nlist` if set, else 4·√n rounded to a power of two
    (1M -> 4096, 100k -> 1024, 20k -> 512), and never fewer than 39 training points a list."""
    if nlist <= 0:
        nlist = 2 ** round(math.log2(max(4.0 * math.sqrt(n), 1.0)))
    return int(max(1, min(nlist, n // 39)))


class VectorIndex:
    """Maps string ids to unit vectors; `search` returns (id, cosine) best first."""

    def __init__(
        self,
        dim: int,
        hnsw_threshold: int,
        hnsw_m: int = 16,
        ef_search: int = 64,
        ef_construction: int = 40,
        *,
        kind: IndexKind = "ivf",
        nprobe: int = 16,
        nlist: int = 0,
        buffer_size: int = 4096,
        background: bool = True,
    ):
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.kind: IndexKind = kind
        self.nprobe = nprobe
        self.nlist = nlist
        self.buffer_size = buffer_size
        self.background = background
        self._lock = threading.Lock()
        self._main: faiss.Index | None = None
        self._main_len = 0  # rows [0, _main_len) are in _main; the rest is the exact buffer
        self._trained_for = 0  # alive vectors the main index was built for
        self._vectors = np.empty((0, dim), dtype=np.float32)  # row = faiss position
        self._ids: list[str] = []
        self._position: dict[str, int] = {}
        self._dead: set[int] = set()
        self._touched: set[str] | None = None  # ids added or removed during a rebuild
        self._busy = False  # a maintenance run (background thread or `maintain`) is on
        self._idle = threading.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._position)

    @property
    def stage(self) -> str:
        """`flat` (exact), `ivf` or `hnsw`: what the main index is now."""
        return "flat" if self._main is None else self.kind

    @property
    def is_hnsw(self) -> bool:
        return self.stage == "hnsw"

    @property
    def is_approximate(self) -> bool:
        return self._main is not None

    @property
    def buffered(self) -> int:
        """Rows searched exactly (not yet in the main index)."""
        return len(self._ids) - self._main_len

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            start = len(self._ids)
            self._vectors = _append_rows(self._vectors, start, vectors)
            for offset, entry_id in enumerate(ids):
                self._ids.append(entry_id)
                replaced = self._position.get(entry_id)
                if replaced is not None:
                    self._dead.add(replaced)
                self._position[entry_id] = start + offset
            if self._touched is not None:
                self._touched.update(ids)
        self._kick()

    def remove(self, entry_id: str) -> bool:
        with self._lock:
            position = self._position.pop(entry_id, None)
            if position is None:
                return False
            self._dead.add(position)
            if self._touched is not None:
                self._touched.add(entry_id)
        self._kick()
        return True

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            total = len(self._ids)
            # Extra neighbours stand in for tombstones; capped so a backlog of removals
            # cannot blow up the search (compaction clears it soon after).
            want = k + min(len(self._dead), _MAX_EXTRA_NEIGHBOURS)
            hits: list[tuple[float, int]] = []
            if self._main is not None and self._main_len:
                n = min(want, self._main_len)
                scores, positions = self._main.search(query, n, params=self._params(n))
                hits += zip(scores[0].tolist(), positions[0].tolist(), strict=True)
            if total > self._main_len:
                rows = self._vectors[self._main_len : total]
                n = min(want, len(rows))
                scores, positions = faiss.knn(query, rows, n, metric=faiss.METRIC_INNER_PRODUCT)
                hits += ((s, self._main_len + p) for s, p in
                         zip(scores[0].tolist(), positions[0].tolist(), strict=True))
            hits.sort(key=lambda hit: -hit[0])
            found = [
                (self._ids[p], float(s)) for s, p in hits if p >= 0 and p not in self._dead
            ]
        return found[:k]

    def _params(self, n: int) -> faiss.SearchParameters:
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(self.ef_search, n))
        return faiss.SearchParametersIVF(nprobe=self.nprobe)

    # ---- maintenance -----------------------------------------------------------------------

    def maintain(self) -> None:
        """Do whatever build, compaction or merge is due, in this thread (waits for one already
        running in the background). Never call it from a lookup."""
        if self._claim():
            self._maintenance_loop()
        else:
            self.wait()
            if self._claim():
                self._maintenance_loop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no maintenance is running; False on timeout."""
        return self._idle.wait(timeout)

    def _kick(self) -> None:
        if not self._claim():
            return
        if not self.background:
            self._maintenance_loop()
            return
        thread = threading.Thread(target=self._maintenance_loop, name="argus-cache-index",
                                  daemon=True)
        thread.start()

    def _claim(self) -> bool:
        with self._lock:
            if self._busy or self._due() is None:
                return False
            self._busy = True
            self._idle.clear()
            return True

    def _due(self) -> str | None:
        """The maintenance due now (call with the lock held)."""
        alive, dead, total = len(self._position), len(self._dead), len(self._ids)
        if dead >= max(_MIN_DEAD_TO_COMPACT, _DEAD_SHARE_TO_COMPACT * total):
            return "build"
        if self._main is None:
            return "build" if alive >= self.hnsw_threshold else None
        if self.kind == "ivf" and alive >= _RETRAIN_GROWTH * self._trained_for:
            return "build"
        if total - self._main_len >= self.buffer_size:
            return "merge"
        return None

    def _maintenance_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    job = self._due()
                    if job is None:
                        self._busy = False
                        self._idle.set()
                        return
                if job == "build":
                    self._rebuild()
                else:
                    self._merge()
        except Exception:  # a failed build leaves the old index serving
            log.exception("cache index maintenance failed")
            with self._lock:
                self._busy = False
                self._idle.set()

    def _build(self, vectors: np.ndarray) -> faiss.Index | None:
        n = len(vectors)
        if n < self.hnsw_threshold or n == 0:
            return None  # exact: all rows stay in the buffer
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
            index.add(vectors)
            return index
        nlist = ivf_lists(n, self.nlist)
        if nlist >= _HNSW_QUANTIZER_FROM:
            quantizer = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            quantizer.hnsw.efConstruction = 80
            quantizer.hnsw.efSearch = 64
        else:
            quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = _TRAIN_ITERATIONS
        clustering = faiss.IndexFlatIP(self.dim)  # exact k-means assignment (BLAS)
        index.clustering_index = clustering  # a raw pointer: `clustering` must outlive train
        sample = min(n, _TRAIN_PER_LIST * nlist)
        rows = np.random.default_rng(0).choice(n, sample, replace=False) if sample < n else None
        index.train(vectors if rows is None else vectors[np.sort(rows)])
        index.clustering_index = None
        del clustering
        index.add(vectors)
        return index

    def _rebuild(self) -> None:
        # The lock is held for copies of the bookkeeping only; everything O(n) beyond that
        # (sorting, gathering rows, the build, the new position map) runs outside it. Rows below
        # `snapshot_len` never change in place, so the old row array can be read unlocked.
        with self._lock:
            snapshot_len = len(self._ids)
            position = dict(self._position)
            snapshot_ids = self._ids[:snapshot_len]
            rows = self._vectors
            self._touched = set()
        keep = np.fromiter(sorted(position.values()), dtype=np.int64, count=len(position))
        ids = [snapshot_ids[p] for p in keep]
        headroom = max(2 * self.buffer_size, len(keep) // 4, 64)
        vectors = np.empty((len(keep) + headroom, self.dim), dtype=np.float32)
        vectors[: len(keep)] = rows[keep]
        del rows, position, snapshot_ids
        index = self._build(vectors[: len(keep)])  # the slow part
        new_position = {entry_id: p for p, entry_id in enumerate(ids)}
        base = len(ids)
        with self._lock:
            # Replay what happened during the build: later adds, removals and replacements.
            touched, self._touched = self._touched, None
            total = len(self._ids)
            late_ids = self._ids[snapshot_len:total]
            vectors = _append_rows(vectors, base, self._vectors[snapshot_len:total])
            dead = set()
            for entry_id in touched:
                kept = new_position.pop(entry_id, None)
                if kept is not None:  # removed or re-added since the snapshot
                    dead.add(kept)
                now = self._position.get(entry_id)
                if now is not None and now >= snapshot_len:
                    new_position[entry_id] = base + now - snapshot_len
            dead.update(base + j for j, entry_id in enumerate(late_ids)
                        if new_position.get(entry_id) != base + j)
            self._main = index
            self._main_len = base if index is not None else 0
            self._trained_for = base if index is not None else 0
            self._vectors = vectors
            ids.extend(late_ids)
            self._ids = ids
            self._position = new_position
            self._dead = dead

    def _merge(self) -> None:
        """Move the buffer into the main index (only this thread changes `_main`)."""
        with self._lock:
            main, start, end = self._main, self._main_len, len(self._ids)
            rows = self._vectors[start:end].copy()
        if main is None or end <= start:
            return
        if isinstance(main, faiss.IndexIVF):
            lists = np.ascontiguousarray(main.quantizer.assign(rows, 1).ravel())
            ids = np.arange(start, end, dtype=np.int64)
            with self._lock:
                main.add_core(len(rows), faiss.swig_ptr(rows), faiss.swig_ptr(ids),
                              faiss.swig_ptr(lists))
                self._main_len = end
            return
        for at in range(0, len(rows), _HNSW_MERGE_CHUNK):
            chunk = rows[at : at + _HNSW_MERGE_CHUNK]
            with self._lock:
                main.add(chunk)
                self._main_len = start + at + len(chunk)

    def memory_bytes(self) -> int:
        """Bytes of the faiss index plus the vector rows (the buffer and the copy kept for
        rebuilds)."""
        with self._lock:
            main = 0 if self._main is None else int(faiss.serialize_index(self._main).nbytes)
            return main + self._vectors.nbytes


def _append_rows(buffer: np.ndarray, used: int, rows: np.ndarray) -> np.ndarray:
    """Append with amortised doubling; `used` rows of `buffer` are valid."""
    need = used + len(rows)
    if need > len(buffer):
        grown = np.empty((max(need, 2 * len(buffer), 64), buffer.shape[1]), dtype=np.float32)
        grown[:used] = buffer[:used]
        buffer = grown
    buffer[used:need] = rows
    return buffer
