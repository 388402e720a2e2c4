"""Prompt-only PRS predictor: learns which tokens need the cloud, generalises, persists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.control.profile import Profile
from argus.routing.evaluate import split, tier_data
from argus.routing.predictor import PRSPredictor, tokenize


def _toy_data(n: int = 120, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cloud clearly better exactly when the prompt mentions a triangle."""
    rng = np.random.default_rng(seed)
    colors, shapes = ["red", "green", "blue"], ["circle", "square", "triangle"]
    prompts = [f"a {colors[i % 3]} {shapes[(i // 3) % 3]}" for i in range(n)]
    q_cloud = np.full((n, 2), 0.8) + rng.normal(0, 0.01, (n, 2))
    penalty = np.array([0.3 if "triangle" in p else -0.02 for p in prompts])
    return prompts, q_cloud - penalty[:, None], q_cloud


def test_tokenizer_keeps_words_and_punctuation() -> None:
    assert tokenize("A small Red circle , and 2 squares") == [
        "a", "small", "red", "circle", ",", "and", "2", "squares"]


def test_learns_the_cloud_token_and_attributes_it() -> None:
    prompts, q_edge, q_cloud = _toy_data()
    model = PRSPredictor(["detail", "color"]).fit(prompts, q_edge, q_cloud)
    pred = model.predict(["a red triangle", "a red circle"])
    assert pred.prs[0] < 0.3 < 0.5 < pred.prs[1]
    assert pred.gaps.shape == (2, 2) and pred.gaps[0, 0] < -0.2 < 0 < pred.gaps[1, 0] + 0.05
    effects = {a.token: a.effect for a in model.attributions("a blue triangle")}
    assert effects["triangle"] == min(effects.values()) and effects["triangle"] < -0.2
    assert model.key_tokens(prompts, 1)[0].token == "triangle"


def test_save_load_round_trip(tmp_path: Path) -> None:
    prompts, q_edge, q_cloud = _toy_data()
    model = PRSPredictor(["detail", "color"], {"detail": 3.0, "color": 1.0}, gamma=2.0)
    model.fit(prompts, q_edge, q_cloud)
    model.save(tmp_path / "p.json")
    loaded = PRSPredictor.load(tmp_path / "p.json")
    test = ["a green triangle", "a blue square", "an unseen purple hexagon"]
    assert np.allclose(loaded.predict(test).prs, model.predict(test).prs)
    assert loaded.weights == pytest.approx([0.75, 0.25]) and loaded.gamma == 2.0
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an Argus PRS predictor"):
        PRSPredictor.load(tmp_path / "bad.json")


def test_generalises_to_held_out_prompts(two_tier_profile: Profile) -> None:
    data = tier_data(two_tier_profile)
    train_idx, test_idx = split(len(data.prompts), 0.3, seed=0)
    train, test = data.subset(train_idx), data.subset(test_idx)
    model = PRSPredictor(data.metric_names).fit(train.prompts, train.q_edge, train.q_cloud)
    from argus.routing.prs import prs

    truth = prs(test.q_edge, test.q_cloud, model.weights, 1.0, model.mean_gap)
    corr = np.corrcoef(model.predict(test.prompts).prs, truth)[0, 1]
    assert corr > 0.7


def test_token_moe_learns_the_cloud_token_and_persists(tmp_path: Path) -> None:
    import torch

    from argus.routing.predictor import load_predictor
    from argus.routing.token_moe import TokenMoEPredictor

    torch.set_num_threads(1)
    prompts, q_edge, q_cloud = _toy_data(n=18)
    model = TokenMoEPredictor(["detail", "color"], epochs=50, folds=2)
    model.fit(prompts, q_edge, q_cloud)
    pred = model.predict(["a red triangle", "a red circle"]).prs
    assert pred[0] < 0.35 and pred[1] > 0.5
    assert len(model.calibration_prs) == len(prompts)
    effects = {a.token: a.effect for a in model.attributions("a blue triangle")}
    assert effects["triangle"] == min(effects.values())
    model.save(tmp_path / "moe.json")
    loaded = load_predictor(tmp_path / "moe.json")
    assert isinstance(loaded, TokenMoEPredictor)
    assert np.allclose(loaded.predict(prompts[:5]).prs, model.predict(prompts[:5]).prs)
    with pytest.raises(ValueError, match="not a ridge"):
        PRSPredictor.load(tmp_path / "moe.json")


def test_text_encoder_features_from_a_pipeline_folder(tmp_path: Path, word_tokenizer) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    prompts, q_edge, q_cloud = _toy_data(n=30)
    tokenizer = word_tokenizer({w for p in prompts for w in p.split()})
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2,
                            max_position_embeddings=8, pad_token_id=0)
    CLIPTextModel(config).save_pretrained(tmp_path / "variant" / "text_encoder")
    tokenizer.save_pretrained(tmp_path / "variant" / "tokenizer")
    model = PRSPredictor(["detail", "color"], encoder_path=str(tmp_path / "variant"))
    model.fit(prompts, q_edge, q_cloud)
    assert model.describe()["features"] < model._x_mean.size  # encoder dims were added
    assert model.predict(["a red triangle"]).prs[0] < model.predict(["a red circle"]).prs[0]
    model.save(tmp_path / "p.json")
    assert PRSPredictor.load(tmp_path / "p.json").predict_prs("a red triangle") == (
        pytest.approx(model.predict_prs("a red triangle")))


def test_shipped_predictor_routes_relations_before_single_objects() -> None:
    """The predictor shipped for the embedded family (trained by `argus route-eval
    --save-predictor` on argus/assets/routing/study-*.json) loads and ranks sensibly."""
    from argus.routing.predictor import load_predictor
    from argus.routing.service import SHIPPED_PREDICTOR

    model = load_predictor(SHIPPED_PREDICTOR)
    single = model.predict_prs("a large red circle")
    relation = model.predict_prs("a small red circle left of a large blue square")
    assert 0.0 < relation < single < 1.0
    assert len(model.calibration_prs) >= 50
