"""`argus hash-key`: the digest `server.api_keys` lists, and a config entry that loads."""

from __future__ import annotations

import hashlib
import io

import pytest
import yaml

from argus.api.auth import TenantAuth
from argus.cli import main
from argus.config import ConfigError, parse_config
from argus.defaults import RANDOM_FAMILY


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["hash-key", *argv]) == 0
    return capsys.readouterr().out


def test_digest_and_config_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "sk-1").strip() == hashlib.sha256(b"sk-1").hexdigest()
    entry = yaml.safe_load(run(capsys, "sk-1", "--tenant", 'acme "eu"', "--admin"))
    config = parse_config({**RANDOM_FAMILY, **entry})
    principal = TenantAuth(config).authenticate("Bearer sk-1")
    assert principal is not None and principal.tenant == 'acme "eu"' and principal.admin


def test_key_from_stdin_and_new_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-2\n"))
    assert run(capsys, "-").strip() == hashlib.sha256(b"sk-2").hexdigest()
    out = run(capsys, "--new").splitlines()
    key = out[0].rpartition(" ")[2]
    assert key.startswith("sk-argus-") and out[1] == hashlib.sha256(key.encode()).hexdigest()


def test_a_raw_key_in_the_config_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="not a SHA-256 hex digest") as refused:
        parse_config({**RANDOM_FAMILY, "server": {"api_keys": {"sk-secret": {"tenant": "a"}}}})
    assert "sk-secret" not in str(refused.value)
