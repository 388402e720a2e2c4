"""Multi-metric quality: the CLIP-style scorer (tiny random CLIP loaded by path) and the
shapes-world metric vector from the shapes scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.routing.metrics import (
    ROUTET2I_METRICS,
    SHAPES_METRIC_NAMES,
    ClipMetricScorer,
    Metric,
    ShapesMetricScorer,
)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, word_tokenizer) -> Path:
    """A randomly initialised CLIP with a word-level tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    tokenizer = word_tokenizer({w for m in ROUTET2I_METRICS for t in (m.positive, m.negative)
                                for w in t.split()})
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    path = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_routet2i_ships_ten_distinct_metrics() -> None:
    names = [m.name for m in ROUTET2I_METRICS]
    assert names == ["definition", "detail", "clarity", "sharpness", "harmony", "realism",
                     "color", "consistency", "layout", "integrity"]
    assert all(m.positive != m.negative for m in ROUTET2I_METRICS)


def test_clip_metrics_are_sigmoid_of_the_similarity_difference(tiny_clip: Path) -> None:
    scorer = ClipMetricScorer(tiny_clip)
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32, 3)).astype(np.float32),
              rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)]
    q = scorer.score(images)
    assert q.shape == (2, 10) and np.all((q > 0) & (q < 1))
    assert not np.allclose(q[0], q[1])  # the image matters
    # Swapping a metric's texts gives 1 - q: σ(b - a) = 1 - σ(a - b).
    flipped = ClipMetricScorer(tiny_clip, [Metric(m.name, m.negative, m.positive)
                                           for m in ROUTET2I_METRICS])
    assert np.allclose(flipped.score(images), 1.0 - q, atol=1e-5)


def test_shapes_metrics_from_the_shapes_scorer() -> None:
    render = pytest.importorskip("argus.shapes.render")
    grammar = pytest.importorskip("argus.shapes.grammar")
    prompt = "a large red circle left of a small blue square"
    scene = grammar.parse(prompt)
    image = render.render_scene(scene, seed=0)
    noise = np.random.default_rng(0).random(image.shape).astype(np.float32)
    q = ShapesMetricScorer().score([image, noise], [prompt, prompt])
    assert ShapesMetricScorer.names == list(SHAPES_METRIC_NAMES) and q.shape == (2, 6)
    assert q[0].min() >= 0.95  # the exact render meets every requirement and is clean
    assert q[1].mean() < q[0].mean() - 0.5
    one = ShapesMetricScorer().score([image], ["a large red circle"])
    assert one[0, SHAPES_METRIC_NAMES.index("relation")] == 1.0  # not asked: counts as met
