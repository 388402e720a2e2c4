"""A trainable quality predictor: ridge regression from prompt text and cache similarity to the
relative quality at every level, fitted on a profile's per-prompt table.

Features (all cheap, deterministic across processes):
- hashed word unigrams and bigrams (crc32 into `HASH_DIM` buckets, L2-normalised): what the
  prompt asks for (counts, relations, styles) drives which approximations it tolerates;
- log word count;
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
    ProfilePredictor,
    band_threshold,
    optimal_level,
)
from argus.control.profile import Profile, PromptQuality
from argus.types import Request

HASH_DIM = 512
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
    s = 0.0 if similarity is None else similarity
    extra = [math.log1p(len(words)), s, 1.0 if similarity is None else 0.0]
    extra += [max(0.0, t - s) for t in thresholds]
    return np.concatenate([hashed, extra])


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
        best = min(
            ridges,
            key=lambda r: np.abs(_predict(x[val], *_ridge(x[train], y[train], r)) - y[val]).mean(),
        )
        weights, bias = _ridge(x, y, best)
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


def _ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    weights = np.linalg.solve(xc.T @ xc + strength * np.eye(x.shape[1]), xc.T @ (y - y_mean))
    return weights, y_mean - x_mean @ weights


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
    picked level over the full level (batch-1 service time)."""
    names = table.names
    hits, speedups = 0, []
    full_time = table.service_s[table.full][0]
    for row_pred, row_true in zip(predicted, truth, strict=True):
        level = optimal_level(table, dict(zip(names, row_pred, strict=True)), floor)
        hits += bool(row_true[level] >= floor - 1e-9)
        speedups.append(full_time / table.service_s[level][0])
    return {
        "mae": float(np.abs(predicted - truth).mean()),
        "floor_hit_rate": hits / len(truth),
        "mean_speedup": float(np.mean(speedups)),
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
        "train_prompts": len(train),
        "heldout_prompts": len(test),
        "floor": floor,
        **evaluate(table, predicted, truth, floor),
        "baseline_profile_means": evaluate(table, baseline, truth, floor),
    }
    model.metrics = metrics
    return model, metrics
