"""`argus route-eval` on a SYNTHETIC two-tier profile (see conftest), and its failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.cli import main
from argus.cli import route_eval as route_eval_cli
from argus.routing.predictor import PRSPredictor


def test_route_eval_beats_random_and_writes_json(two_tier_profile_path: Path,
                                                 tmp_path: Path, capsys) -> None:
    out, saved = tmp_path / "result.json", tmp_path / "predictor.json"
    code = main(["route-eval", "--profile", str(two_tier_profile_path), "--budget", "0.5",
                 "--json", str(out), "--save-predictor", str(saved)])
    assert code == 0
    result = json.loads(out.read_text())
    assert {"delta_p", "delta_p_random", "cloud_share", "cloud_call_reduction"} <= set(result)
    assert 0 < result["cloud_share"] <= 0.5
    assert result["delta_p"] > result["delta_p_random"] + 0.2
    assert abs(result["delta_p_random"] - result["cloud_share"]) < 0.05
    assert 0 < result["cloud_call_reduction"] < 1
    baselines = result["details"]["baselines"]
    assert baselines["oracle_prs"] >= result["delta_p"] - 1e-9
    assert "delta_p" in capsys.readouterr().out
    assert PRSPredictor.load(saved).predict_prs("a small red triangle") < 1.0


def test_zero_budget_sends_nothing_to_the_cloud(two_tier_profile_path: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["route-eval", "--profile", str(two_tier_profile_path), "--budget", "0",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cloud_share"] == 0 and result["delta_p"] == 0
    assert result["cloud_call_reduction"] is None


def test_missing_default_profile_fails_clearly(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(route_eval_cli, "DEFAULT_PROFILE", tmp_path / "absent" / "profile.json")
    assert main(["route-eval", "--budget", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "no profile at" in err and "pass --profile" in err


@pytest.mark.parametrize("args,message", [
    (["--budget", "1.5"], "--budget"),
    (["--held-out", "0"], "--held-out"),
    (["--edge-level", "nope"], "nope"),
])
def test_bad_arguments_are_clean_errors(two_tier_profile_path: Path, capsys, args, message):
    assert main(["route-eval", "--profile", str(two_tier_profile_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_metric_selection(two_tier_profile) -> None:
    from argus.routing.evaluate import tier_data
    from argus.routing.metrics import SHAPES_METRIC_NAMES

    assert tier_data(two_tier_profile).metric_names == list(SHAPES_METRIC_NAMES)
    picked = tier_data(two_tier_profile, metrics=["color", "count"])
    assert picked.metric_names == ["color", "count"] and picked.q_edge.shape[1] == 2
    with pytest.raises(ValueError, match="no metric"):
        tier_data(two_tier_profile, metrics=["realism"])


@pytest.mark.parametrize("budget", [0.2, 0.5, 0.8])
def test_every_prompt_is_held_out_once_and_the_share_stays_in_budget(two_tier_profile, budget):
    from argus.routing.evaluate import evaluate, tier_data

    data = tier_data(two_tier_profile)
    result, _ = evaluate(data, budget, folds=4)
    assert result["details"]["held_out_prompts"] == len(data.prompts)
    assert result["cloud_share"] <= budget
    assert result["delta_p"] > result["delta_p_random"]
    assert result["details"]["baselines"]["oracle_prs"] >= result["delta_p"] - 0.1


def test_default_tiers_are_the_full_level_and_the_fastest_other_variant(two_tier_profile):
    from argus.control.profile import LevelProfile, VariantProfile
    from argus.routing.evaluate import default_levels

    assert default_levels(two_tier_profile) == ("s-50", "l-50")
    mid = two_tier_profile.model_copy(update={
        "variants": [*two_tier_profile.variants, VariantProfile(name="mid", load_time_s=1.0)],
        "levels": [*two_tier_profile.levels,
                   LevelProfile(name="m-50", variant="mid", steps=50, service_time_s={1: 0.7},
                                mean_quality=0.9)],
    })
    assert default_levels(mid) == ("s-50", "l-50")  # tiny's best level is faster than mid's


def test_levels_measured_in_separate_runs_are_joined(two_tier_profile, tmp_path: Path) -> None:
    """`--profile cloud.json --profile edge.json`: one run per tier, joined on the prompt."""
    from argus.control.profile import Profile

    def only(level: str, drop_last: bool) -> Path:
        rows = [r.model_copy(update={"quality": {level: r.quality[level]},
                                     "score": {level: r.score[level]},
                                     "metrics": {level: r.metrics[level]}})
                for r in two_tier_profile.prompts[: -1 if drop_last else None]]
        keep = [lv for lv in two_tier_profile.levels if lv.name == level]
        part = two_tier_profile.model_copy(update={
            "levels": keep, "prompts": rows, "full_level": level,
            "variants": [v for v in two_tier_profile.variants if v.name == keep[0].variant]})
        path = tmp_path / f"{level}.json"
        Profile.model_validate(part.model_dump()).save(path)
        return path

    cloud, edge = only("l-50", False), only("s-50", True)
    out = tmp_path / "joined.json"
    assert main(["route-eval", "--profile", str(cloud), "--profile", str(edge),
                 "--json", str(out)]) == 0
    details = json.loads(out.read_text())["details"]
    assert (details["edge_level"], details["cloud_level"]) == ("s-50", "l-50")
    both = {r.prompt for r in two_tier_profile.prompts[:-1]}  # the edge run lacks the last
    assert details["held_out_prompts"] == len(both)
