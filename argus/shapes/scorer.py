"""Deterministic, numpy-only quality scorer of shapes-world images (GenEval-style checks).

Each pixel is labelled with its nearest palette colour (or none when far from all). Same-colour
4-connected pixels form blobs; blobs of at least `MIN_BLOB_PX` pixels are objects. A prompt's
requirements: per object its colour is present, its shape and size are right; the object count
is right; the relation holds (two objects); the named background dominates. The score is the
share of requirements met.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from argus.shapes.grammar import BACKGROUNDS, COLORS, Scene, parse
from argus.shapes.render import PALETTE

COLOR_TOLERANCE = 60.0  # RGB distance within which a pixel counts as a palette colour
MIN_BLOB_PX = 12  # smaller same-colour blobs are noise, not objects
LARGE_MIN_PX = 11  # bounding-box side separating small (7-10 px) from large (12-15 px)
MIN_BACKGROUND_SHARE = 0.3
_NAMES = tuple(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], np.float32)


@dataclass(frozen=True)
class Blob:
    color: str
    area: int
    cx: float
    cy: float
    width: int
    height: int
    fill: float  # area / bounding-box area
    top_share: float  # share of the area in the upper half of the bounding box
    corner_fill: float  # occupancy of the four 2x2 corner patches of the bounding box

    @property
    def size(self) -> str:
        return "large" if max(self.width, self.height) >= LARGE_MIN_PX else "small"

    @property
    def shape(self) -> str:
        # Upward triangles are bottom-heavy; squares fill their corners, circles do not.
        if self.top_share < 0.37:
            return "triangle"
        return "square" if self.corner_fill >= 0.6 else "circle"


@dataclass(frozen=True)
class ScoreReport:
    score: float
    """Share of the prompt's requirements met, in [0, 1] (0 when unparsed)."""
    parsed: bool
    requirements: dict[str, bool] = field(default_factory=dict)
    """Requirement (e.g. `object0.color`, `count`, `relation`) -> met."""
    cleanliness: float = 0.0

    def by_kind(self) -> dict[str, float]:
        """Mean pass rate per requirement kind (color, shape, size, count, relation, ...)."""
        kinds: dict[str, list[bool]] = {}
        for name, ok in self.requirements.items():
            kinds.setdefault(name.rsplit(".", 1)[-1], []).append(ok)
        return {k: float(np.mean(v)) for k, v in kinds.items()}


def _as_rgb255(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32)
    return np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0


def _label_colors(rgb: np.ndarray) -> np.ndarray:
    """Palette index per pixel, -1 where no palette colour is within tolerance."""
    dist = np.linalg.norm(rgb[:, :, None, :] - _RGB[None, None], axis=-1)
    nearest = dist.argmin(-1)
    return np.where(dist.min(-1) <= COLOR_TOLERANCE, nearest, -1)


def cleanliness(image: np.ndarray) -> float:
    """Share of pixels within tolerance of a palette colour (1.0 for exact renders)."""
    return float((_label_colors(_as_rgb255(image)) >= 0).mean())


def _components(classes: np.ndarray) -> np.ndarray:
    """4-connected component id per pixel among equal classes (-1 where class is -1)."""
    h, w = classes.shape
    labels = np.where(classes >= 0, np.arange(h * w).reshape(h, w), h * w)
    big = h * w
    while True:
        new = labels.copy()
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            nb_lab = np.roll(labels, shift, axis)
            nb_cls = np.roll(classes, shift, axis)
            edge = np.zeros_like(classes, bool)
            idx = [slice(None)] * 2
            idx[axis] = 0 if shift == 1 else -1
            edge[tuple(idx)] = True  # no wrap-around
            same = (nb_cls == classes) & (classes >= 0) & ~edge
            new = np.where(same, np.minimum(new, nb_lab), new)
        if np.array_equal(new, labels):
            return np.where(labels == big, -1, labels)
        labels = new


def find_blobs(image: np.ndarray) -> tuple[list[Blob], str | None, float]:
    """Object blobs (largest first), the dominant background colour and its pixel share."""
    classes = _label_colors(_as_rgb255(image))
    share = {b: float((classes == _NAMES.index(b)).mean()) for b in BACKGROUNDS}
    background = max(share, key=share.__getitem__)
    object_classes = np.where(np.isin(classes, [_NAMES.index(c) for c in COLORS]), classes, -1)
    comps = _components(object_classes)
    blobs = []
    for cid in np.unique(comps[comps >= 0]):
        ys, xs = np.nonzero(comps == cid)
        if len(ys) < MIN_BLOB_PX:
            continue
        width, height = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
        mid = ys.min() + height / 2
        box = comps[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] == cid
        corners = np.concatenate([box[:2, :2], box[:2, -2:], box[-2:, :2], box[-2:, -2:]])
        blobs.append(
            Blob(
                color=_NAMES[object_classes[ys[0], xs[0]]],
                area=len(ys),
                cx=float(xs.mean() + 0.5),
                cy=float(ys.mean() + 0.5),
                width=width,
                height=height,
                fill=len(ys) / (width * height),
                top_share=float(((ys + 0.5) < mid).mean()),
                corner_fill=float(corners.mean()),
            )
        )
    blobs.sort(key=lambda b: -b.area)
    return blobs, background, share[background]


def _relation_met(a: Blob, b: Blob, relation: str) -> bool:
    margin = 1.0
    if relation == "left of":
        return b.cx - a.cx > margin
    if relation == "right of":
        return a.cx - b.cx > margin
    if relation == "above":
        return b.cy - a.cy > margin
    return a.cy - b.cy > margin


def score_scene(image: np.ndarray, scene: Scene) -> dict[str, bool]:
    """Requirement name -> met, for a parsed scene."""
    blobs, background, bg_share = find_blobs(image)
    req: dict[str, bool] = {}
    found: list[Blob | None] = []
    for i, obj in enumerate(scene.objects):
        blob = next((b for b in blobs if b.color == obj.color), None)
        found.append(blob)
        req[f"object{i}.color"] = blob is not None
        req[f"object{i}.shape"] = blob is not None and blob.shape == obj.shape
        req[f"object{i}.size"] = blob is not None and blob.size == obj.size
    req["count"] = len(blobs) == len(scene.objects)
    if scene.relation is not None:
        a, b = found
        req["relation"] = a is not None and b is not None and _relation_met(a, b, scene.relation)
    if scene.background is not None:
        req["background"] = background == scene.background and bg_share >= MIN_BACKGROUND_SHARE
    return req


def score(image: np.ndarray, prompt: str) -> ScoreReport:
    """Score one image (uint8 0-255 or float 0-1, (H, W, 3)) against its prompt."""
    clean = cleanliness(image)
    scene = parse(prompt)
    if scene is None:
        return ScoreReport(score=0.0, parsed=False, cleanliness=clean)
    req = score_scene(image, scene)
    return ScoreReport(
        score=sum(req.values()) / len(req), parsed=True, requirements=req, cleanliness=clean
    )
