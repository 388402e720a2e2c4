"""Prompt-only PRS predictor: which prompts (and which of their tokens) need the cloud.

The simple model RouteT2I is compared against: ridge regression from prompt features to the PRS
and to each metric's edge-minus-cloud gap, trained on prompts whose images were generated and
scored at both tiers. Features are a bag of tokens and token bigrams plus the prompt length, and
optionally the pooled output of a text encoder loaded by path (`TextEncoderFeatures`). The ridge
penalty is chosen by exact leave-one-out error. Token attributions are by occlusion: how much the
predicted PRS moves when one token is removed (negative: the token pushes the prompt to the cloud).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.routing.prs import normalised_weights, prs

TOKEN_RE = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
RIDGE_GRID = tuple(float(x) for x in np.logspace(-2, 4, 25))
FORMAT = "argus-prs-predictor/1"


def tokenize(prompt: str) -> list[str]:
    return TOKEN_RE.findall(prompt.lower())


def _grams(tokens: Sequence[str]) -> list[str]:
    return list(tokens) + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


@dataclass(frozen=True, slots=True)
class TokenAttribution:
    token: str
    effect: float
    """Predicted PRS with the token minus without it (< 0: it pushes the prompt to the cloud)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    prs: np.ndarray
    """(prompts,) predicted PRS."""
    gaps: np.ndarray
    """(prompts, metrics) predicted edge-minus-cloud metric gap."""


class TextEncoderFeatures:
    """Pooled text-encoder output as features; `path` is a CLIP text model or a diffusers folder."""

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoTokenizer, CLIPTextModel

        self.path = str(path)
        root = Path(path)
        is_pipeline = (root / "text_encoder").is_dir()
        self._tokenizer = AutoTokenizer.from_pretrained(
            root / "tokenizer" if is_pipeline else root
        )
        self._model = CLIPTextModel.from_pretrained(
            root / "text_encoder" if is_pipeline else root
        ).eval()

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        import torch

        max_len = self._model.config.max_position_embeddings
        batch = self._tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=max_len,
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = self._model(input_ids=batch["input_ids"])
        return out.pooler_output.float().numpy().astype(np.float64)


class PRSPredictor:
    """Ridge model prompt -> (PRS, per-metric gaps); fit with `fit`, persisted as JSON."""

    def __init__(
        self,
        metric_names: Sequence[str],
        weights: dict[str, float] | None = None,
        gamma: float = 1.0,
        encoder_path: str | None = None,
    ) -> None:
        self.metric_names = list(metric_names)
        self.weights = normalised_weights(self.metric_names, weights)
        self.gamma = gamma
        self.encoder_path = encoder_path
        self._encoder = TextEncoderFeatures(encoder_path) if encoder_path else None
        self.vocab: dict[str, int] = {}
        self.mean_gap = np.zeros(len(self.metric_names))
        self.ridge = 0.0
        self.loo_rmse = float("nan")
        self.calibration_prs = np.zeros(0)
        """Predicted PRS of the training prompts: the router calibrates α on them."""
        self._x_mean = self._x_scale = self._y_mean = self._coef = np.zeros(0)

    # -- features ----------------------------------------------------------------------------
    def _features(self, prompts: Sequence[str]) -> np.ndarray:
        x = np.zeros((len(prompts), len(self.vocab) + 1))
        for row, prompt in enumerate(prompts):
            tokens = tokenize(prompt)
            x[row, -1] = len(tokens)
            for gram in _grams(tokens):
                col = self.vocab.get(gram)
                if col is not None:
                    x[row, col] += 1.0
        if self._encoder is not None:
            x = np.hstack([x, self._encoder(prompts)])
        return x

    # -- training ----------------------------------------------------------------------------
    def fit(
        self, prompts: Sequence[str], q_edge: np.ndarray, q_cloud: np.ndarray
    ) -> PRSPredictor:
        """Learn from per-prompt metric matrices (prompts, metrics) of both tiers."""
        q_edge, q_cloud = np.asarray(q_edge, float), np.asarray(q_cloud, float)
        if len(prompts) < 4:
            raise ValueError(f"need at least 4 training prompts, got {len(prompts)}")
        grams = sorted({g for p in prompts for g in _grams(tokenize(p))})
        self.vocab = {g: i for i, g in enumerate(grams)}
        self.mean_gap = q_edge.mean(axis=0) - q_cloud.mean(axis=0)
        target_prs = prs(q_edge, q_cloud, self.weights, self.gamma, self.mean_gap)
        y = np.column_stack([target_prs, q_edge - q_cloud])
        x = self._features(prompts)
        self._x_mean = x.mean(axis=0)
        self._x_scale = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
        self._y_mean = y.mean(axis=0)
        xs, yc = (x - self._x_mean) / self._x_scale, y - self._y_mean
        self._coef, self.ridge, self.loo_rmse = _ridge_loo(xs, yc)
        self.calibration_prs = self.predict(prompts).prs
        return self

    # -- inference ---------------------------------------------------------------------------
    def predict(self, prompts: Sequence[str]) -> Prediction:
        if not self.vocab:
            raise RuntimeError("PRSPredictor.predict before fit/load")
        xs = (self._features(prompts) - self._x_mean) / self._x_scale
        y = xs @ self._coef + self._y_mean
        return Prediction(prs=y[:, 0], gaps=y[:, 1:])

    def predict_prs(self, prompt: str) -> float:
        return float(self.predict([prompt]).prs[0])

    def attributions(self, prompt: str) -> list[TokenAttribution]:
        """Each token's effect on the predicted PRS, by removing it from the prompt."""
        tokens = tokenize(prompt)
        variants = [" ".join(tokens)] + [
            " ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))
        ]
        predicted = self.predict(variants).prs
        return [
            TokenAttribution(tok, float(predicted[0] - predicted[i + 1]))
            for i, tok in enumerate(tokens)
        ]

    def key_tokens(self, k: int = 10) -> list[TokenAttribution]:
        """Single tokens with the strongest pull to the cloud (most negative PRS weight)."""
        weight = self._coef[: len(self.vocab), 0] / self._x_scale[: len(self.vocab)]
        names = list(self.vocab)
        unigrams = [i for i, name in enumerate(names) if " " not in name]
        order = sorted(unigrams, key=lambda i: weight[i])[:k]
        return [TokenAttribution(names[i], float(weight[i])) for i in order]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        state = {
            "format": FORMAT,
            "metric_names": self.metric_names,
            "weights": self.weights.tolist(),
            "gamma": self.gamma,
            "encoder_path": self.encoder_path,
            "vocab": list(self.vocab),
            "mean_gap": self.mean_gap.tolist(),
            "ridge": self.ridge,
            "loo_rmse": self.loo_rmse,
            "x_mean": self._x_mean.tolist(),
            "x_scale": self._x_scale.tolist(),
            "y_mean": self._y_mean.tolist(),
            "coef": self._coef.tolist(),
            "calibration_prs": self.calibration_prs.tolist(),
        }
        Path(path).write_text(json.dumps(state) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PRSPredictor:
        state = json.loads(Path(path).read_text())
        if state.get("format") != FORMAT:
            raise ValueError(f"{path}: not an Argus PRS predictor (format {state.get('format')!r})")
        names = state["metric_names"]
        model = cls(names, dict(zip(names, state["weights"], strict=True)), state["gamma"],
                    state["encoder_path"])
        model.vocab = {g: i for i, g in enumerate(state["vocab"])}
        model.mean_gap = np.array(state["mean_gap"])
        model.ridge, model.loo_rmse = state["ridge"], state["loo_rmse"]
        model.calibration_prs = np.array(state["calibration_prs"])
        for name in ("x_mean", "x_scale", "y_mean", "coef"):
            setattr(model, f"_{name}", np.array(state[name]))
        return model


def _ridge_loo(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Ridge on centred data; the penalty minimising the exact leave-one-out error of column 0."""
    n = x.shape[0]
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    best: tuple[float, float] | None = None
    for lam in RIDGE_GRID:
        shrink = s**2 / (s**2 + lam)
        fitted = u @ (shrink[:, None] * uty)
        # Leverage includes the intercept's 1/n; LOO residual = residual / (1 - leverage).
        leverage = (u**2) @ shrink + 1.0 / n
        loo = (y[:, 0] - fitted[:, 0]) / np.maximum(1.0 - leverage, 1e-9)
        rmse = float(np.sqrt(np.mean(loo**2)))
        if best is None or rmse < best[1]:
            best = (lam, rmse)
    lam, rmse = best  # type: ignore[misc]
    coef = vt.T @ ((s / (s**2 + lam))[:, None] * uty)
    return coef, lam, rmse
