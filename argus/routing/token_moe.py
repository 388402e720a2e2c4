"""A token-selection predictor in the spirit of RouteT2I's dual-gated mixture of experts.

Tokens are embedded and contextualised by one small transformer layer (T). Each quality metric
has an expert with a query vector: A = softmax(T·Eᵀ) over the tokens, of which each expert keeps
its top-K. Two low-rank gates score every token for the metric, T⁺ = T·P⁺·S and T⁻ = T·P⁻·S
(P± per expert, S shared), and σ(T⁺ − T⁻) is the token's dominant effect. The selected tokens'
effects, weighted by A, give per metric a predicted D_i (does the edge win this metric?), and
PRS = Σ w_i D_i as in `prs.py`. Trained with Adam on D_i and PRS; α is calibrated on
cross-fitted (out-of-fold) predictions. Small enough for a CPU in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from argus.routing.predictor import Prediction, PromptPredictor, tokenize
from argus.routing.prs import metric_dominance

if TYPE_CHECKING:
    import torch

FORMAT = "argus-token-moe-predictor/1"
PAD, UNK = 0, 1
HYPER = {"dim": 32, "rank": 8, "hidden": 16, "top_k": 4, "max_len": 32}
EPOCHS, LR, WEIGHT_DECAY, FOLDS = 200, 3e-3, 1e-3, 2


def _network(vocab_size: int, n_metrics: int, dim: int, rank: int, hidden: int, top_k: int,
             max_len: int):
    import torch
    from torch import nn

    class TokenSelectionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.top_k = top_k
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
            self.position = nn.Embedding(max_len, dim)
            self.encoder = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0,
                                                      batch_first=True)
            self.experts = nn.Parameter(torch.randn(n_metrics, dim) / dim**0.5)
            self.gate_pos = nn.Parameter(torch.randn(n_metrics, dim, rank) / dim**0.5)
            self.gate_neg = nn.Parameter(torch.randn(n_metrics, dim, rank) / dim**0.5)
            self.shared = nn.Linear(rank, hidden, bias=False)
            self.head = nn.Parameter(torch.randn(n_metrics, hidden) / hidden**0.5)
            self.head_bias = nn.Parameter(torch.zeros(n_metrics))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            """(batch, tokens) ids -> (batch, metrics) predicted D_i."""
            pad = ids == PAD
            pos = torch.arange(ids.shape[1], device=ids.device)
            t = self.encoder(self.embed(ids) + self.position(pos), src_key_padding_mask=pad)
            scores = torch.einsum("bld,md->bml", t, self.experts).masked_fill(
                pad[:, None, :], float("-inf"))
            k = min(self.top_k, ids.shape[1])
            kth = scores.topk(k, dim=-1).values[..., -1:]
            attn = torch.softmax(scores.masked_fill(scores < kth, float("-inf")), dim=-1)
            # T⁺ − T⁻ = T·P⁺·S − T·P⁻·S = T·(P⁺ − P⁻)·S: one projection instead of two.
            gate = torch.einsum("bld,mdr->bmlr", t, self.gate_pos - self.gate_neg)
            effect = torch.sigmoid(self.shared(gate))  # (batch, metrics, tokens, hidden)
            pooled = torch.einsum("bml,bmlh->bmh", attn, effect)
            return torch.sigmoid((pooled * self.head).sum(-1) + self.head_bias)

    return TokenSelectionNet()


class TokenMoEPredictor(PromptPredictor):
    """Token-selection MoE prompt -> PRS; same interface as the ridge `PRSPredictor`."""

    def __init__(self, metric_names: Sequence[str], weights: dict[str, float] | None = None,
                 gamma: float = 1.0, seed: int = 0, epochs: int = EPOCHS,
                 folds: int = FOLDS) -> None:
        super().__init__(metric_names, weights, gamma)
        self.seed = seed
        self.epochs = epochs
        self.folds = folds
        """Cross-fitting folds for the out-of-sample calibration predictions."""
        self.vocab: dict[str, int] = {}
        self._net = None

    def _ids(self, prompts: Sequence[str]) -> torch.Tensor:
        import torch

        rows = [[self.vocab.get(t, UNK) for t in tokenize(p)][: HYPER["max_len"]] or [UNK]
                for p in prompts]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])

    def _train(
        self, prompts: Sequence[str], dominance: np.ndarray, target_prs: np.ndarray
    ) -> torch.nn.Module:
        import torch

        torch.manual_seed(self.seed)
        net = _network(len(self.vocab) + 2, len(self.metric_names), **HYPER)
        opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        ids = self._ids(prompts)
        d_true = torch.tensor(dominance, dtype=torch.float32)
        p_true = torch.tensor(target_prs, dtype=torch.float32)
        w = torch.tensor(self.weights, dtype=torch.float32)
        net.train()
        for _ in range(self.epochs):
            opt.zero_grad()
            d = net(ids)
            loss = ((d - d_true) ** 2).mean() + ((d @ w - p_true) ** 2).mean()
            loss.backward()
            opt.step()
        return net.eval()

    def fit(
        self, prompts: Sequence[str], q_edge: np.ndarray, q_cloud: np.ndarray
    ) -> TokenMoEPredictor:
        q_edge, q_cloud = np.asarray(q_edge, float), np.asarray(q_cloud, float)
        if len(prompts) < 2 * self.folds:
            raise ValueError(f"need at least {2 * self.folds} training prompts, "
                             f"got {len(prompts)}")
        tokens = sorted({t for p in prompts for t in tokenize(p)})
        self.vocab = {t: i + 2 for i, t in enumerate(tokens)}
        target = self.targets(q_edge, q_cloud)
        dominance = metric_dominance(q_edge, q_cloud, self.mean_gap, self.gamma)
        folds = np.arange(len(prompts)) % self.folds
        out_of_fold = np.zeros(len(prompts))
        for fold in range(self.folds):
            train, held = np.nonzero(folds != fold)[0], np.nonzero(folds == fold)[0]
            self._net = self._train([prompts[i] for i in train], dominance[train], target[train])
            out_of_fold[held] = self.predict([prompts[i] for i in held]).prs
        self.calibration_prs = out_of_fold
        self._net = self._train(prompts, dominance, target)
        return self

    def predict(self, prompts: Sequence[str]) -> Prediction:
        import torch

        if self._net is None:
            raise RuntimeError("TokenMoEPredictor.predict before fit/load")
        with torch.inference_mode():
            d = self._net(self._ids(prompts)).double().numpy()
        # Back from D_i to the metric gap it implies: gap = logit(D_i)·Γ·|μ_e − μ_c|.
        clipped = np.clip(d, 1e-6, 1 - 1e-6)
        gaps = np.log(clipped / (1 - clipped)) * self.gamma * np.abs(self.mean_gap)
        return Prediction(prs=d @ self.weights, gaps=gaps)

    def describe(self) -> dict:
        return {"kind": "token-moe", "epochs": self.epochs, "folds": self.folds, **HYPER}

    def save(self, path: str | Path) -> None:
        state = {"format": FORMAT, **self._header(), "seed": self.seed, "epochs": self.epochs,
                 "folds": self.folds,
                 "vocab": self.vocab,
                 "net": {k: v.tolist() for k, v in self._net.state_dict().items()}}
        Path(path).write_text(json.dumps(state) + "\n")

    @classmethod
    def load_state(cls, state: dict) -> TokenMoEPredictor:
        import torch

        names = state["metric_names"]
        model = cls(names, dict(zip(names, state["weights"], strict=True)), state["gamma"],
                    state["seed"], state["epochs"], state["folds"])
        model._restore_header(state)
        model.vocab = state["vocab"]
        model._net = _network(len(model.vocab) + 2, len(names), **HYPER)
        model._net.load_state_dict({k: torch.tensor(v) for k, v in state["net"].items()})
        model._net.eval()
        return model
