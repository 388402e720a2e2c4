"""The embedded default config (contract A): the shipped family if present, else random."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.config import ConfigError, parse_config
from argus.defaults import FAMILY_FILE, RANDOM_FAMILY, default_config, family_data
from argus.engine.variants import is_random, variant_folder


def test_default_config_is_valid_and_loadable_offline() -> None:
    config = default_config()
    for variant in config.variants:
        folder = variant_folder(variant.source)
        assert is_random(variant.source) or (folder is not None and folder.is_dir())
    assert FAMILY_FILE.exists() or all(is_random(v.source) for v in config.variants)


def test_random_stand_in_when_no_family_file(tmp_path: Path) -> None:
    assert family_data(tmp_path / "missing.yaml") is RANDOM_FAMILY
    config = parse_config(dict(RANDOM_FAMILY))
    assert {v.source for v in config.variants} == {"random:pixel-large", "random:pixel-small"}


def test_family_file_supplies_variants_and_levels(tmp_path: Path) -> None:
    family = tmp_path / "family.yaml"
    family.write_text(
        "variants:\n"
        "  - {name: s, source: 'builtin:s', default_steps: 20, resolution: 32}\n"
        "levels:\n"
        "  - {name: s-20, variant: s, steps: 20}\n"
        "notes: ignored\n"
    )
    data = family_data(family)
    assert [v["name"] for v in data["variants"]] == ["s"] and "notes" not in data
    family.write_text("variants: []\n")
    with pytest.raises(ConfigError, match="levels"):
        family_data(family)


def test_sections_override_the_defaults() -> None:
    config = default_config(server={"workers": 3, "port": 9000})
    assert (config.server.workers, config.server.port) == (3, 9000)
