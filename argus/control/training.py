"""A trainable quality predictor: ridge regression from prompt text and cache similarity to the
relative quality at every level, fitted on a profile's per-prompt table.

Features (all cheap, deterministic across processes):
- hashed word unigrams and bigrams (crc32 into `HASH_DIM` buckets, L2-normalised): what the
  prompt asks for (counts, relations, styles) drives which approximations it tolerates;
- log word count and generic structure counts (log1p of commas, conjunctions, prepositions,
  number words/digits, quoted spans): closed-class words that generalise to unseen prompts, while
  the hashed words learn which content words make a prompt hard;
- cache similarity s (0 when unknown), a missing-similarity flag, and for every cache band
  threshold t the shortfall max(0, t - s): quality at a cache level falls once s drops below
  the band its skip K needs.
`argus train-predictor` fits it, reports held-out MAE and the floor-hit rate (how often the level
it picks really meets the floor), and saves it as JSON.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.control.levels import LevelTable
from argus.control.predictor import (
    DEFAULT_BAND_STEPS,
    DEFAULT_BANDS,
    SIMILARITY_BUCKETS,
    BulkPrediction,
    ProfilePredictor,
    band_threshold,
    cache_level_quality,
    optimal_level,
    similarity_bucket,
)
from argus.control.profile import Profile, PromptQuality
from argus.control.quality_model import is_in_band_table, sample_similarity
from argus.types import Request

HASH_DIM = 512
_CONJUNCTIONS = frozenset(("and", "with", "while", "or", "plus"))
_PREPOSITIONS = frozenset((
    "on", "in", "under", "over", "above", "below", "behind", "beside", "next", "near", "between",
    "inside", "across", "through", "around", "against", "left", "right", "front", "top", "of",
))
_NUMBERS = frozenset(("one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                      "ten", "several", "many", "pair", "dozen"))
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Candidate ridge strengths; `fit` picks one on an inner validation split."""
FORMAT = "argus-linear-predictor/1"
_WORD = re.compile(r"[a-z0-9]+")


def _thresholds(table: LevelTable, bands: Sequence[tuple[float, int]], band_steps: int) -> list:
    values = {
        band_threshold(k, n, bands, band_steps)
        for k, n in zip(table.cache_k, table.steps, strict=True) if k > 0
    }
    return sorted(values)


def featurise(
    prompt: str, similarity: float | None, thresholds: Sequence[float], hash_dim: int = HASH_DIM
) -> np.ndarray:
    words = _WORD.findall(prompt.lower())
    tokens = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    hashed = np.zeros(hash_dim)
    for token in tokens:
        hashed[zlib.crc32(token.encode()) % hash_dim] += 1.0
    norm = np.linalg.norm(hashed)
    if norm > 0:
        hashed /= norm
    return np.concatenate([hashed, _structure(prompt, words), similarity_features(similarity,
                                                                                    thresholds)])


TEXT_EXTRA = 6
"""Structure features after the hashed words (see `_structure`)."""


def _structure(prompt: str, words: list[str]) -> list[float]:
    return [
        math.log1p(len(words)),
        math.log1p(prompt.count(",")),
        math.log1p(sum(w in _CONJUNCTIONS for w in words)),
        math.log1p(sum(w in _PREPOSITIONS for w in words)),
        math.log1p(sum(w in _NUMBERS or w.isdigit() for w in words)),
        math.log1p(prompt.count('"') // 2),
    ]


def similarity_features(similarity: float | None, thresholds: Sequence[float]) -> list[float]:
    s = 0.0 if similarity is None else similarity
    return [s, 1.0 if similarity is None else 0.0] + [max(0.0, t - s) for t in thresholds]


@dataclass
class LinearPredictor:
    levels: list[str]
    weights: np.ndarray
    """(features, levels)."""
    bias: np.ndarray
    thresholds: list[float]
    hash_dim: int = HASH_DIM
    metrics: dict | None = None

    def predict(self, request: Request) -> dict[str, float]:
        x = featurise(request.prompt, request.cache_similarity, self.thresholds, self.hash_dim)
        values = _predict(x, self.weights, self.bias)
        return dict(zip(self.levels, values.tolist(), strict=True))

    def predict_many(self, prompts: Sequence[str], sims: Sequence[float | None]) -> np.ndarray:
        x = np.stack([featurise(p, s, self.thresholds, self.hash_dim)
                      for p, s in zip(prompts, sims, strict=True)])
        return _predict(x, self.weights, self.bias)

    @classmethod
    def fit(
        cls,
        table: LevelTable,
        rows: Sequence[PromptQuality],
        bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
        band_steps: int = DEFAULT_BAND_STEPS,
        ridges: Sequence[float] = RIDGES,
        seed: int = 0,
    ) -> LinearPredictor:
        """Ridge regression; the strength is the candidate with the lowest MAE on a 20% inner
        validation split, then the model is refitted on all rows."""
        thresholds = _thresholds(table, bands, band_steps)
        x = np.stack([featurise(r.prompt, r.similarity, thresholds) for r in rows])
        y = quality_matrix(table, rows)
        order = np.random.default_rng(seed).permutation(len(rows))
        cut = max(1, len(rows) // 5)
        val, train = order[:cut], order[cut:]
        on_train = _RidgePath(x[train], y[train])
        best = min(
            ridges, key=lambda r: np.abs(_predict(x[val], *on_train.solve(r)) - y[val]).mean()
        )
        weights, bias = _RidgePath(x, y).solve(best)
        return cls(list(table.names), weights, bias, thresholds)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({
            "format": FORMAT, "levels": self.levels, "hash_dim": self.hash_dim,
            "thresholds": self.thresholds, "bias": self.bias.tolist(),
            "weights": self.weights.tolist(), "metrics": self.metrics,
        }) + "\n")

    @classmethod
    def load(cls, path: str | Path, table: LevelTable | None = None) -> LinearPredictor:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read predictor {path}: {err}") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an Argus linear predictor ({FORMAT})")
        if table is not None and list(table.names) != data["levels"]:
            raise ValueError(f"{path}: trained for levels {data['levels']}, "
                             f"the profile has {list(table.names)}")
        return cls(data["levels"], np.asarray(data["weights"]), np.asarray(data["bias"]),
                   data["thresholds"], data["hash_dim"], data.get("metrics"))


class _RidgePath:
    """Ridge solutions for several strengths from one Gram matrix."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_mean, self.y_mean = x.mean(axis=0), y.mean(axis=0)
        xc = x - self.x_mean
        self.gram = xc.T @ xc
        self.target = xc.T @ (y - self.y_mean)

    def solve(self, strength: float) -> tuple[np.ndarray, np.ndarray]:
        ridge = self.gram + strength * np.eye(len(self.gram))
        weights = np.linalg.solve(ridge, self.target)
        return weights, self.y_mean - self.x_mean @ weights


def _predict(x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.clip(x @ weights + bias, 0.0, 1.2)


def quality_matrix(table: LevelTable, rows: Sequence[PromptQuality]) -> np.ndarray:
    """(prompts, levels) measured relative quality; missing levels take the level mean."""
    return np.array([
        [r.quality.get(name, mean) for name, mean in zip(table.names, table.mean_quality,
                                                         strict=True)]
        for r in rows
    ])


def evaluate(
    table: LevelTable, predicted: np.ndarray, truth: np.ndarray, floor: float
) -> dict[str, float]:
    """MAE over (prompt, level) pairs; floor-hit rate = share of prompts whose picked level (the
    most approximate one predicted to meet the floor) really meets it; mean speedup of the
    picked level over the full level (batch-1 service time); the share of prompts picked onto a
    smaller variant than the full level's, and that share's floor-hit rate."""
    names, full_variant = table.names, table.variant[table.full]
    hits, speedups, smaller, smaller_hits = 0, [], 0, 0
    full_time = table.service_s[table.full][0]
    for row_pred, row_true in zip(predicted, truth, strict=True):
        level = optimal_level(table, dict(zip(names, row_pred, strict=True)), floor)
        hit = bool(row_true[level] >= floor - 1e-9)
        hits += hit
        speedups.append(full_time / table.service_s[level][0])
        if table.variant[level] != full_variant:  # a smaller variant picked: good enough?
            smaller, smaller_hits = smaller + 1, smaller_hits + hit
    return {
        "mae": float(np.abs(predicted - truth).mean()),
        "floor_hit_rate": hits / len(truth),
        "mean_speedup": float(np.mean(speedups)),
        "smaller_variant_share": smaller / len(truth),
        "smaller_variant_floor_hit_rate": smaller_hits / smaller if smaller else None,
    }


def train_and_evaluate(
    profile: Profile,
    table: LevelTable,
    floor: float,
    holdout: float = 0.2,
    seed: int = 0,
    bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
    band_steps: int = DEFAULT_BAND_STEPS,
) -> tuple[LinearPredictor, dict]:
    rows = profile.prompts
    if len(rows) < 10:
        raise ValueError(f"profile {profile.name} has {len(rows)} per-prompt rows; "
                         "training needs at least 10 (or use --modelled-prompts)")
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = max(1, int(round(len(rows) * holdout)))
    test = [rows[i] for i in order[:cut]]
    train = [rows[i] for i in order[cut:]]
    # Split by prompt first, then give in-band rows their cache similarities.
    train_prompts = len(train)
    train = with_similarity(profile, table, train, seed, bands, band_steps)
    test = with_similarity(profile, table, test, seed + 1, bands, band_steps, draws=1)
    model = LinearPredictor.fit(table, train, bands, band_steps, seed=seed)
    truth = quality_matrix(table, test)
    predicted = model.predict_many([r.prompt for r in test], [r.similarity for r in test])
    means = ProfilePredictor(table, bands, band_steps)
    baseline = np.array([
        [means.predict(Request(r.prompt, 0.0, 0.0, cache_similarity=r.similarity))[n]
         for n in table.names]
        for r in test
    ])
    metrics = {
        "profile": profile.name,
        "quality_source": profile.quality_source,
        "train_prompts": train_prompts,
        "heldout_prompts": cut,
        "floor": floor,
        **evaluate(table, predicted, truth, floor),
        "baseline_profile_means": evaluate(table, baseline, truth, floor),
    }
    model.metrics = metrics
    return model, metrics


SIMILARITY_DRAWS = 2
"""Cache similarities drawn per in-band row for training (the text part is shared)."""


def with_similarity(
    profile: Profile,
    table: LevelTable,
    rows: Sequence[PromptQuality],
    seed: int = 0,
    bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
    band_steps: int = DEFAULT_BAND_STEPS,
    draws: int = SIMILARITY_DRAWS,
) -> list[PromptQuality]:
    """Rows of an in-band table (modelled, no similarity: cache levels hold their in-band value)
    become `draws` rows each with a cache similarity from the profile's distribution and cache
    levels discounted by it, as the simulator does per request; other rows are returned as is."""
    if not rows or not is_in_band_table(profile) or not profile.similarity_distribution:
        return list(rows)
    rng = np.random.default_rng(seed)
    sims = sample_similarity(profile.similarity_distribution, len(rows) * draws, rng)
    assert sims is not None
    thresholds = [band_threshold(k, n, bands, band_steps)
                  for k, n in zip(table.cache_k, table.steps, strict=True)]
    out = []
    for i, sim in enumerate(sims.tolist()):
        row = rows[i % len(rows)]
        quality = {
            name: cache_level_quality(row.quality.get(name, mean), thr, sim) if k > 0
            else row.quality.get(name, mean)
            for name, mean, thr, k in zip(table.names, table.mean_quality, thresholds,
                                          table.cache_k, strict=True)
        }
        out.append(PromptQuality(prompt=row.prompt, quality=quality, similarity=sim))
    return out


class CachedLinearPredictor:
    """A `LinearPredictor` for the hot path: the model is additive in its text and similarity
    features, so each prompt's text part and each similarity bucket's part (1/200 steps) are
    computed once; a (prompt, bucket) pair returns the same dict object (`stable_outputs`)."""

    stable_outputs = True
    MAX_ENTRIES = 200_000

    def __init__(self, model: LinearPredictor) -> None:
        self.model = model
        self.levels = list(model.levels)
        split = self._split = model.hash_dim + TEXT_EXTRA
        self._text: dict[str, np.ndarray] = {}
        # Row b <= N: similarity b / N; the last row (index -1): unknown similarity.
        n = SIMILARITY_BUCKETS
        sims = [b / n for b in range(n + 1)] + [None]
        self._sim = np.stack([
            np.asarray(similarity_features(s, model.thresholds)) @ model.weights[split:]
            for s in sims
        ]) + model.bias
        self._cache: dict[tuple[str, int], dict[str, float]] = {}

    def predict(self, request: Request) -> dict[str, float]:
        row = similarity_bucket(request.cache_similarity)
        key = (request.prompt, row)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        values = self._text_part(request.prompt) + self._sim[row]
        np.maximum(values, 0.0, out=values)  # the ufuncs, not np.clip: hot path
        np.minimum(values, 1.2, out=values)
        hit = self._cache[key] = dict(zip(self.levels, values.tolist(), strict=True))
        return hit

    def predict_bulk(self, requests: Sequence[Request]) -> BulkPrediction:
        """`predict` for many requests at once, returning the same dict objects: the (prompt,
        bucket) pairs are deduplicated as integer codes and summed as one matrix."""
        prompt_index: dict[str, int] = {}
        prompt_ids = [prompt_index.setdefault(r.prompt, len(prompt_index)) for r in requests]
        # `similarity_bucket`, vectorised (np.rint rounds half to even, as round() does).
        sims = np.array([r.cache_similarity for r in requests], dtype=float)  # None -> NaN
        known = np.isfinite(sims)
        buckets = np.full(len(requests), -1, dtype=np.int64)
        buckets[known] = np.clip(np.rint(sims[known] * SIMILARITY_BUCKETS), 0, SIMILARITY_BUCKETS)
        radix = SIMILARITY_BUCKETS + 2
        codes, index = np.unique(np.asarray(prompt_ids, dtype=np.int64) * radix + buckets + 1,
                                 return_inverse=True)
        pids, rows = np.divmod(codes, radix)
        rows -= 1
        prompts = list(prompt_index)
        values = np.zeros((0, len(self.levels)))
        if prompts:
            text = np.stack([self._text_part(p) for p in prompts])
            values = np.clip(text[pids] + self._sim[rows], 0.0, 1.2)
        keys = list(zip(map(prompts.__getitem__, pids.tolist()), rows.tolist(), strict=True))
        cache = self._cache
        if len(cache) + sum(key not in cache for key in keys) > self.MAX_ENTRIES:
            cache.clear()
        levels = self.levels
        distinct = []
        for key, row in zip(keys, values.tolist(), strict=True):
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = dict(zip(levels, row, strict=True))
            distinct.append(hit)
        return BulkPrediction(distinct, values, index.tolist(), levels)

    def _text_part(self, prompt: str) -> np.ndarray:
        text = self._text.get(prompt)
        if text is None:
            x = featurise(prompt, None, self.model.thresholds, self.model.hash_dim)
            text = self._text[prompt] = x[: self._split] @ self.model.weights[: self._split]
        return text


_FITTED: dict[tuple, LinearPredictor] = {}


def fitted_for_table(
    table: LevelTable,
    bands: Sequence[tuple[float, int]] = DEFAULT_BANDS,
    band_steps: int = DEFAULT_BAND_STEPS,
    seed: int = 0,
) -> CachedLinearPredictor:
    """A predictor trained on the profile's own per-prompt table (all rows, in-band rows with
    drawn similarities), fitted once per process and profile: what a deployment gets from
    `argus train-predictor` on its profile."""
    profile = table.profile
    key = (profile.name, profile.quality_source, len(profile.prompts), tuple(table.names),
           tuple(map(tuple, bands)), band_steps, seed)
    model = _FITTED.get(key)
    if model is None:
        rows = with_similarity(profile, table, profile.prompts, seed, bands, band_steps)
        model = _FITTED[key] = LinearPredictor.fit(table, rows, bands, band_steps, seed=seed)
    return CachedLinearPredictor(model)
