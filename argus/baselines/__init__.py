"""Baseline serving policies and the offline oracle bound (issue 4).

Every baseline is a `argus.control.policy.Policy` plugged into the unchanged `ControlPlane`, so it
shares admission (reject when predicted late), EDF queues, batching and the simulator with Argus;
only the decisions the published system makes differ:

- `clipper-ha` / `clipper-ht`: one fixed level for everything (full quality / fastest).
- `nirvana`: the full model everywhere, skip K chosen by cache similarity, no planner.
- `diffserve`: light -> heavy cascade, deferral threshold chosen each period for the load.
- `proteus`: the same MILP, input-agnostic: one level mix for all prompts.
- `pac`: prompt-aware allocation over the full model's cache levels only.
- `random`: Argus's plan and level mix, prompts assigned to levels at random.

`oracle_bound` (not a policy) bounds the best quality-weighted goodput any policy could reach.
Importing this package registers the policies with `argus.control.policy.make_policy`. The
control plane sits below it and never imports it: the entry points that offer every policy do
(`argus simulate`/`compare`/`serve`, `argus.runtime.dispatcher.build_runtime`), as does anything
that uses a baseline by name.
"""

from argus.baselines import cascade, fixed, planned
from argus.baselines.oracle import OracleBound, oracle_bound

BASELINES = ("clipper-ha", "clipper-ht", "proteus", "nirvana", "diffserve", "pac", "random")

__all__ = ["BASELINES", "OracleBound", "cascade", "fixed", "oracle_bound", "planned"]
