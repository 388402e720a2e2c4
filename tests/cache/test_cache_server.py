"""The cache in the live server, end to end over HTTP (real workers, the `argus serve` hook).

Tests share one server and run in order: the first generations fill the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from argus.cache import band_k

from .server_helpers import STEPS, CacheServer, pixels, server_config

pytestmark = pytest.mark.slow  # two real servers: the slowest tests of the cache

PROMPT = "a red circle above a blue square"
SIMILAR = "a red circle below a blue square"
DISSIMILAR = "mmmmmmmmmmmmmmmmmmmm"
WARM_UP = "two yellow triangles"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-cache")


@pytest.fixture(scope="module")
def server(cache_dir: Path) -> Iterator[CacheServer]:
    running = CacheServer.start(server_config(cache_dir))
    assert running.hook.cache.embed_fn.wait(180), "the cache's text encoder did not load"
    # First-request overheads out of the timing comparison; another tenant, so nothing of
    # alice's cache comes from it.
    running.generate(WARM_UP, seed=1, user="warm-up")
    yield running
    running.stop()


def similarity(server: CacheServer, a: str, b: str) -> float:
    return float(server.hook.cache.embed(a) @ server.hook.cache.embed(b))


def test_repeat_with_same_seed_resumes_and_gives_the_same_image(server: CacheServer):
    first = server.generate(PROMPT, seed=5)
    assert first["argus"]["cache"]["hit"] is False
    assert first["argus"]["steps"] == first["argus"]["steps_run"] == STEPS
    repeat = server.generate(PROMPT, seed=5)
    cache = repeat["argus"]["cache"]
    assert cache["hit"] is True and cache["k"] == 5 and cache["similarity"] == 1.0
    assert cache["entry_id"] and (server.hook.cache.entry(cache["entry_id"]) is not None)
    assert repeat["argus"]["steps"] == STEPS and repeat["argus"]["steps_run"] == STEPS - 5
    np.testing.assert_array_equal(pixels(repeat), pixels(first))
    # Half the steps: the worker's run time drops (compared over two requests each; the
    # second miss is pinned to full quality, so no similar-prompt hit shortens it).
    again = server.generate(PROMPT, seed=5)
    fresh = server.generate(PROMPT, seed=6, quality="high")
    assert fresh["argus"]["cache"]["hit"] is False and fresh["argus"]["steps_run"] == STEPS
    hit_ms = repeat["argus"]["timings_ms"]["run"] + again["argus"]["timings_ms"]["run"]
    miss_ms = first["argus"]["timings_ms"]["run"] + fresh["argus"]["timings_ms"]["run"]
    assert hit_ms < miss_ms
    assert server.metric('argus_cache_hits_total{k="5",kind="exact"}') >= 2


def test_similar_prompt_hits_with_its_band_k(server: CacheServer):
    expected = band_k(similarity(server, PROMPT, SIMILAR), STEPS, server.hook.cache.config)
    assert expected > 0
    item = server.generate(SIMILAR, seed=11)
    cache = item["argus"]["cache"]
    assert cache["hit"] is True and cache["k"] == expected
    assert cache["similarity"] == pytest.approx(similarity(server, PROMPT, SIMILAR), abs=1e-4)
    assert item["argus"]["steps_run"] == STEPS - expected


def test_dissimilar_prompt_misses(server: CacheServer):
    stored = [PROMPT, SIMILAR]
    assert max(similarity(server, DISSIMILAR, p) for p in stored) < 0.65
    item = server.generate(DISSIMILAR, seed=3)
    assert item["argus"]["cache"]["hit"] is False
    assert item["argus"]["steps_run"] == STEPS


def test_other_tenant_never_gets_a_hit(server: CacheServer):
    item = server.generate(PROMPT, seed=5, user="mallory")
    cache = item["argus"]["cache"]
    assert cache == {"hit": False, "k": 0, "similarity": None, "entry_id": None}
    assert item["argus"]["steps_run"] == STEPS
    again = server.generate(PROMPT, seed=5, user="mallory")  # now mallory has her own entry
    assert again["argus"]["cache"]["hit"] is True
    assert again["argus"]["cache"]["entry_id"] != server.generate(PROMPT, seed=5)["argus"][
        "cache"]["entry_id"]


def test_corrupted_entry_is_a_miss_not_an_error(server: CacheServer):
    stored = server.generate(PROMPT, seed=5, user="carol")  # carol's only entry
    hit = server.generate(PROMPT, seed=5, user="carol")["argus"]["cache"]
    assert stored["argus"]["cache"]["hit"] is False and hit["hit"] is True
    path = server.hook.cache.entry_file(hit["entry_id"])
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    corrupt_before = server.metric("argus_cache_corrupt_entries_total")
    item = server.generate(PROMPT, seed=5, user="carol")
    assert item["argus"]["cache"]["hit"] is False and item["argus"]["steps_run"] == STEPS
    np.testing.assert_array_equal(pixels(item), pixels(stored))  # regenerated in full
    assert server.metric("argus_cache_corrupt_entries_total") == corrupt_before + 1
    assert not path.exists()


def test_restarted_server_still_hits(server: CacheServer, cache_dir: Path):
    stored = server.generate(PROMPT, seed=21, user="dave")  # dave's first: a miss, stored
    assert stored["argus"]["cache"]["hit"] is False
    embed_fn = server.hook.cache.embed_fn
    server.stop()
    restarted = CacheServer.start(server_config(cache_dir), embed_fn=embed_fn)
    try:
        item = restarted.generate(PROMPT, seed=21, user="dave")
        assert item["argus"]["cache"]["hit"] is True and item["argus"]["cache"]["k"] == 5
        np.testing.assert_array_equal(pixels(item), pixels(stored))
        similar = restarted.generate(SIMILAR, seed=30, user="dave")["argus"]["cache"]
        assert similar["hit"] is True and similar["k"] > 0
    finally:
        restarted.stop()
