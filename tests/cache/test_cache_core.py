"""Unit and integration tests of the approximate cache itself (no server)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from argus.cache import ApproximateCache, CacheHit, Generation, band_k, capture_steps
from argus.cache.bands import deepest_at_most
from argus.cache.index import VectorIndex
from argus.config import CacheConfig

from .conftest import CacheFactory, at_similarity, latents_for, unit

STEPS = 50
BAND_STEPS = [5, 10, 15, 20, 25]
GENERATION = {"variant": "v", "resolution": 32, "steps": STEPS}


def store(
    cache: ApproximateCache,
    prompt: str,
    embedding: np.ndarray,
    *,
    tenant: str = "alice",
    seed: int | None = 7,
    latent_seed: int = 0,
    **overrides: object,
) -> str:
    generation = Generation(prompt, tenant, seed=seed, guidance=3.0, **{**GENERATION, **overrides})
    captured = latents_for(capture_steps(generation.steps, cache.config), latent_seed)
    entry_id = cache.store(generation, captured, embedding)
    assert entry_id is not None
    return entry_id


def lookup(
    cache: ApproximateCache,
    prompt: str,
    embedding: np.ndarray,
    *,
    tenant: str = "alice",
    max_k: int | None = None,
    **fields: object,
) -> CacheHit | None:
    generation = Generation(prompt, tenant, **{**GENERATION, **fields})
    return cache.lookup(generation, max_k, embedding)


def sample(cache: ApproximateCache, name: str, **labels: str) -> float:
    value = cache.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# ---- bands -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("similarity", "k50", "k20"),
    [(0.99, 25, 10), (0.951, 25, 10), (0.95, 20, 8), (0.93, 20, 8), (0.87, 15, 6),
     (0.80, 10, 4), (0.70, 5, 2), (0.65, 0, 0), (0.2, 0, 0)],
)
def test_band_k_follows_nirvana_bands_scaled_to_steps(similarity: float, k50: int, k20: int):
    config = CacheConfig()
    assert band_k(similarity, 50, config) == k50
    assert band_k(similarity, 20, config) == k20


def test_capture_steps_are_the_scaled_band_ks():
    config = CacheConfig()
    assert capture_steps(50, config) == BAND_STEPS
    assert capture_steps(20, config) == [2, 4, 6, 8, 10]
    assert capture_steps(4, config) == [1, 2]  # rounding collapses bands; never K=0 or K>=N
    assert deepest_at_most([5, 10, 15], 12) == 10
    assert deepest_at_most([5, 10, 15], 4) == 0


def test_custom_bands_come_from_config(make_cache: CacheFactory):
    cache = make_cache(similarity_bands=[(0.5, 40)], band_steps=100)
    assert cache.capture_steps(50) == [20]
    assert band_k(0.6, 50, cache.config) == 20 and band_k(0.4, 50, cache.config) == 0


# ---- lookup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cosine", "k"), [(0.97, 25), (0.92, 20), (0.88, 15), (0.8, 10),
                                           (0.7, 5)])
def test_similar_prompt_hits_with_its_band_k(make_cache: CacheFactory, cosine: float, k: int):
    cache = make_cache()
    base = unit()
    entry_id = store(cache, "stored prompt", base)
    hit = lookup(cache, "another prompt", at_similarity(base, cosine), seed=7, guidance=3.0)
    assert hit is not None and not hit.exact
    assert hit.entry_id == entry_id and hit.k == k
    assert hit.similarity == pytest.approx(cosine, abs=1e-5)
    np.testing.assert_array_equal(hit.latents, latents_for(BAND_STEPS)[k])


def test_dissimilar_prompt_misses(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    store(cache, "stored prompt", base)
    assert lookup(cache, "unrelated", at_similarity(base, 0.6)) is None
    assert sample(cache, "argus_cache_misses_total", reason="no_match") == 1


def test_control_plane_cap_lowers_k_to_a_stored_step(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    store(cache, "stored prompt", base)
    near = at_similarity(base, 0.97)
    assert lookup(cache, "near", near, max_k=12).k == 10
    assert lookup(cache, "near", near, max_k=3) is None
    assert sample(cache, "argus_cache_misses_total", reason="capped") == 1


def test_exact_repeat_resumes_from_deepest_step_whatever_the_cap(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    entry_id = store(cache, "a red circle", base, seed=11)
    hit = lookup(cache, "a red circle", base, seed=11, guidance=3.0, max_k=0)
    assert hit is not None and hit.exact and hit.entry_id == entry_id
    assert hit.k == max(BAND_STEPS) and hit.similarity == 1.0
    np.testing.assert_array_equal(hit.latents, latents_for(BAND_STEPS)[25])
    # Another seed or guidance is not a repeat: only a (capped) similar-prompt hit.
    assert not lookup(cache, "a red circle", base, seed=12, guidance=3.0).exact
    assert lookup(cache, "a red circle", base, seed=11, guidance=5.0, max_k=0) is None


@pytest.mark.parametrize("other", [{"variant": "w"}, {"resolution": 64}, {"steps": 20}])
def test_entries_serve_only_the_same_variant_resolution_and_steps(
    make_cache: CacheFactory, other: dict
):
    cache = make_cache()
    base = unit()
    store(cache, "p", base)
    assert lookup(cache, "p", base, seed=7, guidance=3.0, **other) is None


def test_a_duplicate_exact_generation_is_stored_once(make_cache: CacheFactory):
    cache = make_cache()
    store(cache, "p", unit())
    generation = Generation("p", "alice", seed=7, guidance=3.0, **GENERATION)
    assert cache.store(generation, latents_for([5]), unit()) is None
    assert len(cache) == 1


def test_real_encoder_similarity_picks_the_band(make_cache: CacheFactory, clip_embed):
    cache = make_cache(clip_embed)
    stored, similar = "a red circle above a blue square", "a red circle below a blue square"
    entry_id = store(cache, stored, cache.embed(stored))
    similarity = float(cache.embed(stored) @ cache.embed(similar))
    assert 0.65 < similarity < 0.999  # the encoder tells the prompts apart, yet finds them near
    hit = cache.lookup(Generation(similar, "alice", **GENERATION))
    assert hit is not None and hit.entry_id == entry_id
    assert hit.k == band_k(similarity, STEPS, cache.config) > 0
    assert np.allclose(cache.embed(stored), clip_embed([stored])[0], atol=1e-6)


# ---- isolation -------------------------------------------------------------------------------


def test_tenant_entries_never_serve_another_tenant(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    store(cache, "secret prompt", base, tenant="alice")
    assert lookup(cache, "secret prompt", base, tenant="bob", seed=7, guidance=3.0) is None
    assert lookup(cache, "x", at_similarity(base, 0.99), tenant="bob") is None
    assert lookup(cache, "x", at_similarity(base, 0.99), tenant="alice") is not None


def test_shared_namespace_shares_entries(make_cache: CacheFactory):
    cache = make_cache(shared_namespace="everyone")
    base = unit()
    store(cache, "p", base, tenant="alice")
    hit = lookup(cache, "p", base, tenant="bob", seed=7, guidance=3.0)
    assert hit is not None and hit.exact


# ---- persistence and faults ------------------------------------------------------------------


def test_restarted_cache_still_hits_and_keeps_hit_counts(make_cache: CacheFactory):
    first = make_cache()
    base = unit()
    entry_id = store(first, "p", base)
    assert lookup(first, "p", base, seed=7, guidance=3.0).exact
    first.close()
    second = make_cache()
    assert len(second) == 1 and second.bytes_used == first.bytes_used
    assert second.entry(entry_id).hits == {25: 1}
    assert lookup(second, "p", base, seed=7, guidance=3.0).exact
    assert lookup(second, "q", at_similarity(base, 0.9)).k == 15


def test_env_var_overrides_cache_dir(make_cache: CacheFactory, tmp_path, monkeypatch):
    monkeypatch.setenv("ARGUS_CACHE_DIR", str(tmp_path / "elsewhere"))
    cache = make_cache()
    store(cache, "p", unit())
    assert list((tmp_path / "elsewhere").glob("*/*.safetensors"))
    assert not make_cache.cache_dir.exists()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_header_byte(path):
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_last_byte, _flip_header_byte,
                                    lambda p: p.unlink()])
def test_damaged_entry_is_a_counted_miss_and_removed(make_cache: CacheFactory, damage):
    cache = make_cache()
    base = unit()
    entry_id = store(cache, "p", base)
    path = cache.entry_file(entry_id)
    damage(path)
    assert lookup(cache, "p", base, seed=7, guidance=3.0) is None  # exact path
    assert sample(cache, "argus_cache_corrupt_entries_total") == 1
    assert sample(cache, "argus_cache_misses_total", reason="no_match") == 1
    assert len(cache) == 0 and cache.bytes_used == 0
    assert not path.exists() and not path.with_suffix(".json").exists()
    assert lookup(cache, "p", base) is None  # similar path: nothing left to find


def test_damaged_best_match_falls_back_to_the_next(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    best = store(cache, "p", base, seed=1)
    second = store(cache, "q", at_similarity(base, 0.96), seed=2)
    _flip_last_byte(cache.entry_file(best))
    hit = lookup(cache, "r", base)
    assert hit is not None and hit.entry_id == second
    assert cache.entry(best) is None


def test_damaged_entry_is_dropped_at_restart(make_cache: CacheFactory):
    first = make_cache()
    good = store(first, "p", unit(seed=1), seed=1)
    bad = store(first, "q", unit(seed=2), seed=2)
    first.close()
    _truncate(first.entry_file(bad))
    second = make_cache()
    assert second.entry(good) is not None and second.entry(bad) is None
    assert sample(second, "argus_cache_corrupt_entries_total") == 1


# ---- eviction --------------------------------------------------------------------------------


def _entry_size(make_cache: CacheFactory, tmp_path) -> int:
    probe = make_cache(dir=str(tmp_path / "probe"))
    return probe.entry(store(probe, "size probe", unit(seed=99), seed=99)).nbytes


def test_eviction_follows_lcbfu(make_cache: CacheFactory, tmp_path):
    cache = make_cache(capacity_bytes=int(4.5 * _entry_size(make_cache, tmp_path)))
    vectors = [unit(seed=s) for s in range(8)]
    ids = [store(cache, f"p{i}", vectors[i], seed=i) for i in range(4)]

    def hit_exact(i: int, times: int) -> None:
        for _ in range(times):
            assert lookup(cache, f"p{i}", vectors[i], seed=i, guidance=3.0).k == 25

    def hit_at(i: int, k: int, times: int) -> None:
        for _ in range(times):
            assert lookup(cache, "near", vectors[i], max_k=k).k == k

    hit_exact(0, 2)  # benefit 2 x 25/50 = 1.0
    hit_at(1, 5, 3)  # the most frequent, but 3 x 5/50 = 0.3
    hit_exact(2, 1)  # 0.5
    # p3: never hit, benefit 0
    evicted = []
    for i in range(4, 8):
        new = store(cache, f"p{i}", vectors[i], seed=i)
        hit_exact(i, 4)  # 2.0: newcomers outrank every survivor
        gone = [j for j, entry_id in enumerate(ids) if cache.entry(entry_id) is None]
        evicted.extend(j for j in gone if j not in evicted)
        ids.append(new)
    assert evicted == [3, 1, 2, 0]
    assert sample(cache, "argus_cache_evictions_total") == 4
    assert cache.bytes_used <= cache.config.capacity_bytes


def test_lcbfu_ties_evict_the_least_recently_used(make_cache: CacheFactory, tmp_path):
    cache = make_cache(capacity_bytes=int(2.5 * _entry_size(make_cache, tmp_path)))
    a = store(cache, "a", unit(seed=1), seed=1)
    b = store(cache, "b", unit(seed=2), seed=2)
    store(cache, "c", unit(seed=3), seed=3)
    assert cache.entry(a) is None and cache.entry(b) is not None


def test_entry_larger_than_budget_is_not_stored(make_cache: CacheFactory):
    cache = make_cache(capacity_bytes=100)
    generation = Generation("p", "t", seed=1, guidance=3.0, **GENERATION)
    assert cache.store(generation, latents_for([5]), unit()) is None
    assert len(cache) == 0 and not list(cache.root.glob("*/*.safetensors"))


# ---- async store, metrics, index -------------------------------------------------------------


def test_async_store_is_written_by_the_background_writer(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    generation = Generation("p", "alice", seed=7, guidance=3.0, **GENERATION)
    assert cache.store_async(generation, latents_for(BAND_STEPS), base)
    assert cache.flush()
    assert lookup(cache, "p", base, seed=7, guidance=3.0).exact
    assert sample(cache, "argus_cache_stores_total", outcome="stored") == 1
    assert sample(cache, "argus_cache_hits_total", k="25", kind="exact") == 1
    assert sample(cache, "argus_cache_lookups_total") == 1
    assert sample(cache, "argus_cache_bytes_used") == cache.bytes_used > 0


def test_disabled_cache_never_hits_or_stores(make_cache: CacheFactory):
    cache = make_cache(enabled=False)
    generation = Generation("p", "a", seed=1, guidance=3.0, **GENERATION)
    assert not cache.store_async(generation, latents_for([5]), unit())
    assert lookup(cache, "p", unit()) is None and cache.capture_steps(50) == []


def test_index_switches_to_hnsw_and_keeps_finding_vectors():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(32, hnsw_threshold=100)
    for start in range(0, 300, 50):
        index.add([f"e{i}" for i in range(start, start + 50)], vectors[start : start + 50])
    assert index.wait(30)  # the approximate index is built in the background
    assert index.is_approximate and len(index) == 300
    assert all(index.search(vectors[i], 1)[0][0] == f"e{i}" for i in range(0, 300, 7))
    for i in range(0, 100):
        index.remove(f"e{i}")
    index.maintain()  # compaction drops the tombstones
    assert len(index) == 200 and len(index._ids) == 200 and not index._dead
    found = {entry_id for i in range(0, 100) for entry_id, _ in index.search(vectors[i], 5)}
    assert not any(int(e[1:]) < 100 for e in found)
    assert index.search(vectors[150], 1)[0][0] == "e150"


def test_lookups_run_while_the_writer_stores_and_rebuilds(make_cache: CacheFactory):
    cache = make_cache(hnsw_threshold=40)
    vectors = [unit(seed=s) for s in range(120)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                lookup(cache, "q", vectors[0])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=reader)
    thread.start()
    for i, v in enumerate(vectors):
        generation = Generation(f"p{i}", "alice", seed=i, guidance=3.0, **GENERATION)
        cache.store_async(generation, latents_for([5, 25]), v)
    assert cache.flush()
    stop.set()
    thread.join()
    assert not errors
    partition_index = next(iter(cache._indexes.values()))
    assert partition_index.wait(30)
    assert partition_index.is_approximate and len(partition_index) == 120
    assert all(lookup(cache, f"p{i}", vectors[i], seed=i, guidance=3.0).exact
               for i in range(0, 120, 11))


def test_negative_prompt_is_part_of_an_exact_repeat(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    store(cache, "p", base, negative_prompt="blurry")
    assert lookup(cache, "p", base, seed=7, guidance=3.0, negative_prompt="blurry").exact
    assert not lookup(cache, "p", base, seed=7, guidance=3.0).exact


def test_nearest_similarity_reports_misses_too(make_cache: CacheFactory):
    cache = make_cache()
    base = unit()
    assert cache.nearest_similarity(Generation("q", "alice", **GENERATION), base) is None
    store(cache, "p", base)
    far = at_similarity(base, 0.3)
    assert cache.nearest_similarity(Generation("q", "alice", **GENERATION), far) == (
        pytest.approx(0.3, abs=1e-5)
    )
    assert cache.nearest_similarity(Generation("q", "bob", **GENERATION), far) is None
