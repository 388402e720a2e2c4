"""Approximate-cache benchmark: lookup latency by index size, insert throughput, memory per entry.

    python benchmarks/cache.py                      # 10k, 100k, 1M entries (a few minutes)
    python benchmarks/cache.py --sizes 10000 100000 --dim 96
    python benchmarks/cache.py --sizes 100000 --index hnsw --ef-construction 200 --data clustered

Prints one JSON object per line:
- `cache_lookup` per size (and `--data`): p50/p99 of one nearest-neighbour search (top_k as
  configured) of a partition index holding N unit vectors of the shapes text encoder's width,
  uniform (the hardest case) or a Gaussian mixture; the index is what grows with N (exact below
  `hnsw_threshold`, IVF or HNSW above, built in the background). Also `build_s` (bulk add until
  the background build is done), recall@1 of a slightly perturbed stored vector, `memory_mb`
  (faiss index + vector rows), and, with `--inserts`, lookup latency while a writer thread adds
  entries one by one (buffer merges included) and the recall of those new entries.
- `cache_probe`: p50/p99 of a full `ApproximateCache.probe` (index search + reading and
  checksum-verifying the hit's latents from disk) on an on-disk store.
- `cache_insert`: synchronous stores per second (safetensors write + index add) and bytes per
  entry on disk and in memory.

Runs on one thread (faiss), like a serving front end next to its workers. `p50_ms`/`p99_ms` are
wall-clock; `cpu_p*_ms` count only this thread's CPU time, which separates the index's own cost
from preemption on a busy machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argus.cache import ApproximateCache, Generation, capture_steps  # noqa: E402
from argus.cache.index import VectorIndex  # noqa: E402
from argus.config import CacheConfig, parse_config  # noqa: E402

SHAPES_TEXT_DIM = 96
"""Pooled width of the shapes family's text encoder (argus/shapes/model.py)."""
SHAPES_LATENT = (12, 16, 16)
"""Pixel-unshuffled 32x32 RGB (contract A, f=2): one stored step's latents."""


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_s) * 1e3, [50, 99])
    return round(float(p50), 4), round(float(p99), 4)


def clustered_vectors(n: int, dim: int, rng: np.random.Generator, clusters: int = 1000,
                      spread: float = 0.5) -> np.ndarray:
    """A Gaussian mixture on the sphere: `clusters` random centres, each point a centre plus
    noise of norm ~`spread` (cosine to its centre ~0.9): closer to real text embeddings, which
    crowd around topics, than uniform vectors."""
    centres = unit_vectors(clusters, dim, rng)
    x = centres[rng.integers(0, clusters, n)]
    x += (spread / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def new_index(dim: int, config: CacheConfig) -> VectorIndex:
    return VectorIndex(
        dim, config.hnsw_threshold, config.hnsw_m, config.hnsw_ef_search,
        config.hnsw_ef_construction, kind=config.index_type, nprobe=config.ivf_nprobe,
        nlist=config.ivf_nlist, buffer_size=config.index_buffer,
    )


def perturbed(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stored vectors moved to cosine ~0.98 of themselves (a near-duplicate prompt)."""
    noisy = vectors + 0.02 * rng.standard_normal(vectors.shape, dtype=np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return noisy


def bench_lookup(n: int, dim: int, queries: int, config: CacheConfig, seed: int,
                 data: str = "uniform", inserts: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    total = n + inserts
    vectors = (unit_vectors if data == "uniform" else clustered_vectors)(total, dim, rng)
    index = new_index(dim, config)
    t0 = time.perf_counter()
    # One bulk add (rows only), then the background build of the approximate index if due.
    index.add([str(i) for i in range(n)], vectors[:n])
    index.wait()
    build_s = time.perf_counter() - t0
    picks = rng.integers(0, n, queries)
    noisy = perturbed(vectors[picks], rng)
    for q in noisy[:50]:  # warm up
        index.search(q, config.top_k)
    times, cpu_times, found = [], [], 0
    for q, pick in zip(noisy, picks, strict=True):
        c, t = time.thread_time(), time.perf_counter()
        result = index.search(q, config.top_k)
        times.append(time.perf_counter() - t)
        cpu_times.append(time.thread_time() - c)
        found += bool(result) and result[0][0] == str(pick)
    p50, p99 = percentiles_ms(times)
    memory = index.memory_bytes()
    line = {
        "bench": "cache_lookup",
        "entries": n,
        "data": data,
        "p50_ms": p50,
        "p99_ms": p99,
        "cpu_p50_ms": percentiles_ms(cpu_times)[0],
        "cpu_p99_ms": percentiles_ms(cpu_times)[1],
        "index": index.stage,
        "dim": dim,
        "top_k": config.top_k,
        "recall_at_1": round(found / queries, 4),
        "build_s": round(build_s, 2),
        "memory_mb": round(memory / 2**20, 1),
        "index_bytes_per_entry": round(memory / n),
    }
    if index.stage == "ivf":
        line |= {"nlist": index._main.nlist, "nprobe": config.ivf_nprobe}
    elif index.stage == "hnsw":
        line |= {"hnsw_m": config.hnsw_m, "ef_search": config.hnsw_ef_search,
                 "ef_construction": config.hnsw_ef_construction}
    if inserts:
        line |= lookups_under_inserts(index, vectors, n, inserts, config.top_k, rng)
    return line


def lookups_under_inserts(index: VectorIndex, vectors: np.ndarray, n: int, inserts: int,
                          top_k: int, rng: np.random.Generator) -> dict:
    """A writer thread adds `inserts` vectors one by one (like the cache's writer) while this
    thread looks up stored ones; the buffer fills and is merged in the background meanwhile.
    Then recall@1 of the inserted vectors."""
    done = threading.Event()

    def writer() -> None:
        for i in range(n, n + inserts):
            index.add([str(i)], vectors[i : i + 1])
            time.sleep(0)  # yield, as a writer doing file I/O between adds would
        done.set()

    picks = rng.integers(0, n, 4096)
    noisy = perturbed(vectors[picks], rng)
    thread = threading.Thread(target=writer)
    times: list[float] = []
    t0 = time.perf_counter()
    thread.start()
    while not done.is_set() or len(times) < 1000:
        t = time.perf_counter()
        index.search(noisy[len(times) % len(noisy)], top_k)
        times.append(time.perf_counter() - t)
    thread.join()
    index.wait()
    insert_s = time.perf_counter() - t0
    new = rng.integers(n, n + inserts, 1000)
    found = sum(index.search(q, top_k)[0][0] == str(i)
                for q, i in zip(perturbed(vectors[new], rng), new, strict=True))
    p50, p99 = percentiles_ms(times)
    return {
        "inserts": inserts,
        "inserts_per_s": round(inserts / insert_s),
        "during_inserts_p50_ms": p50,
        "during_inserts_p99_ms": p99,
        "during_inserts_max_ms": round(max(times) * 1e3, 3),
        "inserted_recall_at_1": round(found / len(new), 4),
    }


def bench_store(entries: int, dim: int, queries: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(entries, dim, rng)
    steps = 50
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({
            "variants": [{"name": "v", "source": "random:pixel-large", "default_steps": steps,
                          "resolution": 32}],
            "levels": [{"name": "full", "variant": "v", "steps": steps}],
            "cache": {"dir": tmp, "capacity_bytes": 64 * 1024**3},
        })
        cache = ApproximateCache(config, lambda prompts: vectors[:1])
        bands = capture_steps(steps, config.cache)
        latents = {k: rng.standard_normal(SHAPES_LATENT, dtype=np.float32) for k in bands}
        tracemalloc.start()
        t0 = time.perf_counter()
        for i in range(entries):
            generation = Generation(f"prompt {i}", "bench", "v", 32, steps, seed=i, guidance=3.0)
            cache.store(generation, latents, vectors[i])
        insert_s = time.perf_counter() - t0
        memory, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        times, hits = [], 0
        for i in rng.integers(0, entries, queries):
            generation = Generation("query", "bench", "v", 32, steps)
            t = time.perf_counter()
            hit = cache.probe(generation, vectors[i])
            times.append(time.perf_counter() - t)
            hits += hit is not None
        cache.close()
        disk = cache.bytes_used
    p50, p99 = percentiles_ms(times)
    return [
        {
            "bench": "cache_probe",
            "entries": entries,
            "p50_ms": p50,
            "p99_ms": p99,
            "hits": hits,
            "queries": queries,
            "note": "index search + read and checksum the hit's latents from disk",
        },
        {
            "bench": "cache_insert",
            "entries": entries,
            "inserts_per_s": round(entries / insert_s, 1),
            "steps_per_entry": len(bands),
            "latent_shape": list(SHAPES_LATENT),
            "disk_bytes_per_entry": round(disk / entries),
            "memory_bytes_per_entry": round(memory / entries),
        },
    ]


def lexical_embed(prompts: list[str], dim: int = 512) -> np.ndarray:
    """Hashed TF-IDF of word unigrams and bigrams, L2-normalised: a lexical stand-in for the
    CLIP text similarity NIRVANA used (no pretrained CLIP can be loaded here)."""
    docs = []
    for prompt in prompts:
        words = re.findall(r"[a-z0-9]+", prompt.lower())
        docs.append(words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)])
    frequency = Counter(term for doc in docs for term in set(doc))
    out = np.zeros((len(prompts), dim), dtype=np.float32)
    for row, doc in enumerate(docs):
        for term, count in Counter(doc).items():
            idf = np.log((1 + len(docs)) / (1 + frequency[term])) + 1
            out[row, zlib.crc32(term.encode()) % dim] += (1 + np.log(count)) * idf
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def read_prompts(name: str, data_dir: Path) -> list[str]:
    if name == "partiprompts":
        with (data_dir / "partiprompts" / "PartiPrompts.tsv").open(newline="") as f:
            return [row["Prompt"] for row in csv.DictReader(f, delimiter="\t")]
    with (data_dir / "coco30k_captions" / "coco_30k.csv").open(newline="") as f:
        return [row["prompt"] for row in csv.DictReader(f)]


def bench_hit_rate(name: str, data_dir: Path, max_entries: int, seed: int) -> dict:
    """Replay a prompt set in order through the real cache: each prompt is looked up (similar
    prompts of one tenant, NIRVANA bands at 50 steps, no cap); a miss is generated and stored."""
    prompts = read_prompts(name, data_dir)
    vectors = lexical_embed(prompts)
    steps = 50
    latents = {k: np.zeros((1, 4, 4), np.float32) for k in (5, 10, 15, 20, 25)}
    with tempfile.TemporaryDirectory() as tmp:
        data = {
            "variants": [{"name": "v", "source": "random:pixel-large", "default_steps": steps,
                          "resolution": 32}],
            "levels": [{"name": "full", "variant": "v", "steps": steps}],
            "cache": {"dir": tmp},
        }
        probe = ApproximateCache(parse_config(data), lambda p: vectors[:1])
        size = probe.entry(probe.store(Generation("x", "t", "v", 32, steps), latents,
                                       vectors[0])).nbytes
        probe.close()
        data["cache"] = {"dir": str(Path(tmp) / "replay"), "capacity_bytes": size * max_entries}
        cache = ApproximateCache(parse_config(data), lambda p: vectors[:1])
        by_k: Counter[int] = Counter()
        saved = 0
        for i, prompt in enumerate(prompts):
            generation = Generation(prompt, "replay", "v", 32, steps)
            hit = cache.lookup(generation, embedding=vectors[i])
            if hit is None:
                cache.store(generation, latents, vectors[i])
            else:
                by_k[hit.k] += 1
                saved += hit.k
        cache.close()
    hits = sum(by_k.values())
    return {
        "bench": "cache_hit_rate",
        "prompts": name,
        "requests": len(prompts),
        "distinct_prompts": len(set(prompts)),
        "embedding": "hashed word 1-2-gram tf-idf (512-d)",
        "max_entries": max_entries,
        "hit_rate": round(hits / len(prompts), 4),
        "hits_by_k": {str(k): by_k[k] for k in sorted(by_k)},
        "steps_saved_share": round(saved / (steps * len(prompts)), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=SHAPES_TEXT_DIM)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--hnsw-m", type=int, default=CacheConfig().hnsw_m)
    parser.add_argument("--ef-search", type=int, default=CacheConfig().hnsw_ef_search,
                        help="HNSW search breadth (recall vs latency)")
    parser.add_argument("--ef-construction", type=int,
                        default=CacheConfig().hnsw_ef_construction,
                        help="HNSW build breadth (recall vs build time)")
    defaults = CacheConfig()
    parser.add_argument("--index", choices=["ivf", "hnsw"], default=defaults.index_type)
    parser.add_argument("--nprobe", type=int, default=defaults.ivf_nprobe,
                        help="IVF lists scanned per lookup (recall vs latency)")
    parser.add_argument("--nlist", type=int, default=defaults.ivf_nlist,
                        help="IVF lists (0: 4 sqrt(N) rounded to a power of two)")
    parser.add_argument("--buffer", type=int, default=defaults.index_buffer,
                        help="exact buffer entries before a background merge")
    parser.add_argument("--threshold", type=int, default=defaults.hnsw_threshold,
                        help="entries past which the approximate index is built")
    parser.add_argument("--data", nargs="*", default=["uniform"],
                        choices=["uniform", "clustered"],
                        help="uniform random unit vectors (hardest) or a Gaussian mixture")
    parser.add_argument("--inserts", type=int, default=20_000,
                        help="after each build, add this many one by one during lookups")
    parser.add_argument("--store-entries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hit-rate", nargs="*", default=[], choices=["partiprompts", "coco30k_captions"],
        help="also replay these prompt sets from ../shared/data and report the hit rate",
    )
    parser.add_argument("--data-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--max-entries", type=int, default=8192,
                        help="cache size for the replay (8192 x 62 KB shapes latents = 512 MB)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    config = CacheConfig(
        hnsw_m=args.hnsw_m, hnsw_ef_search=args.ef_search,
        hnsw_ef_construction=args.ef_construction, index_type=args.index,
        ivf_nprobe=args.nprobe, ivf_nlist=args.nlist, index_buffer=args.buffer,
        hnsw_threshold=args.threshold,
    )
    for data in args.data:
        for n in args.sizes:
            line = bench_lookup(n, args.dim, args.queries, config, args.seed, data, args.inserts)
            print(json.dumps(line), flush=True)
    if args.store_entries:
        for line in bench_store(args.store_entries, args.dim, args.queries, args.seed):
            print(json.dumps(line), flush=True)
    for name in args.hit_rate:
        print(json.dumps(bench_hit_rate(name, args.data_dir, args.max_entries, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
