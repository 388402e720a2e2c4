"""Shapes world: grammar, split, layout, renderer, tokenizer and the scorer's validation."""

from __future__ import annotations

import numpy as np
import pytest

from argus.shapes.dataset import sample_batch, to_latents
from argus.shapes.grammar import (
    CANVAS,
    COLORS,
    GRAMMAR_WORDS,
    SIZE_PX,
    ObjectSpec,
    Scene,
    is_held_out,
    parse,
    sample_prompts,
    sample_scene,
)
from argus.shapes.model import FastTokenizer, build_tokenizer, token_ids
from argus.shapes.render import PALETTE, layout, render_scene
from argus.shapes.scorer import cleanliness, find_blobs, score


def _scenes(count: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(count)]


def test_prompts_round_trip_through_the_parser() -> None:
    for scene in _scenes(200):
        assert parse(scene.prompt) == scene
    assert parse("A Large RED circle, a small blue square and a large green triangle") == Scene(
        (
            ObjectSpec("red", "circle", "large"),
            ObjectSpec("blue", "square", "small"),
            ObjectSpec("green", "triangle", "large"),
        )
    )


@pytest.mark.parametrize(
    "prompt",
    [
        "a photo of a cat",
        "a large red circle left of a small red square",  # colours must be distinct
        "a huge red circle",
        "a large red circle on a grey background",
        "",
    ],
)
def test_prompts_outside_the_grammar_do_not_parse(prompt: str) -> None:
    assert parse(prompt) is None
    report = score(np.zeros((32, 32, 3), np.uint8), prompt)
    assert not report.parsed and report.score == 0.0


def test_split_is_stable_and_training_never_sees_held_out_prompts() -> None:
    held = sample_prompts(seed=1, count=60, held_out=True)
    assert held == sample_prompts(seed=1, count=60, held_out=True)
    assert all(is_held_out(p) for p in held if len(parse(p).objects) > 1)
    assert [len(parse(p).objects) for p in held[:6]] == [1, 2, 3, 1, 2, 3]
    _, captions = sample_batch(np.random.default_rng(0), 300)
    assert not any(is_held_out(c) for c in captions if c)
    assert 10 <= captions.count("") <= 60  # ~10% null captions


def test_layout_respects_canvas_sizes_gaps_and_relations() -> None:
    rng = np.random.default_rng(3)
    for scene in _scenes(150, seed=3):
        lay = layout(scene, rng)
        for spec, obj in zip(scene.objects, lay.objects, strict=True):
            lo, hi = SIZE_PX[spec.size]
            assert lo <= obj.d <= hi
            assert obj.d / 2 <= obj.cx <= CANVAS - obj.d / 2
            assert obj.d / 2 <= obj.cy <= CANVAS - obj.d / 2
        for i, a in enumerate(lay.objects):
            for b in lay.objects[i + 1 :]:
                reach = (a.d + b.d) / 2 + 1
                assert abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach


def test_rendering_is_exact_and_seeded() -> None:
    scene = parse("a large red square on a black background")
    image = render_scene(scene, seed=5)
    assert np.array_equal(image, render_scene(scene, seed=5))
    red = np.all(image == PALETTE["red"], axis=-1)
    assert SIZE_PX["large"][0] ** 2 <= red.sum() <= SIZE_PX["large"][1] ** 2
    assert np.all(image[~red] == PALETTE["black"])
    latents = to_latents(image[None])
    assert latents.shape == (1, 12, 16, 16) and latents.min() >= -1 and latents.max() <= 1


def test_scorer_passes_ground_truth() -> None:
    scenes = _scenes(120, seed=7)
    reports = [score(render_scene(s, seed=i), s.prompt) for i, s in enumerate(scenes)]
    assert np.mean([r.score for r in reports]) >= 0.95
    assert all(r.parsed and r.cleanliness == 1.0 for r in reports)
    kinds = {k for r in reports for k in r.by_kind()}
    assert kinds == {"color", "shape", "size", "count", "relation", "background"}


def test_scorer_fails_uniform_noise() -> None:
    rng = np.random.default_rng(0)
    scenes = _scenes(30, seed=8)
    noise_u8 = [score(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), s.prompt) for s in scenes]
    noise_f = [score(rng.random((32, 32, 3)), s.prompt) for s in scenes]
    assert np.mean([r.score for r in noise_u8 + noise_f]) <= 0.1
    assert np.mean([r.cleanliness for r in noise_u8]) < 0.6


def test_wrong_colour_wrong_shape_and_wrong_relation_score_lower() -> None:
    def with_colour(scene: Scene, colour: str) -> Scene:
        obj = scene.objects[0]
        return Scene((ObjectSpec(colour, obj.shape, obj.size),), None, scene.background)

    right, wrong_colour, wrong_shape = [], [], []
    for i, scene in enumerate(_scenes(60, seed=9)):
        one = Scene(scene.objects[:1], None, scene.background)
        image = render_scene(one, seed=i)
        right.append(score(image, one.prompt).score)
        other = next(c for c in COLORS if c != one.objects[0].color)
        wrong_colour.append(score(render_scene(with_colour(one, other), seed=i), one.prompt).score)
        shape = "square" if one.objects[0].shape != "square" else "circle"
        swapped = Scene((ObjectSpec(one.objects[0].color, shape, one.objects[0].size),))
        wrong_shape.append(score(render_scene(swapped, seed=i), one.prompt).score)
    assert np.mean(right) >= 0.95
    assert np.mean(wrong_colour) <= np.mean(right) - 0.4
    assert np.mean(wrong_shape) <= np.mean(right) - 0.15

    scene = parse("a small red circle left of a large blue square")
    image = render_scene(scene, seed=0)
    mirrored = score(image[:, ::-1].copy(), scene.prompt).requirements
    assert score(image, scene.prompt).requirements["relation"]
    assert not mirrored["relation"]


def test_blob_features_classify_every_rendered_shape_and_size() -> None:
    for shape in ("circle", "square", "triangle"):
        for size in ("small", "large"):
            scene = Scene((ObjectSpec("purple", shape, size),), None, "white")
            for seed in range(6):
                blobs, background, share = find_blobs(render_scene(scene, seed))
                assert [(b.shape, b.size) for b in blobs] == [(shape, size)]
                assert background == "white" and share > 0.5
    assert cleanliness(np.full((32, 32, 3), 128, np.uint8)) == 0.0


def test_tokenizer_has_one_token_per_grammar_word_and_fast_path_matches() -> None:
    tokenizer = build_tokenizer()
    for word in GRAMMAR_WORDS:
        assert len(tokenizer.tokenize(word)) == 1, word
    prompts = [s.prompt for s in _scenes(100, seed=11)] + [""]
    assert np.array_equal(FastTokenizer(tokenizer)(prompts), token_ids(tokenizer, prompts))
    assert tokenizer.model_max_length >= max(len(p.split()) for p in prompts) + 2
