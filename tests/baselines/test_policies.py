"""Each baseline's defining behaviour on a small simulated trace."""

from __future__ import annotations

import numpy as np

from argus.baselines.common import fastest_level
from argus.baselines.oracle import true_quality
from argus.control.policy import make_policy, policy_names
from argus.control.predictor import band_threshold, optimal_level
from argus.sim.quality import prompt_complexity
from argus.types import Request

OVERLOAD = 2.0


def test_every_baseline_is_registered() -> None:
    names = set(policy_names())
    assert {"argus", "clipper-ha", "clipper-ht", "proteus", "nirvana", "diffserve", "pac",
            "random"} <= names
    assert make_policy("nirvana").name == "nirvana"


def test_clipper_ha_never_approximates(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("clipper-ha", OVERLOAD * capacity)
    full = run.plane.table.full
    assert run.served_levels == {run.plane.table.names[full]}
    # Overloaded, it sheds rather than degrades.
    assert (run.record.level < 0).mean() > 0.3
    assert run.record.loads == 0


def test_clipper_ht_always_uses_the_fastest_level(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("clipper-ht", OVERLOAD * capacity)
    table = run.plane.table
    fastest = fastest_level(table)
    assert run.served_levels == {table.names[fastest]}
    assert table.throughput[fastest] == max(table.throughput)
    # The fastest level absorbs 2x the full level's capacity with few violations.
    assert run.met.mean() > 0.95


def test_nirvana_skips_by_similarity_on_the_full_model(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("nirvana", 0.5 * capacity)
    table, config = run.plane.table, run.plane.config
    served = run.record.level >= 0
    levels = run.record.level[served]
    similarity = run.sim.similarity[served]
    assert {table.variant[i] for i in levels} == {table.variant[table.full]}
    assert all(table.steps[i] == table.steps[table.full] for i in levels)
    thresholds = np.array([
        band_threshold(k, n, config.cache.similarity_bands, config.cache.band_steps)
        for k, n in zip(table.cache_k, table.steps, strict=True)
    ])
    k = np.asarray(table.cache_k)
    # Never skips more than the request's cache hit allows...
    assert (similarity >= thresholds[levels] - 1e-12).all()
    # ...and always the deepest skip it allows (a hit above 0.95 skips 25 of 50).
    assert (k[levels][similarity >= 0.95] == 25).all()
    assert (k[levels][similarity < 0.65] == 0).all()
    assert run.record.loads == 0


def test_proteus_applies_one_mix_to_all_prompts(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("proteus", OVERLOAD * capacity)
    routing = run.plane.plan.routing
    assert np.allclose(routing, routing[0])
    assert routing[0].max() < 1.0  # overloaded: a real mix, not one level
    # Input-agnostic: cache hits and misses are routed to exactly the same mix.
    policy, plane = run.plane.policy, run.plane
    counts = []
    for similarity in (0.99, 0.3):
        chosen = np.zeros(len(routing))
        for i in range(400):
            request = Request("p", 0.0, 1e9, f"probe-{i}", cache_similarity=similarity)
            request.predicted_quality = plane.predictor.predict(request)
            request.optimal_level = plane.table.names[
                optimal_level(plane.table, request.predicted_quality, plane.floor)
            ]
            chosen[policy.route(request, 0.0)] += 1
        counts.append(chosen)
    assert counts[0][run.plane.table.full] != 400
    # (two stretches of one low-discrepancy cycle: shares equal to within its discrepancy)
    assert np.abs(counts[0] - counts[1]).max() <= 3


def test_pac_stays_on_the_full_models_cache_levels(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("pac", OVERLOAD * capacity)
    table = run.plane.table
    for name in run.served_levels:
        i = table.index[name]
        assert table.variant[i] == table.variant[table.full]
        assert table.steps[i] == table.steps[table.full]
    assert len(run.served_levels) > 2  # prompt-aware: several K in use
    assert run.record.loads == 0


def test_random_matches_argus_share_but_loses_quality(simulate, capacity) -> None:  # noqa: ANN001
    argus = simulate("argus", OVERLOAD * capacity)
    rand = simulate("random", OVERLOAD * capacity)
    # Same plan, a similar level mix (late-request moves make the realised mixes drift)...
    assert np.abs(argus.level_share() - rand.level_share()).sum() < 0.4
    # ...but lower quality: a measurable share of it came from matching prompts to levels
    # (argus also re-levels queued requests to serve more, which costs some mean quality).
    assert rand.mean_quality() < argus.mean_quality() - 0.01
    assert argus.quality_goodput() > 1.03 * rand.quality_goodput()
    # Argus keeps the text-complex prompts (modelled to lose most) on the full model and sends
    # the simple ones to the fastest level it uses; random mixes them.
    table = argus.plane.table
    for run in (argus, rand):
        complexity = np.array([prompt_complexity(run.plane.profile.prompts[i].prompt)
                               for i in run.sim.prompt_id])
        run.full_cx = complexity[run.record.level == table.full].mean()
        run.fast_cx = complexity[run.record.level == table.index["sd15-s25"]].mean()
    assert argus.full_cx > rand.full_cx + 0.2
    assert argus.fast_cx < rand.fast_cx - 0.2
    # Without the per-prompt prediction, cache levels get prompts whose hits do not suit them.
    deepest = max(range(len(table)), key=lambda i: table.cache_k[i])
    rand_deep = rand.record.level == deepest
    assert rand_deep.sum() >= 10
    assert np.median(rand.sim.similarity[rand_deep]) < 0.9


def test_diffserve_cascades_low_confidence_to_heavy(simulate, capacity) -> None:  # noqa: ANN001
    run = simulate("diffserve", 0.5 * capacity)
    policy = run.plane.policy
    table = run.plane.table
    heavy = run.record.level == policy.heavy
    light = run.record.level == policy.light
    assert run.served_levels == {table.names[policy.heavy], table.names[policy.light]}
    assert 0 < heavy.sum() <= policy.deferred
    # The deferred ones are those whose light image was worst (noisy discriminator).
    light_quality = true_quality(run.sim)[:, policy.light]
    assert light_quality[heavy].mean() < light_quality[light].mean() - 0.03
    # Heavy results ran twice: their latency includes the light pass.
    latency = run.record.finish - run.record.arrival
    assert np.median(latency[heavy]) > np.median(latency[light]) + table.service_s[policy.light][0]


def test_diffserve_defers_less_under_overload(simulate, capacity) -> None:  # noqa: ANN001
    low = simulate("diffserve", 0.5 * capacity)
    high = simulate("diffserve", OVERLOAD * capacity)
    share = [(r.record.level == r.plane.policy.heavy).mean() for r in (low, high)]
    assert share[1] < share[0]
