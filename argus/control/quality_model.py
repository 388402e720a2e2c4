"""The modelled per-prompt quality: what a prompt gets at each level when nothing was measured.

It lives in the control plane because the control plane needs it: the built-in `a100-sdxl`
profile's per-prompt table (`argus.control.builtin`) and the predictor's training rows
(`argus.control.training`) come from it; the simulator (`argus.sim.quality`) evaluates it per
request and re-exports these names.

The model is calibrated to the profile's per-level means and spreads and labelled "modelled
quality" in every result:

- Text-dependent sensitivity (`prompt_complexity`): a prompt's complexity follows from its text,
  in the spirit of the published prompt features (RouteT2I: as the noun count rises the large
  model's advantage grows; HADIS's router: num_objects, attribute_density, spatial_relations,
  length; shapes-world notes: 3-object prompts lose more than 1-object ones). Complexity =
  weighted log counts of objects (content words outside the closed lexicons below), attributes
  (colours, sizes, materials, styles), relations (spatial/action words), quantities (number
  words), rendered text (quotes, "sign", "saying", ...) and log length.
- Each prompt's difficulty d = rho * s + sqrt(1 - rho^2) * e, where s is its complexity
  standardised over the prompt population, e ~ N(0, 1) per prompt (what the text does not tell),
  rho = `TEXT_SHARE`; d is standardised again over the population so that the per-level means and
  spreads stay exactly the profile's.
- Relative quality at level l: q = mean_l - std_l * d (the full level stays 1.0): a complex
  prompt loses more at every approximate level, a simple one less.
- At a cache level, minus `SIMILARITY_PENALTY` per unit of the request's cache similarity below
  the band its skip K needs (`argus.control.predictor.cache_level_quality`).
Clipped to [0, 1.2]. Cache similarities are drawn from the profile's published distribution
(`sample_similarity`).

`modelled_prompt_table(profile, prompts)` writes this model into a per-prompt table; with
`in_band=True` (the built-in `a100-sdxl` table) cache levels hold their in-band value and the
simulator discounts them by each request's own similarity.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np

from argus.control.levels import LevelTable
from argus.control.predictor import (
    DEFAULT_BAND_STEPS,
    DEFAULT_BANDS,
    SIMILARITY_PENALTY,
    band_threshold,
)
from argus.control.profile import Profile, PromptQuality

MISS_SIMILARITY = (0.3, 0.65)
"""Uniform range of top-1 similarities below the lowest published band."""

TEXT_SHARE = 0.8
"""Correlation between a prompt's text complexity and its difficulty (modelled): 64% of the
per-prompt spread is explained by the text, the rest is prompt-specific noise."""

_WORD = re.compile(r"[a-z0-9']+")


def _lexicon(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _lexicon(
    "a an the of and or to in at by for from is are was were be been it its this that these those "
    "as into onto very some his her their our my your one's who which what while but not no "
    "than then there here has have had do does done up down out off so such each every all any "
    "image picture photo photograph drawing painting style"
)
_ATTRIBUTES = _lexicon(
    "red orange yellow green blue purple pink brown black white gray grey gold golden silver "
    "dark light bright pale colorful colourful big small large tiny huge giant little tall short "
    "long round square wooden metal glass plastic stone paper furry fluffy shiny old young new "
    "ancient modern cute happy sad angry striped spotted transparent wet dry hot cold soft hard "
    "realistic abstract cartoon watercolor oil pixel minimalist detailed vintage"
)
_RELATIONS = _lexicon(
    "on under above below behind beside next near between inside outside beneath underneath "
    "atop over across through around against toward towards among facing left right top bottom "
    "front back holding riding wearing sitting standing carrying eating playing reading looking "
    "walking chasing jumping flying leaning lying hanging made with"
)
_QUANTITIES = _lexicon(
    "two three four five six seven eight nine ten eleven twelve dozen several many pair couple "
    "multiple few both"
)
_WRITING = _lexicon("text sign saying says written words word letters letter logo reads label "
                     "caption title")
COMPLEXITY_WEIGHTS = {
    "objects": 0.35, "attributes": 0.25, "relations": 0.5, "quantities": 0.6, "writing": 0.8,
    "log_length": 0.3,
}
"""Modelled weights of each prompt feature in the complexity score (relations, counting and
rendered text are the known failure modes of small/approximate diffusion models)."""


def prompt_structure(prompt: str) -> dict[str, float]:
    """Counts of objects, attributes, relations, quantities, rendered-text cues, and log length."""
    words = _WORD.findall(prompt.lower())
    counts = dict.fromkeys(("objects", "attributes", "relations", "quantities", "writing"), 0.0)
    for word in words:
        if word in _STOPWORDS:
            continue
        if word in _ATTRIBUTES:
            counts["attributes"] += 1
        elif word in _RELATIONS:
            counts["relations"] += 1
        elif word in _QUANTITIES or word.isdigit():
            counts["quantities"] += 1
        elif word in _WRITING:
            counts["writing"] += 1
        elif not word.endswith("ly"):
            counts["objects"] += 1
    counts["writing"] += prompt.count('"') // 2
    counts["log_length"] = math.log1p(len(words))
    return counts


def prompt_complexity(prompt: str) -> float:
    """Weighted log1p feature counts (`COMPLEXITY_WEIGHTS`; each extra object matters less than
    the previous one, so paragraph-long prompts are not outliers); higher = more sensitive to
    approximation."""
    features = prompt_structure(prompt)
    return sum(
        weight * (features[name] if name == "log_length" else math.log1p(features[name]))
        for name, weight in COMPLEXITY_WEIGHTS.items()
    )


def _standardise(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 0 else values - values.mean()


def prompt_difficulty(prompts: list[str], rng: np.random.Generator) -> np.ndarray:
    """Per-prompt difficulty d (population mean 0, std 1), `TEXT_SHARE`-correlated with the
    text complexity."""
    text = _standardise(np.array([prompt_complexity(p) for p in prompts]))
    noise = rng.standard_normal(len(prompts))
    return _standardise(TEXT_SHARE * text + math.sqrt(1 - TEXT_SHARE**2) * noise)


def sample_similarity(
    distribution: list[tuple[float, float]] | None, count: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Similarities whose tail shares match `distribution` [(threshold, share above)], uniform
    inside each band; None without a distribution."""
    if not distribution:
        return None
    points = sorted(distribution)
    edges = [MISS_SIMILARITY[0]] + [s for s, _ in points] + [1.0]
    above = [1.0] + [share for _, share in points] + [0.0]
    probs = np.clip(-np.diff(above), 0, None)
    probs = probs / probs.sum()
    band = rng.choice(len(probs), size=count, p=probs)
    lo, hi = np.asarray(edges[:-1]), np.asarray(edges[1:])
    return lo[band] + rng.random(count) * (hi[band] - lo[band])


def is_in_band_table(profile: Profile) -> bool:
    """A modelled per-prompt table without similarities: its cache levels hold the in-band value,
    discounted by each request's own cache similarity."""
    return bool(profile.prompts) and profile.quality_source != "measured" and all(
        p.similarity is None for p in profile.prompts
    )


class LevelArrays(NamedTuple):
    """Per-level inputs of the model, by `LevelTable` position."""

    mean: np.ndarray
    """The profile's mean relative quality."""
    std: np.ndarray
    """The per-prompt spread (0 at the full level: exactly 1.0 there)."""
    threshold: np.ndarray
    """The cache similarity the level's skip K needs (its band threshold)."""
    is_cache: np.ndarray
    """Whether the level resumes from cached latents (K > 0)."""


def level_arrays(
    table: LevelTable,
    bands: list[tuple[float, int]] | tuple = DEFAULT_BANDS,
    band_steps: int = DEFAULT_BAND_STEPS,
) -> LevelArrays:
    std = np.asarray([lv.quality_std for lv in table.profile.levels])
    std[table.full] = 0.0
    return LevelArrays(
        mean=np.asarray(table.mean_quality),
        std=std,
        threshold=np.asarray([
            band_threshold(k, n, bands, band_steps)
            for k, n in zip(table.cache_k, table.steps, strict=True)
        ]),
        is_cache=np.asarray(table.cache_k) > 0,
    )


def modelled_prompt_table(
    profile: Profile, prompts: list[str], seed: int = 0, in_band: bool = False
) -> Profile:
    """The profile with a per-prompt table from the text-dependent model above, labelled
    "modelled". `in_band=False` (training and testing predictors): each row also gets a cache
    similarity drawn from the profile's distribution, and its cache levels are discounted by it.
    `in_band=True` (the built-in profile's table): no similarity; cache levels hold their in-band
    value and the simulator discounts them per request."""
    table = LevelTable.build(profile, slo_s=1.0)
    model = level_arrays(table)
    rng = np.random.default_rng(seed)
    count = len(prompts)
    sims = None if in_band else sample_similarity(profile.similarity_distribution, count, rng)
    difficulty = prompt_difficulty(prompts, rng)
    values = model.mean[None, :] - model.std[None, :] * difficulty[:, None]
    if not in_band:
        shortfall = model.threshold[None, :] - (0.0 if sims is None else sims[:, None])
        values -= np.where(model.is_cache[None, :], SIMILARITY_PENALTY, 0.0) * np.maximum(
            0.0, shortfall)
    values = np.clip(values, 0.0, 1.2)
    values[:, table.full] = 1.0
    names = list(table.names)
    rows = [
        PromptQuality(
            prompt=prompt, quality=dict(zip(names, np.round(values[i], 5).tolist(), strict=True)),
            similarity=None if sims is None else round(float(sims[i]), 5),
        )
        for i, prompt in enumerate(prompts)
    ]
    return profile.model_copy(update={"prompts": rows, "quality_source": "modelled"})
