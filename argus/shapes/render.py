"""Seeded layout and exact rendering of shapes-world scenes (32x32 RGB, hard edges).

Layout places each object's bounding box inside the canvas, at least one pixel apart from the
others, and (two-object scenes) with the relation on the dominant axis, so a prompt's relation is
unambiguous in its rendering. Rendering is vectorised over a batch of scenes (training speed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from argus.shapes.grammar import BACKGROUNDS, CANVAS, COLORS, SHAPES, SIZE_PX, Scene

# RGB of every colour word; objects and backgrounds share the palette.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 180, 40),
    "blue": (40, 70, 235),
    "yellow": (240, 220, 30),
    "purple": (150, 40, 200),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
MAX_OBJECTS = 3
_GAP = 1.0  # minimum free pixels between two objects' bounding boxes


@dataclass(frozen=True)
class Placed:
    """An object on the canvas: centre (cx, cy) and diameter d in pixels."""

    color: str
    shape: str
    cx: float
    cy: float
    d: int


@dataclass(frozen=True)
class Layout:
    background: str
    objects: tuple[Placed, ...]


def _relation_holds(
    ax: float, ay: float, bx: np.ndarray, by: np.ndarray, relation: str
) -> np.ndarray:
    """Whether B placed at (bx, by) puts A `relation` B, on the relation's dominant axis."""
    dx, dy = bx - ax, by - ay
    if relation in ("left of", "right of"):
        sign = 1 if relation == "left of" else -1
        return sign * dx > np.abs(dy)
    sign = 1 if relation == "above" else -1
    return sign * dy > np.abs(dx)


@functools.cache
def _centres(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Every centre of a d-pixel object whose bounding box starts on a whole pixel."""
    axis = np.arange(CANVAS - d + 1) + d / 2
    cx, cy = np.meshgrid(axis, axis)
    return cx.ravel(), cy.ravel()


def layout(scene: Scene, rng: np.random.Generator) -> Layout:
    """Random non-overlapping placement satisfying the scene (background random if unnamed).

    Objects are placed one after another, each uniformly among the centres still valid.
    """
    background = scene.background or BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    diameters = [int(rng.integers(*SIZE_PX[o.size], endpoint=True)) for o in scene.objects]
    while True:
        placed: list[Placed] = []
        for spec, d in zip(scene.objects, diameters, strict=True):
            cx, cy = _centres(d)
            ok = np.ones(cx.shape, bool)
            for p in placed:
                reach = (p.d + d) / 2 + _GAP
                ok &= (np.abs(cx - p.cx) >= reach) | (np.abs(cy - p.cy) >= reach)
            if placed and scene.relation is not None:
                ok &= _relation_holds(placed[0].cx, placed[0].cy, cx, cy, scene.relation)
            choices = np.flatnonzero(ok)
            if len(choices) == 0:
                break
            i = choices[rng.integers(len(choices))]
            placed.append(Placed(spec.color, spec.shape, float(cx[i]), float(cy[i]), d))
        if len(placed) == len(scene.objects):
            return Layout(background, tuple(placed))


def _masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Boolean masks (..., H, W) of shapes given per object as arrays of equal shape."""
    pix = np.arange(CANVAS, dtype=np.float32) + 0.5
    px = pix[None, :] - cx[..., None, None]  # (..., 1, W)
    py = pix[:, None] - cy[..., None, None]  # (..., H, 1)
    r = (d / 2)[..., None, None]
    circle = px**2 + py**2 <= r**2
    square = (np.abs(px) <= r) & (np.abs(py) <= r)
    # Upward triangle: apex at the top, base at the bottom, half-width grows to r.
    triangle = (py <= r) & (np.abs(px) <= (py + r) / 2)
    s = shape[..., None, None]
    return np.where(s == 0, circle, np.where(s == 1, square, triangle))


def render_batch(layouts: list[Layout]) -> np.ndarray:
    """Images (B, H, W, 3) uint8 of several layouts, rendered in one vectorised pass."""
    n = len(layouts)
    shape = np.full((n, MAX_OBJECTS), -1)
    cx = np.zeros((n, MAX_OBJECTS), np.float32)
    cy = np.zeros((n, MAX_OBJECTS), np.float32)
    d = np.zeros((n, MAX_OBJECTS), np.float32)
    rgb = np.zeros((n, MAX_OBJECTS, 3), np.uint8)
    bg = np.array([PALETTE[lay.background] for lay in layouts], np.uint8)
    for i, lay in enumerate(layouts):
        for j, o in enumerate(lay.objects):
            shape[i, j] = SHAPES.index(o.shape)
            cx[i, j], cy[i, j], d[i, j] = o.cx, o.cy, o.d
            rgb[i, j] = PALETTE[o.color]
    masks = _masks(shape, cx, cy, d) & (shape >= 0)[..., None, None]  # (B, 3, H, W)
    images = np.broadcast_to(bg[:, None, None, :], (n, CANVAS, CANVAS, 3)).copy()
    for j in range(MAX_OBJECTS):
        m = masks[:, j]
        images[m] = np.repeat(rgb[:, j][:, None, None, :], CANVAS, 1).repeat(CANVAS, 2)[m]
    return images


def render(lay: Layout) -> np.ndarray:
    """One image (H, W, 3) uint8."""
    return render_batch([lay])[0]


def render_scene(scene: Scene, seed: int) -> np.ndarray:
    """Ground-truth rendering of a scene with a seeded layout."""
    return render(layout(scene, np.random.default_rng(seed)))


assert set(COLORS) | set(BACKGROUNDS) == set(PALETTE)
