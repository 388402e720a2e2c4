"""`argus serve` command line: arguments and clean errors for bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.cli import build_parser, main


def test_serve_arguments_parse() -> None:
    args = build_parser().parse_args(
        ["serve", "--config", "c.yaml", "--host", "0.0.0.0", "--port", "9000", "--workers", "2"]
    )
    assert (args.config, args.host, args.port, args.workers) == ("c.yaml", "0.0.0.0", 9000, 2)


def test_bad_config_fails_at_start_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "variants:\n  - {name: a, source: 'random:pixel-small', default_steps: 0, resolution: 32}\n"
        "levels:\n  - {name: a-1, variant: a, steps: 1}\n"
    )
    assert main(["serve", "--config", str(bad)]) == 2
    assert "variants.0.default_steps" in capsys.readouterr().err


def test_missing_config_and_bad_workers_fail_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", "/nonexistent/argus.yaml"]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
