"""Diffusion-transformer architectures the engine builds from configs (`random:flux-tiny`,
`random:sd3-tiny`) and what the front end needs to know about them without torch: which
family a source is, and the image-size multiple."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argus.engine.variants import folder_latent_factor, read_json

FlowFamily = Literal["flux", "sd3"]


@dataclass(frozen=True)
class FlowArch:
    """Sizes of one random-weight transformer architecture."""

    family: FlowFamily
    """flux: packed 2x2 latents, guidance embedding, no CFG; sd3: joint attention, CFG."""
    width: int = 16
    """Attention heads x head dim; also the text encoders' width."""
    layers: int = 2
    """Joint (double-stream) blocks."""
    single_layers: int = 2
    """FLUX-class single-stream blocks (ignored for sd3)."""
    latent_channels: int = 4
    vae_factor: int = 2
    """Image pixels per latent pixel (a 2-block tiny VAE)."""

    @property
    def size_multiple(self) -> int:
        # Both families patchify 2x2 latents (FLUX packs them, SD3's patch_size is 2).
        return self.vae_factor * 2


FLOW_ARCHS: dict[str, FlowArch] = {
    "flux-tiny": FlowArch(family="flux"),
    "sd3-tiny": FlowArch(family="sd3", layers=3),
}


def folder_family(folder: Path) -> FlowFamily | None:
    """The transformer family of a diffusers folder, None for a UNet folder."""
    config = folder / "transformer" / "config.json"
    if not config.exists():
        return None
    name = read_json(config).get("_class_name", "")
    return "flux" if name.startswith("Flux") else "sd3"


def folder_size_multiple(folder: Path) -> int:
    """VAE (or pixel-unshuffle) factor x 2 (the 2x2 patches) for a transformer folder."""
    return folder_latent_factor(folder, 8) * 2  # 8: a hub-style folder without a VAE config


def flow_family(source: str) -> FlowFamily | None:
    """The transformer family of a variant source (`random:flux-tiny`, a diffusers folder with a
    `transformer/`), None for UNet sources. Hub ids are UNets here: telling them apart needs the
    hub (download the folder and give its path)."""
    from argus.engine.variants import variant_folder

    if source.startswith("random:"):
        arch = FLOW_ARCHS.get(source.removeprefix("random:"))
        return arch.family if arch else None
    folder = variant_folder(source)
    return folder_family(folder) if folder is not None else None
