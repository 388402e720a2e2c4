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


class PromptPredictor:
    """What the router needs from a prompt-only predictor (subclasses implement `predict`)."""

    def __init__(
        self, metric_names: Sequence[str], weights: dict[str, float] | None, gamma: float
    ) -> None:
        self.metric_names = list(metric_names)
        self.weights = normalised_weights(self.metric_names, weights)
        self.gamma = gamma
        self.mean_gap = np.zeros(len(self.metric_names))
        """μ_e − μ_c per metric over the training prompts: the PRS scale."""
        self.calibration_prs = np.zeros(0)
        """Out-of-sample predicted PRS of the training prompts: the router calibrates α on
        these, so the cloud share on new prompts matches the budget."""

    def predict(self, prompts: Sequence[str]) -> Prediction:
        raise NotImplementedError

    def targets(self, q_edge: np.ndarray, q_cloud: np.ndarray) -> np.ndarray:
        """True PRS of training prompts; sets the PRS scale from them."""
        self.mean_gap = q_edge.mean(axis=0) - q_cloud.mean(axis=0)
        return prs(q_edge, q_cloud, self.weights, self.gamma, self.mean_gap)

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

    def key_tokens(self, prompts: Sequence[str], k: int = 10) -> list[TokenAttribution]:
        """Tokens with the strongest mean pull to the cloud over `prompts` (most negative mean
        occlusion effect on the predicted PRS)."""
        effects: dict[str, list[float]] = {}
        for prompt in prompts:
            for a in self.attributions(prompt):
                effects.setdefault(a.token, []).append(a.effect)
        mean = sorted((float(np.mean(v)), t) for t, v in effects.items())
        return [TokenAttribution(t, e) for e, t in mean[:k]]

    def describe(self) -> dict:
        """Model kind and fit statistics, for reports."""
        return {"kind": type(self).__name__}

    def _header(self) -> dict:
        return {"metric_names": self.metric_names, "weights": self.weights.tolist(),
                "gamma": self.gamma, "mean_gap": self.mean_gap.tolist(),
                "calibration_prs": self.calibration_prs.tolist()}

    def _restore_header(self, state: dict) -> None:
        self.mean_gap = np.array(state["mean_gap"])
        self.calibration_prs = np.array(state["calibration_prs"])


class PRSPredictor(PromptPredictor):
    """Ridge model prompt -> (PRS, per-metric gaps); fit with `fit`, persisted as JSON."""

    def __init__(
        self,
        metric_names: Sequence[str],
        weights: dict[str, float] | None = None,
        gamma: float = 1.0,
        encoder_path: str | None = None,
    ) -> None:
        super().__init__(metric_names, weights, gamma)
        self.encoder_path = encoder_path
        self._encoder = TextEncoderFeatures(encoder_path) if encoder_path else None
        self.vocab: dict[str, int] = {}
        self.ridge = 0.0
        self.loo_rmse = float("nan")
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
        y = np.column_stack([self.targets(q_edge, q_cloud), q_edge - q_cloud])
        x = self._features(prompts)
        self._x_mean = x.mean(axis=0)
        self._x_scale = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
        self._y_mean = y.mean(axis=0)
        xs, yc = (x - self._x_mean) / self._x_scale, y - self._y_mean
        self._coef, self.ridge, self.loo_rmse, loo_prs = _ridge_loo(xs, yc)
        self.calibration_prs = loo_prs + self._y_mean[0]
        return self

    # -- inference ---------------------------------------------------------------------------
    def predict(self, prompts: Sequence[str]) -> Prediction:
        if not self.vocab:
            raise RuntimeError("PRSPredictor.predict before fit/load")
        xs = (self._features(prompts) - self._x_mean) / self._x_scale
        y = xs @ self._coef + self._y_mean
        return Prediction(prs=y[:, 0], gaps=y[:, 1:])

    def describe(self) -> dict:
        return {"kind": "ridge", "ridge": self.ridge, "loo_rmse": self.loo_rmse,
                "features": len(self.vocab) + 1, "text_encoder": self.encoder_path}

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        state = {
            "format": FORMAT,
            **self._header(),
            "encoder_path": self.encoder_path,
            "vocab": list(self.vocab),
            "ridge": self.ridge,
            "loo_rmse": self.loo_rmse,
            "x_mean": self._x_mean.tolist(),
            "x_scale": self._x_scale.tolist(),
            "y_mean": self._y_mean.tolist(),
            "coef": self._coef.tolist(),
        }
        Path(path).write_text(json.dumps(state) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PRSPredictor:
        model = load_predictor(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path}: a {type(model).__name__}, not a ridge PRS predictor")
        return model

    @classmethod
    def load_state(cls, state: dict) -> PRSPredictor:
        names = state["metric_names"]
        model = cls(names, dict(zip(names, state["weights"], strict=True)), state["gamma"],
                    state["encoder_path"])
        model._restore_header(state)
        model.vocab = {g: i for i, g in enumerate(state["vocab"])}
        model.ridge, model.loo_rmse = state["ridge"], state["loo_rmse"]
        for name in ("x_mean", "x_scale", "y_mean", "coef"):
            setattr(model, f"_{name}", np.array(state[name]))
        return model


def load_predictor(path: str | Path) -> PromptPredictor:
    """A saved predictor of either kind (ridge or token-selection MoE)."""
    from argus.routing.token_moe import FORMAT as MOE_FORMAT
    from argus.routing.token_moe import TokenMoEPredictor

    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read PRS predictor {path}: {err}") from None
    kinds = {FORMAT: PRSPredictor, MOE_FORMAT: TokenMoEPredictor}
    kind = kinds.get(state.get("format")) if isinstance(state, dict) else None
    if kind is None:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{path}: not an Argus PRS predictor (format {found!r})")
    return kind.load_state(state)


def _ridge_loo(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Ridge on centred data with the penalty minimising the exact leave-one-out error of
    column 0: (coefficients, penalty, LOO RMSE, LOO predictions of column 0)."""
    n = x.shape[0]
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    best: tuple[float, float, np.ndarray] | None = None
    for lam in RIDGE_GRID:
        shrink = s**2 / (s**2 + lam)
        fitted = u @ (shrink[:, None] * uty)
        # Leverage includes the intercept's 1/n; LOO residual = residual / (1 - leverage).
        leverage = (u**2) @ shrink + 1.0 / n
        loo = (y[:, 0] - fitted[:, 0]) / np.maximum(1.0 - leverage, 1e-9)
        rmse = float(np.sqrt(np.mean(loo**2)))
        if best is None or rmse < best[1]:
            best = (lam, rmse, y[:, 0] - loo)
    lam, rmse, loo_prediction = best  # type: ignore[misc]
    coef = vt.T @ ((s / (s**2 + lam))[:, None] * uty)
    return coef, lam, rmse, loo_prediction
