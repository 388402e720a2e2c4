"""`argus profile` end to end on the shipped small variant: real generations, real scorer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from argus.cli import main
from argus.control.profile import Profile

PROMPTS = [
    "a large red circle",
    "a large blue circle",
    "a small green square above a large yellow triangle on a white background",
]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = {
        "variants": [
            {"name": "shapes-s", "source": "builtin:shapes-s", "default_steps": 3,
             "resolution": 32, "guidance_scale": 3.0},
        ],
        "levels": [
            {"name": "s-3", "variant": "shapes-s", "steps": 3},
            {"name": "s-2", "variant": "shapes-s", "steps": 2},
            {"name": "s-3-k1", "variant": "shapes-s", "steps": 3, "cache_k": 1},
        ],
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# held-out style prompts\n" + "\n".join(PROMPTS) + "\n\n")
    return config_path, prompts


def test_profile_measures_every_level_and_prompt(setup: tuple[Path, Path], tmp_path: Path):
    config, prompts = setup
    out = tmp_path / "profile.json"
    code = main(["profile", "--config", str(config), "--prompts", str(prompts), "--out", str(out),
                 "--batch-sizes", "1,2", "--seeds", "0,1", "--repeats", "1"])
    assert code == 0
    profile = Profile.load(out)
    assert profile.full_level == "s-3" and profile.quality_source == "measured"
    assert [lv.name for lv in profile.levels] == ["s-3", "s-2", "s-3-k1"]
    assert profile.variants[0].load_time_s > 0 and profile.variants[0].memory_gb > 0
    for level in profile.levels:
        assert set(level.service_time_s) == {1, 2}
        assert all(t > 0 for t in level.service_time_s.values())
    assert profile.level("s-3").mean_quality == 1.0
    assert [p.prompt for p in profile.prompts] == PROMPTS
    for row in profile.prompts:
        assert row.quality["s-3"] == 1.0
        assert set(row.score) == set(row.metrics) == {"s-3", "s-2", "s-3-k1"}
        assert {"requirements", "color", "shape", "cleanliness"} <= set(row.metrics["s-2"])
        full = row.score["s-3"]
        if full >= 0.05:
            assert row.quality["s-2"] == pytest.approx(row.score["s-2"] / full, abs=1e-3)
        assert 0 < row.similarity <= 1.0
    # the two circle prompts differ in one word: each is the other's nearest neighbour
    assert profile.prompts[0].similarity == pytest.approx(profile.prompts[1].similarity)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-sizes", "0"], "batch sizes"),
        (["--batch-sizes", "a,b"], "batch-sizes"),
        (["--levels", "nope"], "unknown level"),
        (["--scorer", "bogus"], "unknown scorer"),
    ],
)
def test_profile_rejects_bad_input(setup, tmp_path, capsys, extra, message) -> None:
    config, prompts = setup
    args = ["profile", "--config", str(config), "--prompts", str(prompts),
            "--out", str(tmp_path / "p.json"), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_profile_rejects_missing_or_empty_prompt_file(setup, tmp_path, capsys) -> None:
    config, _ = setup
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    for prompts in (tmp_path / "missing.txt", empty):
        args = ["profile", "--config", str(config), "--prompts", str(prompts),
                "--out", str(tmp_path / "p.json")]
        assert main(args) == 2
    assert "no prompts" in capsys.readouterr().err
