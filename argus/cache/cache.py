"""The approximate cache (contract D): find a stored latent a new request can resume from.

Lives in the API process. A lookup first tries an exact repeat (same prompt, seed, variant,
resolution, steps, guidance): that resumes from the deepest stored step whatever the load, since
the result equals the original image. Otherwise the prompt's embedding is searched among the
tenant's entries of the same variant, resolution and steps, and the similarity band gives K,
capped by the K the control plane allows. Full generations are stored asynchronously by one
writer thread, which also evicts (LCBFU) to stay within the byte budget.

Partitions: one `VectorIndex` per (namespace, variant, resolution, steps); the namespace is the
tenant unless `cache.shared_namespace` is set. A latent is only reused within its partition.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from prometheus_client import CollectorRegistry

from argus.cache.bands import band_k, capture_steps, deepest_at_most
from argus.cache.index import VectorIndex
from argus.cache.metrics import cache_metrics
from argus.cache.store import (
    ENTRY_SUFFIX,
    CorruptEntry,
    EntryMeta,
    delete_entry,
    entry_path,
    load_latents,
    prompt_sha,
    read_entry_meta,
    write_entry,
    write_stats,
)
from argus.config import ArgusConfig

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]
"""prompts -> (n, d) float32 L2-normalised embeddings (the engine's `embed_prompts`)."""


class EmbedderNotReady(RuntimeError):
    """The text encoder is still loading: similarity lookups miss, exact repeats still hit."""

_EMBED_MEMO = 1024  # prompts whose embedding is kept between lookup and store
_STATS_FLUSH_S = 2.0


class Partition(NamedTuple):
    namespace: str
    variant: str
    resolution: int
    steps: int


class ExactKey(NamedTuple):
    partition: Partition
    prompt_sha: str
    seed: int
    guidance: float


def _guidance_key(guidance: float) -> float:
    return round(float(guidance), 4)


@dataclass(frozen=True, slots=True)
class Generation:
    """What the cache needs to know of one image's generation."""

    prompt: str
    tenant: str
    variant: str
    resolution: int
    steps: int
    seed: int | None = None
    """Needed (with guidance) for exact repeats; None: similar-prompt reuse only."""
    guidance: float | None = None
    negative_prompt: str = ""
    """Part of an exact repeat's identity; similarity looks at the prompt only."""

    def partition(self, namespace: str) -> Partition:
        return Partition(namespace, self.variant, int(self.resolution), int(self.steps))

    @property
    def prompt_sha(self) -> str:
        text = self.prompt
        if self.negative_prompt:
            text = f"{text}\x00negative:{self.negative_prompt}"
        return prompt_sha(text)


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A verified cached entry a request can resume from at step `k`."""

    entry_id: str
    similarity: float
    k: int
    exact: bool
    latents_by_step: Mapping[int, np.ndarray]
    """Every stored step of the entry, loaded and checksum-verified at lookup."""

    @property
    def latents(self) -> np.ndarray:
        """The latents before step `k`: the engine's `start_latents`."""
        return self.latents_by_step[self.k]

    def info(self) -> dict:
        """The response's `argus.cache` object."""
        return {"hit": True, "k": self.k, "similarity": self.similarity, "entry_id": self.entry_id}


MISS_INFO = {"hit": False, "k": 0, "similarity": None, "entry_id": None}


@dataclass(frozen=True, slots=True)
class _StoreJob:
    meta: EntryMeta
    prompt: str
    latents: dict[int, np.ndarray]
    embedding: np.ndarray | None


class ApproximateCache:
    """Thread-safe; `probe`/`lookup` may run on any thread, stores go through one writer."""

    def __init__(
        self,
        config: ArgusConfig,
        embed_fn: EmbedFn,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config.cache
        self.root = Path(config.cache_dir)
        self.embed_fn = embed_fn
        self.clock = clock
        self.metrics = cache_metrics(registry)
        self.metrics.capacity.set(self.config.capacity_bytes)
        self._lock = threading.RLock()
        self._entries: dict[str, EntryMeta] = {}
        self._exact: dict[ExactKey, str] = {}
        self._indexes: dict[Partition, VectorIndex] = {}
        self._bytes_used = 0
        self._dirty_stats: set[str] = set()
        self._eviction_heap: list[tuple[float, float, float, str]] = []
        self._embed_memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._jobs: queue.Queue[_StoreJob | None] = queue.Queue(self.config.store_queue)
        self._writer: threading.Thread | None = None
        if self.config.enabled:
            self.root.mkdir(parents=True, exist_ok=True)
            self._reload()
            self._writer = threading.Thread(target=self._write_loop, name="argus-cache-writer")
            self._writer.daemon = True
            self._writer.start()

    # ---- read side -------------------------------------------------------------------------

    def namespace(self, tenant: str) -> str:
        return self.config.shared_namespace or tenant

    def capture_steps(self, steps: int) -> list[int]:
        """Steps whose latents a full `steps`-step generation should capture for the cache."""
        return capture_steps(steps, self.config) if self.config.enabled else []

    def embed(self, prompt: str) -> np.ndarray:
        with self._lock:
            if prompt in self._embed_memo:
                self._embed_memo.move_to_end(prompt)
                return self._embed_memo[prompt]
        vector = np.asarray(self.embed_fn([prompt]), dtype=np.float32).reshape(-1)
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        with self._lock:
            self._embed_memo[prompt] = vector
            if len(self._embed_memo) > _EMBED_MEMO:
                self._embed_memo.popitem(last=False)
        return vector

    def lookup(
        self,
        generation: Generation,
        max_k: int | None = None,
        embedding: np.ndarray | None = None,
    ) -> CacheHit | None:
        """Probe and accept in one call (when the cap on K is known up front)."""
        return self.accept(self.probe(generation, embedding), max_k)

    def probe(
        self, generation: Generation, embedding: np.ndarray | None = None
    ) -> CacheHit | None:
        """Best usable entry, uncapped and uncounted (its similarity can feed admission).

        Never raises for a damaged store: a bad entry is removed and the next candidate tried.
        """
        if not self.config.enabled:
            return None
        partition = generation.partition(self.namespace(generation.tenant))
        if generation.seed is not None and generation.guidance is not None:
            hit = self._exact_hit(self._exact_key(generation, partition))
            if hit is not None:
                return hit
        vector = self._vector(generation.prompt, embedding)
        return None if vector is None else self._similar_hit(partition, vector)

    def nearest_similarity(
        self, generation: Generation, embedding: np.ndarray | None = None
    ) -> float | None:
        """Cosine similarity of the nearest entry in the generation's partition (None: empty)."""
        index = self._indexes.get(generation.partition(self.namespace(generation.tenant)))
        vector = None if index is None else self._vector(generation.prompt, embedding)
        if vector is None or vector.shape[0] != index.dim:
            return None
        found = index.search(vector, 1)
        return min(found[0][1], 1.0) if found else None

    def _vector(self, prompt: str, embedding: np.ndarray | None) -> np.ndarray | None:
        if embedding is not None:
            return np.asarray(embedding, dtype=np.float32).reshape(-1)
        try:
            return self.embed(prompt)
        except EmbedderNotReady:
            return None
        except Exception:  # an encoder failure must not fail the request: it is a miss
            log.exception("cache: embedding failed; treating as a miss")
            return None

    @staticmethod
    def _exact_key(generation: Generation, partition: Partition) -> ExactKey:
        assert generation.seed is not None and generation.guidance is not None
        return ExactKey(
            partition, generation.prompt_sha, int(generation.seed),
            _guidance_key(generation.guidance),
        )

    def accept(self, hit: CacheHit | None, max_k: int | None = None) -> CacheHit | None:
        """Apply the control plane's cap on K and count the lookup (and the hit, for LCBFU).

        Exact repeats are never capped: they lose no quality, so they are served at any load.
        """
        self.metrics.lookups.inc()
        if hit is not None and not hit.exact and max_k is not None and hit.k > max_k:
            k = deepest_at_most(list(hit.latents_by_step), max_k)
            hit = None if k == 0 else CacheHit(
                hit.entry_id, hit.similarity, k, False, hit.latents_by_step
            )
            if hit is None:
                self.metrics.misses.labels(reason="capped").inc()
                return None
        if hit is None:
            self.metrics.misses.labels(reason="no_match").inc()
            return None
        self.metrics.hits.labels(k=str(hit.k), kind="exact" if hit.exact else "similar").inc()
        with self._lock:
            meta = self._entries.get(hit.entry_id)
            if meta is not None:
                meta.hits[hit.k] = meta.hits.get(hit.k, 0) + 1
                meta.last_access = self.clock()
                self._dirty_stats.add(hit.entry_id)
                self._push_eviction_key(meta)
        return hit

    def _exact_hit(self, key: ExactKey) -> CacheHit | None:
        with self._lock:
            entry_id = self._exact.get(key)
        if entry_id is None:
            return None
        latents = self._load(entry_id)
        if latents is None:
            return None
        return CacheHit(entry_id, 1.0, max(latents), True, latents)

    def _similar_hit(self, partition: Partition, vector: np.ndarray) -> CacheHit | None:
        index = self._indexes.get(partition)
        if index is None or index.dim != vector.shape[0]:
            return None
        for entry_id, similarity in index.search(vector, self.config.top_k):
            k_band = band_k(similarity, partition.steps, self.config)
            if k_band == 0:
                return None  # best first: the rest are less similar still
            with self._lock:
                meta = self._entries.get(entry_id)
            if meta is None or deepest_at_most(meta.stored_steps, k_band) == 0:
                continue
            latents = self._load(entry_id)
            if latents is None:
                continue
            k = deepest_at_most(list(latents), k_band)
            return CacheHit(entry_id, min(similarity, 1.0), k, False, latents)
        return None

    def _load(self, entry_id: str) -> dict[int, np.ndarray] | None:
        """Verified latents, or None after dropping a damaged entry (a counted miss)."""
        with self._lock:
            meta = self._entries.get(entry_id)
        if meta is None:
            return None
        try:
            return load_latents(entry_path(self.root, meta), meta)
        except (CorruptEntry, OSError) as err:
            with self._lock:
                still_there = entry_id in self._entries
            if still_there:  # not merely evicted while we read it
                log.warning("cache: dropping damaged entry %s: %s", entry_id, err)
                self.metrics.corrupt.inc()  # the lookup itself counts as a miss if no
                self._remove(entry_id)  # other candidate serves
            return None

    # ---- write side ------------------------------------------------------------------------

    def store_async(
        self,
        generation: Generation,
        captured: Mapping[int, np.ndarray],
        embedding: np.ndarray | None = None,
    ) -> bool:
        """Queue a full generation's captured latents; False if not queued (never blocks)."""
        job = self._job(generation, captured, embedding)
        if job is None:
            return False
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self.metrics.stores.labels(outcome="dropped").inc()
            return False
        return True

    def store(
        self,
        generation: Generation,
        captured: Mapping[int, np.ndarray],
        embedding: np.ndarray | None = None,
    ) -> str | None:
        """Store synchronously; the entry id, or None if nothing was stored."""
        job = self._job(generation, captured, embedding)
        return None if job is None else self._write(job)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until queued stores are written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        self._flush_stats()
        return not self._jobs.unfinished_tasks

    def close(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join(timeout=30)
        self._flush_stats()

    def _job(
        self,
        generation: Generation,
        captured: Mapping[int, np.ndarray],
        embedding: np.ndarray | None,
    ) -> _StoreJob | None:
        if not self.config.enabled or self.config.capacity_bytes == 0:
            return None
        steps = int(generation.steps)
        latents = {int(k): np.array(v) for k, v in captured.items() if 0 < k < steps}
        if not latents:
            return None
        with self._lock:
            memo = self._embed_memo.get(generation.prompt)
        created = self.clock()
        meta = EntryMeta(
            entry_id=uuid.uuid4().hex[:20],
            namespace=self.namespace(generation.tenant),
            tenant=generation.tenant,
            variant=generation.variant,
            resolution=int(generation.resolution),
            steps=steps,
            guidance=_guidance_key(generation.guidance or 0.0),
            seed=None if generation.seed is None else int(generation.seed),
            prompt_sha=generation.prompt_sha,
            stored_steps=tuple(sorted(latents)),
            created=created,
            last_access=created,
        )
        vector = embedding if embedding is not None else memo
        return _StoreJob(meta, generation.prompt, latents, vector)

    def _write_loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                job = self._jobs.get(timeout=_STATS_FLUSH_S)
            except queue.Empty:
                job = False
            if job is None:
                self._jobs.task_done()
                return
            if job:
                try:
                    self._write(job)
                except Exception:  # a failed store loses one entry, never the writer
                    log.exception("cache: store failed")
                    self.metrics.stores.labels(outcome="error").inc()
                finally:
                    self._jobs.task_done()
            if time.monotonic() - last_flush >= _STATS_FLUSH_S:
                self._flush_stats()
                last_flush = time.monotonic()

    def _write(self, job: _StoreJob) -> str | None:
        meta = job.meta
        partition, key = _keys_of(meta)
        with self._lock:
            if key is not None and key in self._exact:
                self.metrics.stores.labels(outcome="duplicate").inc()
                return None
        try:
            embedding = job.embedding if job.embedding is not None else self.embed(job.prompt)
        except EmbedderNotReady:  # stores of the first seconds after a start are lost
            self.metrics.stores.labels(outcome="not_ready").inc()
            return None
        index = self._indexes.get(partition)
        if index is not None and index.dim != embedding.shape[0]:
            self.metrics.stores.labels(outcome="error").inc()  # embedder changed under us
            return None
        path = write_entry(self.root, meta, embedding, job.latents)
        if meta.nbytes > self.config.capacity_bytes:
            delete_entry(path)
            self.metrics.stores.labels(outcome="too_large").inc()
            return None
        self._make_room(meta.nbytes)
        with self._lock:
            self._add_entry(meta)
            index = self._indexes.get(partition)
            if index is None:
                index = self._indexes[partition] = self._new_index(embedding.shape[0])
            self._update_gauges()
        index.add([meta.entry_id], embedding[None, :])
        self.metrics.stores.labels(outcome="stored").inc()
        return meta.entry_id

    def _add_entry(self, meta: EntryMeta) -> None:
        _, key = _keys_of(meta)
        self._entries[meta.entry_id] = meta
        if key is not None:
            self._exact[key] = meta.entry_id
        self._bytes_used += meta.nbytes
        self._push_eviction_key(meta)

    def _push_eviction_key(self, meta: EntryMeta) -> None:
        """LCBFU order in a lazy heap: a hit pushes the entry again with its new key (keys only
        grow), and stale items are skipped when popped. Rebuilt when stale items pile up."""
        heapq.heappush(self._eviction_heap, (*_eviction_key(meta), meta.entry_id))
        if len(self._eviction_heap) > 4 * len(self._entries) + 64:
            self._eviction_heap = [(*_eviction_key(m), i) for i, m in self._entries.items()]
            heapq.heapify(self._eviction_heap)

    def _new_index(self, dim: int) -> VectorIndex:
        c = self.config
        return VectorIndex(
            dim, c.hnsw_threshold, c.hnsw_m, c.hnsw_ef_search, c.hnsw_ef_construction,
            kind=c.index_type, nprobe=c.ivf_nprobe, nlist=c.ivf_nlist, buffer_size=c.index_buffer,
        )

    def _make_room(self, nbytes: int) -> None:
        """Evict lowest-LCBFU entries (ties: least recently used, then oldest) until `nbytes`
        more fit in the budget."""
        while True:
            with self._lock:
                if self._bytes_used + nbytes <= self.config.capacity_bytes or not self._entries:
                    return
                victim = self._pop_victim()
            self._remove(victim)
            self.metrics.evictions.inc()

    def _pop_victim(self) -> str:
        """Lowest (LCBFU score, last access, creation) entry; call with the lock held."""
        while self._eviction_heap:
            *key, entry_id = heapq.heappop(self._eviction_heap)
            meta = self._entries.get(entry_id)
            if meta is not None and tuple(key) == _eviction_key(meta):
                return entry_id
        return min(self._entries.values(), key=_eviction_key).entry_id  # not reached

    def _remove(self, entry_id: str) -> None:
        with self._lock:
            meta = self._entries.pop(entry_id, None)
            if meta is None:
                return
            partition, key = _keys_of(meta)
            if key is not None and self._exact.get(key) == entry_id:
                del self._exact[key]
            self._bytes_used -= meta.nbytes
            self._dirty_stats.discard(entry_id)
            index = self._indexes.get(partition)
            self._update_gauges()
        if index is not None:
            index.remove(entry_id)
        delete_entry(entry_path(self.root, meta))

    def _flush_stats(self) -> None:
        with self._lock:
            dirty = [self._entries[i] for i in self._dirty_stats if i in self._entries]
            self._dirty_stats.clear()
        for meta in dirty:
            try:
                write_stats(entry_path(self.root, meta), meta)
            except OSError:
                log.warning("cache: cannot write stats of %s", meta.entry_id)

    def _update_gauges(self) -> None:
        self.metrics.bytes_used.set(self._bytes_used)
        self.metrics.entries.set(len(self._entries))

    # ---- restart ---------------------------------------------------------------------------

    def _reload(self) -> None:
        """Rebuild the in-memory state from the files; damaged entries are removed."""
        for tmp in self.root.glob("*/*.tmp"):
            tmp.unlink(missing_ok=True)
        loaded: dict[Partition, tuple[list[str], list[np.ndarray]]] = {}
        for path in sorted(self.root.glob(f"*/*{ENTRY_SUFFIX}")):
            try:
                meta, embedding = read_entry_meta(path)
            except CorruptEntry as err:
                log.warning("cache: dropping damaged entry %s: %s", path.name, err)
                self.metrics.corrupt.inc()
                delete_entry(path)
                continue
            ids, vectors = loaded.setdefault(_keys_of(meta)[0], ([], []))
            if vectors and vectors[0].shape != embedding.shape:
                log.warning("cache: dropping %s: embedded by another encoder", path.name)
                delete_entry(path)
                continue
            self._add_entry(meta)
            ids.append(meta.entry_id)
            vectors.append(embedding)
        for partition, (ids, vectors) in loaded.items():
            index = self._new_index(vectors[0].shape[0])
            index.add(ids, np.stack(vectors))
            self._indexes[partition] = index
        self._update_gauges()
        self._make_room(0)  # the budget may have shrunk since the last run

    # ---- introspection ---------------------------------------------------------------------

    @property
    def bytes_used(self) -> int:
        return self._bytes_used

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, entry_id: str) -> EntryMeta | None:
        with self._lock:
            return self._entries.get(entry_id)

    def entry_file(self, entry_id: str) -> Path | None:
        meta = self.entry(entry_id)
        return None if meta is None else entry_path(self.root, meta)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "enabled": self.config.enabled,
                "entries": len(self._entries),
                "bytes_used": self._bytes_used,
                "capacity_bytes": self.config.capacity_bytes,
                "partitions": len(self._indexes),
            }


def _keys_of(meta: EntryMeta) -> tuple[Partition, ExactKey | None]:
    partition = Partition(meta.namespace, meta.variant, meta.resolution, meta.steps)
    if meta.seed is None:
        return partition, None
    return partition, ExactKey(partition, meta.prompt_sha, meta.seed, meta.guidance)


def _eviction_key(meta: EntryMeta) -> tuple[float, float, float]:
    """LCBFU: lowest benefit first; ties go to the least recently used, then the oldest."""
    return (meta.benefit, meta.last_access, meta.created)
