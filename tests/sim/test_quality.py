"""The modelled per-prompt quality of the built-in profile: text-dependent, calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from argus.control.builtin import a100_sdxl
from argus.control.levels import LevelTable
from argus.sim.quality import QualityModel, prompt_complexity


@pytest.fixture(scope="module")
def table() -> LevelTable:
    return LevelTable.build(a100_sdxl(), 21.0)


def quality_rows(table: LevelTable) -> np.ndarray:
    return np.array([[p.quality[n] for n in table.names] for p in table.profile.prompts])


def test_table_keeps_the_profile_means_and_spreads(table):
    rows = quality_rows(table)
    assert len(rows) == 1632
    assert rows.mean(axis=0) == pytest.approx(table.mean_quality, abs=2e-3)
    spreads = [lv.quality_std for lv in table.profile.levels]
    assert rows.std(axis=0) == pytest.approx(spreads, abs=5e-3)
    assert (rows[:, table.full] == 1.0).all()


def test_complexity_grows_with_objects_relations_and_text():
    one = prompt_complexity("a cube")
    two = prompt_complexity("a cube and a ball")
    three = prompt_complexity("a cube, a ball and a cat")
    related = prompt_complexity("a cube on top of a ball next to a cat")
    assert one < two < three < related
    assert prompt_complexity('a sign saying "open"') > prompt_complexity("a sign")


def test_complex_prompts_lose_more_at_every_approximate_level(table):
    rows = quality_rows(table)
    complexity = np.array([prompt_complexity(p.prompt) for p in table.profile.prompts])
    for name in ("sdxl-k10", "sdxl-s20", "sd15", "tiny-sd"):
        corr = np.corrcoef(complexity, rows[:, table.index[name]])[0, 1]
        assert corr < -0.6, name


def test_cache_levels_are_discounted_by_the_request_similarity(table):
    model = QualityModel(table)
    assert model.in_band and model.label == "modelled quality"
    k25, sd15 = table.index["sdxl-k25"], table.index["sd15"]
    levels = np.array([k25, k25, sd15, sd15])
    pid = np.array([7, 7, 7, 7])
    q = model.of(levels, pid, np.zeros(4), np.array([0.97, 0.5, 0.97, 0.5]))
    in_band = table.profile.prompts[7].quality["sdxl-k25"]
    assert q[0] == pytest.approx(in_band)
    assert q[1] == pytest.approx(in_band - 0.5 * (0.95 - 0.5))
    assert q[2] == q[3] == pytest.approx(table.profile.prompts[7].quality["sd15"])
