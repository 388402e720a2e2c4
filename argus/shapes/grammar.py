"""The shapes-world prompt grammar: scenes, their prompts, parsing and seeded sampling.

One object:    `a {size} {color} {shape}`
Two objects:   `a {size} {color} {shape} {rel} a {size} {color} {shape}`
Three objects: `a {size} {color} {shape} , a {size} {color} {shape} and a {size} {color} {shape}`
Optional suffix ` on a {white|black} background`. Colours within a scene are distinct.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

CANVAS = 32
COLORS = ("red", "green", "blue", "yellow", "purple")
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
BACKGROUNDS = ("white", "black")
# Object diameter in pixels per size word (inclusive ranges, from the issue).
SIZE_PX = {"small": (7, 9), "large": (12, 14)}

# Every word the grammar can produce, in a fixed order (the tokenizer's vocabulary).
GRAMMAR_WORDS: tuple[str, ...] = (
    ("a", ",", "and", "on", "background", "left", "right", "of", "above", "below")
    + COLORS
    + SHAPES
    + SIZES
    + BACKGROUNDS
)


@dataclass(frozen=True)
class ObjectSpec:
    color: str
    shape: str
    size: str

    @property
    def phrase(self) -> str:
        return f"a {self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """What a prompt asks for; `relation` links objects[0] to objects[1] (two-object scenes)."""

    objects: tuple[ObjectSpec, ...]
    relation: str | None = None
    background: str | None = None

    @property
    def prompt(self) -> str:
        objs = self.objects
        if len(objs) == 1:
            text = objs[0].phrase
        elif len(objs) == 2:
            text = f"{objs[0].phrase} {self.relation} {objs[1].phrase}"
        else:
            text = f"{objs[0].phrase} , {objs[1].phrase} and {objs[2].phrase}"
        if self.background:
            text += f" on a {self.background} background"
        return text


_OBJ = rf"a ({'|'.join(SIZES)}) ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})"
_BG = rf"(?: on a ({'|'.join(BACKGROUNDS)}) background)?"
_ONE = re.compile(rf"{_OBJ}{_BG}")
_TWO = re.compile(rf"{_OBJ} ({'|'.join(RELATIONS)}) {_OBJ}{_BG}")
_THREE = re.compile(rf"{_OBJ} , {_OBJ} and {_OBJ}{_BG}")


def normalize(prompt: str) -> str:
    """Lower-case, detach commas, collapse whitespace (how the tokenizer sees a prompt)."""
    return " ".join(prompt.lower().replace(",", " , ").split())


def parse(prompt: str) -> Scene | None:
    """The scene a prompt asks for, or None when the prompt is outside the grammar."""
    text = normalize(prompt)
    for pattern, n in ((_ONE, 1), (_TWO, 2), (_THREE, 3)):
        m = pattern.fullmatch(text)
        if m is None:
            continue
        g = m.groups()
        if n == 2:
            objs = (ObjectSpec(g[1], g[2], g[0]), ObjectSpec(g[5], g[6], g[4]))
            relation, background = g[3], g[7]
        else:
            objs = tuple(ObjectSpec(g[i + 1], g[i + 2], g[i]) for i in range(0, 3 * n, 3))
            relation, background = None, g[3 * n]
        if len({o.color for o in objs}) != len(objs):
            return None
        return Scene(objs, relation, background)
    return None


def is_held_out(prompt: str) -> bool:
    """Fixed train/held-out split of multi-object prompts (1 in 8 held out, by stable hash).

    One-object prompts (30 combinations) are too few to hold out; they are all trained on.
    The background suffix does not matter for the split.
    """
    scene = parse(prompt)
    if scene is None or len(scene.objects) == 1:
        return False
    core = Scene(scene.objects, scene.relation, None).prompt
    return hashlib.sha256(core.encode()).digest()[0] % 8 == 0


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    background_phrase_p: float = 0.5,
) -> Scene:
    """A random scene (uniform object count unless given); its prompt may name the background."""
    n = int(rng.integers(1, 4)) if n_objects is None else n_objects
    colors = rng.choice(len(COLORS), size=n, replace=False)
    objs = tuple(
        ObjectSpec(COLORS[c], SHAPES[rng.integers(3)], SIZES[rng.integers(2)]) for c in colors
    )
    relation = RELATIONS[rng.integers(4)] if n == 2 else None
    background = BACKGROUNDS[rng.integers(2)] if rng.random() < background_phrase_p else None
    return Scene(objs, relation, background)


def sample_prompts(seed: int, count: int, held_out: bool) -> list[str]:
    """`count` distinct prompts, balanced over object counts, from one side of the split."""
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    seen: set[str] = set()
    while len(prompts) < count:
        scene = sample_scene(rng, n_objects=len(prompts) % 3 + 1)
        p = scene.prompt
        if p in seen or (len(scene.objects) > 1 and is_held_out(p) != held_out):
            continue
        seen.add(p)
        prompts.append(p)
    return prompts
