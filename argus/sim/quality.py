"""The quality a simulated request really gets at a level.

With a measured per-prompt table in the profile, each request is one of its prompts and gets that
prompt's measured value. Otherwise the quality is **modelled** (labelled "modelled quality" in
every result) by the text-dependent model of `argus.control.quality_model`, calibrated to the
profile's per-level means and spreads: q = mean_l - std_l * d for a prompt of difficulty d, minus
`SIMILARITY_PENALTY` per unit of the request's cache similarity below the band its skip K needs
at a cache level, clipped to [0, 1.2]. With an in-band modelled table (the built-in `a100-sdxl`
one) cache levels hold their in-band value and `QualityModel` discounts them by each request's own
similarity. A profile with neither a table nor prompt texts falls back to a latent difficulty
d ~ N(0, 1) per request (no text signal).

The model's pieces (`prompt_complexity`, `sample_similarity`, `modelled_prompt_table`, ...) live
in `argus.control.quality_model`, below the simulator, because the control plane builds its
built-in table and predictor training rows from them; they are re-exported here.
"""

from __future__ import annotations

import numpy as np

from argus.control.levels import LevelTable
from argus.control.predictor import DEFAULT_BAND_STEPS, DEFAULT_BANDS, SIMILARITY_PENALTY
from argus.control.quality_model import (
    COMPLEXITY_WEIGHTS,
    MISS_SIMILARITY,
    TEXT_SHARE,
    is_in_band_table,
    level_arrays,
    modelled_prompt_table,
    prompt_complexity,
    prompt_difficulty,
    prompt_structure,
    sample_similarity,
)

__all__ = [
    "COMPLEXITY_WEIGHTS",
    "MISS_SIMILARITY",
    "TEXT_SHARE",
    "QualityModel",
    "is_in_band_table",
    "modelled_prompt_table",
    "prompt_complexity",
    "prompt_difficulty",
    "prompt_structure",
    "sample_similarity",
]


class QualityModel:
    def __init__(
        self,
        table: LevelTable,
        bands: list[tuple[float, int]] | tuple = DEFAULT_BANDS,
        band_steps: int = DEFAULT_BAND_STEPS,
    ) -> None:
        self.table = table
        prompts = table.profile.prompts
        self.measured = bool(prompts)
        self.in_band = is_in_band_table(table.profile)
        # std is 0 at the full level: relative to it, exactly 1.0 there.
        self.mean, self.std, self.threshold, self.is_cache = level_arrays(table, bands, band_steps)
        if self.measured:
            self.rows = np.array([
                [p.quality.get(name, m) for name, m in zip(table.names, self.mean, strict=True)]
                for p in prompts
            ])

    @property
    def label(self) -> str:
        """How the reported quality was obtained; anything not measured says "modelled"."""
        if not self.measured or self.in_band:
            return "modelled quality"
        if self.table.profile.quality_source == "measured":
            return "measured per-prompt quality"
        return f"modelled quality ({self.table.profile.quality_source} per-prompt table)"

    def of(
        self, level: np.ndarray, prompt_id: np.ndarray, z: np.ndarray,
        similarity: np.ndarray | None,
    ) -> np.ndarray:
        """Vectorised quality of requests served at `level` (positions)."""
        if self.measured and not self.in_band:
            return self.rows[prompt_id, level]
        q = self.rows[prompt_id, level] if self.in_band else self.mean[level] + self.std[level] * z
        if similarity is not None:
            shortfall = np.maximum(0.0, self.threshold[level] - similarity)
        else:
            shortfall = self.threshold[level]
        q = q - np.where(self.is_cache[level], SIMILARITY_PENALTY * shortfall, 0.0)
        return np.clip(q, 0.0, 1.2)
