"""Real-model scorers (CLIP score, PickScore, RouteT2I multi-metric) on a tiny random CLIP built
locally and loaded by path, like a user's real weights; and the scorer registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from argus.routing.metrics import Metric
from argus.scorers import make_scorer
from argus.scorers.clip import ClipScore, MultiMetricScore, PickScore
from argus.shapes.grammar import parse
from argus.shapes.model import build_tokenizer
from argus.shapes.render import render_scene

PROMPTS = ["a large red circle", "a small blue square on a black background"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return str(folder)


def _images() -> list[np.ndarray]:
    return [render_scene(parse(p), seed=i) for i, p in enumerate(PROMPTS)]


def test_clip_score_is_clipped_cosine_and_depends_on_the_prompt(tiny_clip: str) -> None:
    scorer = ClipScore(tiny_clip)
    images = _images()
    results = scorer.score(images, PROMPTS)
    cos = [r.metrics["clip_cosine"] for r in results]
    assert all(-1.0 <= c <= 1.0 for c in cos)
    assert [r.value for r in results] == [max(c, 0.0) for c in cos]
    swapped = scorer.cosines(images, PROMPTS[::-1])
    assert not np.allclose(swapped, cos)
    assert np.allclose(scorer.cosines(images, PROMPTS), cos)  # deterministic


def test_pickscore_is_logit_scale_times_cosine(tiny_clip: str) -> None:
    pick = PickScore(tiny_clip, processor=tiny_clip)
    images = _images()
    cos = ClipScore(tiny_clip).cosines(images, PROMPTS)
    raw = [r.metrics["pickscore"] for r in pick.score(images, PROMPTS)]
    assert np.allclose(raw, pick.backbone.logit_scale * cos, atol=1e-4)


def test_multi_metric_is_sigmoid_of_positive_minus_negative(tiny_clip: str) -> None:
    metrics = (Metric("clarity", "a clear image", "a blurry image"), Metric("color", "red", "blue"))
    flipped = tuple(Metric(m.name, m.negative, m.positive) for m in metrics)
    images = _images()
    forward = MultiMetricScore(tiny_clip, metrics).score(images, PROMPTS)
    backward = MultiMetricScore(tiny_clip, flipped).score(images, PROMPTS)
    for f, b in zip(forward, backward, strict=True):
        assert set(f.metrics) == {"clarity", "color"}
        assert all(0.0 < v < 1.0 for v in f.metrics.values())
        assert f.value == pytest.approx(np.mean(list(f.metrics.values())))
        for name in f.metrics:  # sigma(x) + sigma(-x) = 1
            assert f.metrics[name] + b.metrics[name] == pytest.approx(1.0, abs=1e-6)


def test_registry_builds_each_kind_and_rejects_unknown(tiny_clip: str) -> None:
    assert make_scorer("shapes").name == "shapes"
    assert isinstance(make_scorer(f"clip:{tiny_clip}"), ClipScore)
    assert isinstance(make_scorer(f"pickscore:{tiny_clip}@{tiny_clip}"), PickScore)
    assert isinstance(make_scorer(f"multi:{tiny_clip}"), MultiMetricScore)
    for bad in ("clip", "nope:x", "shapes:x"):
        with pytest.raises(ValueError, match="unknown scorer"):
            make_scorer(bad)


def test_shapes_scorer_value_blends_requirements_and_cleanliness() -> None:
    scorer = make_scorer("shapes")
    images = _images()
    truth = scorer.score(images, PROMPTS)
    assert all(r.value == pytest.approx(1.0) for r in truth)
    assert set(truth[0].metrics) >= {"requirements", "color", "shape", "cleanliness"}
    noise = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    assert all(r.value < 0.2 for r in scorer.score(list(noise), PROMPTS))
    with pytest.raises(ValueError):
        scorer.score(images, PROMPTS[:1])
