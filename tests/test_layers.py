"""The layering is a checked contract: pyproject.toml's `[tool.importlinter]` contracts hold
(function-level and TYPE_CHECKING imports included), the control plane imports and builds its
built-in profile without the layers above it, and the policy registry needs no upward import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_control_plane_runs_without_the_layers_above() -> None:
    code = (
        "import sys\n"
        "from argus.control.builtin import a100_sdxl\n"
        "from argus.control.plane import ControlPlane\n"
        "from argus.control.policy import make_policy\n"
        "import argus.control.training\n"
        "assert a100_sdxl().prompts\n"
        "assert make_policy('argus').name == 'argus'\n"
        "above = ('argus.sim', 'argus.baselines', 'argus.runtime', 'argus.api', 'argus.cli')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(above))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_baselines_register_when_imported() -> None:
    import argus.baselines  # noqa: F401
    from argus.control.policy import make_policy, policy_names

    assert make_policy("clipper-ha").name == "clipper-ha"
    assert {"argus", "clipper-ha", "nirvana"} <= set(policy_names())
    with pytest.raises(ValueError, match=r"unknown policy 'no-such'; registered: .*clipper-ha"):
        make_policy("no-such")
