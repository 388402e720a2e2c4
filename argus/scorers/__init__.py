"""Image quality scorers for `argus profile` and offline evaluation.

Every scorer maps (images, prompts) to one quality value per image plus named metrics:
- `shapes`: the exact shapes-world scorer (requirements met, blended with cleanliness),
- `clip:<id-or-path>`: CLIP score (Hessel et al. 2021),
- `pickscore:<id-or-path>[@<processor-id-or-path>]`: PickScore (Kirstain et al. 2023),
- `multi:<id-or-path>`: RouteT2I-style metrics sigma(sim(I, m+) - sim(I, m-)), one per metric.
Real models load with transformers by hub id or local path (offline: a filled cache or a path).
"""

from __future__ import annotations

from argus.scorers.base import ImageScorer, ScoredImage
from argus.scorers.registry import make_scorer

__all__ = ["ImageScorer", "ScoredImage", "make_scorer"]
