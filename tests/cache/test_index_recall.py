"""The partition index keeps finding the true nearest neighbour as it grows (IVF past the
threshold, built and merged in the background), and lookups stay correct during inserts."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from argus.cache.index import VectorIndex, ivf_lists

DIM = 96


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(rows: np.ndarray, seed: int) -> np.ndarray:
    """Each row moved to cosine ~0.98 of itself (a near-duplicate prompt)."""
    rng = np.random.default_rng(seed)
    q = rows + 0.02 * rng.standard_normal(rows.shape, dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def recall(index: VectorIndex, rows: np.ndarray, picks: np.ndarray, seed: int) -> float:
    queries = near(rows[picks], seed)
    return float(np.mean([bool(found := index.search(q, 8)) and found[0][0] == f"e{p}"
                          for q, p in zip(queries, picks, strict=True)]))


def test_ivf_recall_at_50k_random_vectors():
    rows = unit_rows(50_000, seed=1)
    index = VectorIndex(DIM, hnsw_threshold=5_000, buffer_size=1024)
    for start in range(0, len(rows), 5_000):  # crosses the threshold, then retrains (4x)
        index.add([f"e{i}" for i in range(start, start + 5_000)], rows[start : start + 5_000])
    assert index.wait(60)
    assert index.stage == "ivf" and len(index) == 50_000
    assert index.buffered < 1024  # the buffer was merged into the lists
    assert index._main.nlist == ivf_lists(index._trained_for) >= 256
    picks = np.random.default_rng(2).integers(0, len(rows), 1000)
    assert recall(index, rows, picks, seed=3) >= 0.97


def test_exact_below_threshold():
    rows = unit_rows(2_000, seed=4)
    index = VectorIndex(DIM, hnsw_threshold=10_000)
    index.add([f"e{i}" for i in range(len(rows))], rows)
    assert index.wait(10) and index.stage == "flat"
    assert recall(index, rows, np.arange(0, 2_000, 7), seed=5) == 1.0


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_inserts_during_lookups_stay_correct(kind: str):
    """A writer adds (and replaces and removes) entries one by one while a reader searches;
    builds and merges run in the background meanwhile. Every search answers only live ids, a
    stored vector is found the moment its add returns, and nothing is lost at the end."""
    rows = unit_rows(12_000, seed=6)
    index = VectorIndex(DIM, hnsw_threshold=2_000, buffer_size=500, kind=kind)
    index.add([f"e{i}" for i in range(4_000)], rows[:4_000])
    removed: list[str] = []  # appended once remove() has returned
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        probes = near(rows[:4_000], seed=7)
        i = 0
        while not stop.is_set():
            gone = removed[: len(removed)]  # removed before this search started
            found = index.search(probes[i % len(probes)], 8)
            if dead := {e for e, _ in found} & set(gone):
                errors.append(f"removed ids answered: {sorted(dead)[:3]}")
            if not found:
                errors.append("empty answer")
            i += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(4_000, 12_000):
            index.add([f"e{i}"], rows[i : i + 1])
            if i % 97 == 0:  # found as soon as it is stored, buffer or main index
                assert index.search(rows[i], 1)[0][0] == f"e{i}"
            if i % 40 == 0:  # removals, in the range the reader probes
                assert index.remove(f"e{(i - 4_000) // 40}")
                removed.append(f"e{(i - 4_000) // 40}")
        index.add(["e5000"], rows[5001:5002])  # replacement: the old vector is gone
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert index.wait(60) and index.stage == kind
    assert len(index) == 12_000 - len(removed)
    picks = np.random.default_rng(8).integers(200, 12_000, 500)
    picks = picks[picks != 5000]
    assert recall(index, rows, picks, seed=9) >= 0.95
    assert index.search(rows[5001], 2)[0][0] in {"e5000", "e5001"}
    assert all(e != "e5000" or s > 0.999 for e, s in index.search(rows[5000], 3))
    found = {e for i in range(200) for e, _ in index.search(rows[i], 8)}
    assert not found & set(removed)


def test_maintain_runs_due_work_in_the_caller():
    rows = unit_rows(3_000, seed=10)
    index = VectorIndex(DIM, hnsw_threshold=1_000, background=False)
    index.add([f"e{i}" for i in range(len(rows))], rows)
    assert index.stage == "ivf" and index.buffered == 0  # built inline, no thread
    for i in range(400):
        index.remove(f"e{i}")
    # compacted inline once 10% (300) were tombstones; 100 more are not worth a rebuild yet
    assert len(index) == 2_600 and index._main.ntotal == 2_700 and len(index._dead) == 100
    index.maintain()  # nothing due
    assert index._main.ntotal == 2_700
    assert index.search(rows[2_500], 1)[0][0] == "e2500"
