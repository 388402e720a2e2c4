from __future__ import annotations

import json

import numpy as np
import pytest

from argus.cli import main
from argus.control.builtin import a100_sdxl
from argus.control.levels import LevelTable
from argus.control.predictor import ProfilePredictor, TablePredictor
from argus.control.profile import LevelProfile, Profile, PromptQuality, VariantProfile
from argus.control.training import (
    LinearPredictor,
    evaluate,
    fitted_for_table,
    train_and_evaluate,
)
from argus.sim.quality import modelled_prompt_table
from argus.types import Request


def text_profile(count: int = 300) -> Profile:
    """Prompts mentioning 'text' lose quality at the small variant; others do not."""
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "red", "cube", "sky", "tree", "car", "blue", "ball", "house"]
    rows = []
    for i in range(count):
        hard = i % 3 == 0
        prompt = " ".join(rng.choice(words, 4)) + (" with text saying hello" if hard else "")
        small = 0.7 if hard else 0.97
        rows.append(PromptQuality(prompt=prompt, quality={"big": 1.0, "small": small}))
    return Profile(
        name="text-test", hardware="test", quality_source="modelled", full_level="big",
        variants=[VariantProfile(name="b", load_time_s=1.0),
                  VariantProfile(name="s", load_time_s=1.0)],
        levels=[LevelProfile(name="big", variant="b", steps=10, service_time_s={1: 1.0},
                             mean_quality=1.0),
                LevelProfile(name="small", variant="s", steps=10, service_time_s={1: 0.3},
                             mean_quality=0.87)],
        prompts=rows,
    )


def test_learns_prompt_dependent_quality():
    profile = text_profile()
    table = LevelTable.build(profile, 10.0)
    model, metrics = train_and_evaluate(profile, table, floor=0.9)
    assert metrics["mae"] < 0.05
    assert metrics["floor_hit_rate"] == 1.0
    # The profile means say 0.87 < 0.9 for everyone: no prompt would get the small variant.
    assert metrics["baseline_profile_means"]["mean_speedup"] == pytest.approx(1.0)
    assert metrics["mean_speedup"] > 1.5
    easy = model.predict(Request("red cube", 0.0, 1.0))
    hard = model.predict(Request("red cube with text saying hello", 0.0, 1.0))
    assert easy["small"] > 0.9 > hard["small"]


def test_save_load_round_trip(tmp_path):
    profile = text_profile(60)
    table = LevelTable.build(profile, 10.0)
    model, _ = train_and_evaluate(profile, table, floor=0.9)
    model.save(tmp_path / "m.json")
    again = LinearPredictor.load(tmp_path / "m.json", table)
    req = Request("blue ball", 0.0, 1.0)
    assert again.predict(req) == pytest.approx(model.predict(req))
    other = LevelTable.build(a100_sdxl(), 21.0)
    with pytest.raises(ValueError, match="trained for levels"):
        LinearPredictor.load(tmp_path / "m.json", other)


def test_evaluate_counts_floor_hits():
    table = LevelTable.build(text_profile(10), 10.0)
    truth = np.array([[1.0, 0.95], [1.0, 0.5]])
    # Both predicted to tolerate the small level: one really does, one does not.
    predicted = np.array([[1.0, 0.95], [1.0, 0.95]])
    result = evaluate(table, predicted, truth, 0.9)
    assert result["floor_hit_rate"] == 0.5
    assert result["mae"] == pytest.approx(0.45 / 4)


def test_modelled_table_learns_cache_similarity():
    profile = modelled_prompt_table(a100_sdxl(), [f"prompt {i}" for i in range(600)], seed=1)
    assert profile.quality_source == "modelled" and len(profile.prompts) == 600
    table = LevelTable.build(profile, 21.0)
    model, metrics = train_and_evaluate(profile, table, floor=0.9)
    near = model.predict(Request("x", 0.0, 1.0, cache_similarity=0.97))
    far = model.predict(Request("x", 0.0, 1.0, cache_similarity=0.5))
    assert near["sdxl-k25"] > far["sdxl-k25"] + 0.1
    assert metrics["mae"] < 0.06


def test_cli_train_predictor(tmp_path, capsys):
    profile = text_profile(80)
    profile.save(tmp_path / "p.json")
    out = tmp_path / "m.json"
    assert main(["train-predictor", "--profile", str(tmp_path / "p.json"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "held-out MAE" in text and "floor-hit rate" in text
    assert json.loads(out.read_text())["metrics"]["heldout_prompts"] == 16
    text_profile(5).save(tmp_path / "tiny.json")
    assert main(["train-predictor", "--profile", str(tmp_path / "tiny.json"), "--out",
                 str(out)]) == 2
    assert "per-prompt rows" in capsys.readouterr().err


def test_learns_a100_text_dependent_quality():
    """The built-in profile's modelled per-prompt quality depends on the prompt text; the trained
    predictor (text + similarity) beats the profile means on held-out prompts."""
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    _, metrics = train_and_evaluate(profile, table, floor=0.9)
    base = metrics["baseline_profile_means"]
    assert metrics["heldout_prompts"] == 326
    assert metrics["mae"] < 0.8 * base["mae"]
    assert metrics["mean_speedup"] > base["mean_speedup"] + 0.1
    assert metrics["floor_hit_rate"] > 0.7


def test_cached_predictor_matches_model():
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    cached = fitted_for_table(table)
    for prompt, sim in [(profile.prompts[3].prompt, 0.91), ("a dog", None), ("a dog", 0.5)]:
        request = Request(prompt, 0.0, 1.0, cache_similarity=sim)
        first = cached.predict(request)
        assert first == pytest.approx(cached.model.predict(request))
        assert cached.predict(Request(prompt, 0.0, 1.0, cache_similarity=sim)) is first
    simple = cached.predict(Request("a flower", 0.0, 1.0))
    hard = cached.predict(Request(
        'three red cubes on top of a blue sphere next to a sign saying "hello world", '
        "two cats and a dog playing with a ball under a table", 0.0, 1.0))
    assert simple["sd15"] > hard["sd15"] + 0.05


def test_table_predictor_discounts_in_band_cache_levels():
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    predictor = TablePredictor(table, ProfilePredictor(table))
    row = profile.prompts[11].quality
    near = predictor.predict(Request("x", 0.0, 1.0, prompt_id=11, cache_similarity=0.97))
    far = predictor.predict(Request("x", 0.0, 1.0, prompt_id=11, cache_similarity=0.5))
    assert near["sdxl-k25"] == pytest.approx(row["sdxl-k25"])
    assert far["sdxl-k25"] == pytest.approx(row["sdxl-k25"] - 0.5 * (0.95 - 0.5))
    assert near["sd15"] == far["sd15"] == row["sd15"]


def test_configured_predictor_is_used_by_the_plane(tmp_path):
    """`control.predictor` names the file the plane predicts with; the embedded default names
    the shipped one, trained for the shipped family's levels."""
    from argus.control.builtin import config_for_profile, resolve_profile
    from argus.control.plane import ControlPlane
    from argus.defaults import PREDICTOR_FILE, default_config

    config = default_config()
    assert config.control.predictor == str(PREDICTOR_FILE)
    plane = ControlPlane(config, resolve_profile(None, config))
    assert type(plane.predictor).__name__ == "CachedLinearPredictor"
    one = plane.predictor.predict(Request("a large red circle", 0.0, 1.0))
    three = plane.predictor.predict(Request(
        "a small red circle , a large blue square and a small green triangle", 0.0, 1.0))
    assert one != three

    profile = text_profile(60)
    model, _ = train_and_evaluate(profile, LevelTable.build(profile, 10.0), floor=0.9)
    model.save(tmp_path / "m.json")
    mine = config_for_profile(profile, control={"predictor": str(tmp_path / "m.json")})
    assert ControlPlane(mine, profile).predictor.predict(
        Request("red cube with text saying hello", 0.0, 1.0))["small"] < 0.9
    wrong = config_for_profile(a100_sdxl(), control={"predictor": str(tmp_path / "m.json")})
    with pytest.raises(ValueError, match="trained for levels"):
        ControlPlane(wrong, a100_sdxl())
