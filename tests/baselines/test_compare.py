"""`argus compare` end to end on a short trace: table, results.json, plots, bad input."""

from __future__ import annotations

import json

from argus.cli import main


def test_compare_writes_table_results_and_plots(tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "cmp"
    code = main([
        "compare", "--trace", "poisson", "--load", "1.5", "--workers", "4", "--duration", "90",
        "--seed", "3", "--policies", "argus,clipper-ha,clipper-ht", "--out", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert "SLO viol %" in table and "of oracle %" in table
    results = json.loads((out / "results.json").read_text())
    policies = results["policies"]
    assert list(policies) == ["argus", "clipper-ha", "clipper-ht", "oracle"]
    # Same arrivals for every policy, and the simulate fields are all there.
    assert len({p["requests"] for n, p in policies.items() if n != "oracle"}) == 1
    for name in ("argus", "clipper-ha", "clipper-ht"):
        assert {"slo_violation_ratio", "mean_relative_quality", "goodput_rps", "latency_p99_s",
                "level_share", "intervals", "oracle_share"} <= set(policies[name])
        assert 0 < policies[name]["oracle_share"] <= 1.0
    assert policies["clipper-ha"]["level_share"]["sdxl-k0"] == 1.0
    assert results["setup"]["offered_load"] == 1.5
    for png in ("goodput.png", "quality.png", "level_share.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_compare_rejects_unknown_policy(tmp_path, capsys) -> None:  # noqa: ANN001
    code = main(["compare", "--trace", "poisson", "--rate", "1", "--workers", "2",
                 "--policies", "argus,nope", "--out", str(tmp_path)])
    assert code == 2
    assert "unknown ['nope']" in capsys.readouterr().err
