"""The embedded default config: what `argus serve` runs without `--config` (contract A), and
`load_config`, which gives it for no path (this module sits above `argus.config`).

If the shipped model family exists (`argus/assets/shapes/family.yaml`, its `variants:` and
`levels:` with `source: builtin:<name>`), that is the default. Otherwise small random-weight
pipelines built from configs stand in (`source: random:<arch>`), and `/v1/models` flags them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from argus.config import ArgusConfig, ConfigError, load_config_file, parse_config

FAMILY_FILE = Path(__file__).resolve().parent / "assets" / "shapes" / "family.yaml"
PROFILE_FILE = FAMILY_FILE.with_name("profile.json")
"""The family's measured profile, if shipped; else the control plane models one."""
PREDICTOR_FILE = FAMILY_FILE.with_name("predictor.json")
"""The quality predictor trained on that profile (`argus train-predictor`), if shipped."""
MODELLED_SLO_S = 30.0
"""Deadline used with a modelled profile, whose nominal per-step cost (sized for 512 px GPUs)
is far below the real cost of small CPU models; a SLO derived from it would expire everything."""

RANDOM_FAMILY: dict[str, Any] = {
    "variants": [
        {
            "name": "tiny-large",
            "source": "random:pixel-large",
            "default_steps": 20,
            "resolution": 32,
            "guidance_scale": 3.0,
        },
        {
            "name": "tiny-small",
            "source": "random:pixel-small",
            "default_steps": 20,
            "resolution": 32,
            "guidance_scale": 3.0,
        },
    ],
    "levels": [
        {"name": "large-20", "variant": "tiny-large", "steps": 20},
        {"name": "large-10", "variant": "tiny-large", "steps": 10},
        {"name": "large-5", "variant": "tiny-large", "steps": 5},
        {"name": "small-20", "variant": "tiny-small", "steps": 20},
        {"name": "small-10", "variant": "tiny-small", "steps": 10},
    ],
}


def family_data(path: Path = FAMILY_FILE) -> dict[str, Any]:
    """The shipped family's `variants:` and `levels:`, or the random stand-in."""
    if not path.exists():
        return RANDOM_FAMILY
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "variants" not in data or "levels" not in data:
        raise ConfigError(f"invalid family file {path}: needs `variants:` and `levels:` lists")
    return {"variants": data["variants"], "levels": data["levels"]}


def default_config(**sections: Any) -> ArgusConfig:
    """The embedded default; keyword sections (e.g. `server={...}`) override the defaults."""
    data: dict[str, Any] = {**family_data()}
    if PROFILE_FILE.exists():
        data["control"] = {"profile": str(PROFILE_FILE)}
        if PREDICTOR_FILE.exists():
            data["control"]["predictor"] = str(PREDICTOR_FILE)
    else:
        data["server"] = {"slo_s": MODELLED_SLO_S}
    data.update(sections)
    origin = str(FAMILY_FILE) if FAMILY_FILE.exists() else "<embedded random default>"
    return parse_config(data, origin)


def load_config(path: str | Path | None = None) -> ArgusConfig:
    """Load and validate a YAML/TOML config; None gives the embedded default."""
    return default_config() if path is None else load_config_file(path)
