"""What the front end needs to know about a variant without loading it (no torch import):
where its files are, whether its weights are random, which image sizes it accepts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argus.config import VariantConfig

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "shapes"


@dataclass(frozen=True)
class RandomArch:
    """Sizes of one random-weight architecture (`source: random:<name>`)."""

    channels: tuple[int, ...]
    """UNet block widths; len - 1 downsamplings."""
    text_dim: int
    """Text encoder width = cross-attention width."""
    pixel_unshuffle: int = 2
    """Pixel-space factor f (0 = SD-style latent model with a tiny VAE, factor 2)."""
    norm_groups: int = 8
    sdxl: bool = False
    """SDXL-class: two text encoders and `text_time` added conditioning."""

    @property
    def size_multiple(self) -> int:
        return (self.pixel_unshuffle or 2) * 2 ** (len(self.channels) - 1)


RANDOM_ARCHS: dict[str, RandomArch] = {
    "pixel-small": RandomArch(channels=(16, 32), text_dim=32),
    "pixel-large": RandomArch(channels=(32, 64), text_dim=64),
    "latent-tiny": RandomArch(channels=(8, 16), text_dim=16, pixel_unshuffle=0, norm_groups=4),
    "sdxl-tiny": RandomArch(
        channels=(8, 16), text_dim=16, pixel_unshuffle=0, norm_groups=4, sdxl=True
    ),
}


def random_arch(name: str) -> RandomArch:
    if name not in RANDOM_ARCHS:
        raise ValueError(
            f"unknown random architecture {name!r}; choose one of {sorted(RANDOM_ARCHS)}"
        )
    return RANDOM_ARCHS[name]


def is_random(source: str) -> bool:
    return source.startswith("random:")


def variant_folder(source: str) -> Path | None:
    """The local folder of a `builtin:` or path source; None for random and hub sources."""
    if is_random(source):
        return None
    if source.startswith("builtin:"):
        return ASSETS_DIR / source.removeprefix("builtin:")
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def folder_latent_factor(folder: Path, default: int) -> int:
    """Image pixels per latent pixel of a diffusers folder: its VAE's downsampling, else a
    pixel-space model's `_argus_pixel_unshuffle`, else `default`."""
    vae = folder / "vae" / "config.json"
    if vae.exists():
        return 2 ** (len(read_json(vae)["block_out_channels"]) - 1)
    index = folder / "model_index.json"
    return int(read_json(index).get("_argus_pixel_unshuffle", default)) if index.exists() \
        else default


def size_multiple(variant: VariantConfig) -> int:
    """Image sides must be multiples of this; read from configs only, no weights loaded."""
    from argus.engine.flow_archs import FLOW_ARCHS, folder_family, folder_size_multiple

    if is_random(variant.source):
        name = variant.source.removeprefix("random:")
        arch = FLOW_ARCHS.get(name) or random_arch(name)
        return arch.size_multiple
    folder = variant_folder(variant.source)
    if folder is not None and folder_family(folder) is not None:
        return folder_size_multiple(folder)
    if folder is None or not (folder / "unet" / "config.json").exists():
        return 8  # hub id: SD-class models take multiples of 8
    unet_levels = len(read_json(folder / "unet" / "config.json")["block_out_channels"])
    return folder_latent_factor(folder, 1) * 2 ** (unet_levels - 1)
