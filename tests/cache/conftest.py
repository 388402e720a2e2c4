"""Fixtures of the cache tests: a tiny random-weight CLIP text encoder (built from configs, no
hub) so similarities are real encoder outputs, and a factory for caches in a temp dir."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from argus.cache import ApproximateCache
from argus.config import ArgusConfig, parse_config

_WORD_TEXT = (
    "a an the of and on in red green blue yellow purple circle circles square squares triangle "
    "triangles small large big tiny above below left right one two three photo cat dog sitting"
)
_WORDS = _WORD_TEXT.split()


def _write_tokenizer(folder: Path) -> None:
    """A CLIP BPE vocabulary: single characters plus merges that rebuild `_WORDS` whole."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,'-":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[str] = []
    for word in _WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merge = f"{parts[0]} {parts[1]}"
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def build_tiny_clip_embedder(folder: Path) -> Callable[[Sequence[str]], np.ndarray]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    model = CLIPTextModel(config).eval()

    def embed(prompts: Sequence[str]) -> np.ndarray:
        tokens = tokenizer(
            list(prompts), padding="max_length", max_length=32, truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            pooled = model(input_ids=tokens.input_ids).pooler_output
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    return embed


@pytest.fixture(scope="session")
def clip_embed(tmp_path_factory: pytest.TempPathFactory) -> Callable:
    torch.set_num_threads(1)
    return build_tiny_clip_embedder(tmp_path_factory.mktemp("tiny-clip"))


def cache_config(cache_dir: Path, **cache: object) -> ArgusConfig:
    return parse_config(
        {
            "variants": [{"name": "v", "source": "random:tiny", "default_steps": 50,
                          "resolution": 32}],
            "levels": [{"name": "full", "variant": "v", "steps": 50}],
            "cache": {"dir": str(cache_dir), **cache},
        }
    )


class CacheFactory:
    """Builds caches on one directory, each with its own metrics registry; closes them all."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self.opened: list[ApproximateCache] = []

    def __call__(self, embed_fn: Callable | None = None, **cache: object) -> ApproximateCache:
        cache_obj = ApproximateCache(
            cache_config(self.cache_dir, **cache),
            embed_fn or _no_embedder,
            registry=CollectorRegistry(),
            clock=FakeClock(),
        )
        self.opened.append(cache_obj)
        return cache_obj


class FakeClock:
    """Strictly increasing time, so recency ties never depend on the machine's clock."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _no_embedder(prompts: Sequence[str]) -> np.ndarray:
    raise AssertionError("this test passes embeddings explicitly")


@pytest.fixture
def make_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CacheFactory]:
    monkeypatch.delenv("ARGUS_CACHE_DIR", raising=False)
    factory = CacheFactory(tmp_path / "cache")
    yield factory
    for cache_obj in factory.opened:
        cache_obj.close()


def unit(dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def at_similarity(base: np.ndarray, cosine: float, seed: int = 1) -> np.ndarray:
    """A unit vector whose cosine with the unit vector `base` is exactly `cosine`."""
    other = np.random.default_rng(seed).standard_normal(base.shape[0]).astype(np.float32)
    other -= other.dot(base) * base
    other /= np.linalg.norm(other)
    v = cosine * base + np.sqrt(1 - cosine**2) * other
    return (v / np.linalg.norm(v)).astype(np.float32)


def latents_for(steps: Sequence[int], seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((4, 8, 8)).astype(np.float32) for k in steps}
