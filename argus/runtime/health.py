"""Worker health as the dispatcher sees it: each worker's state, whether it can serve (for
`/ready`), and the reasons given when the dispatcher gives up on a job or restarts a worker.

Kept apart from the dispatcher's request handling; the dispatcher owns and mutates the states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

JOB_LIMIT_SLOS = 4.0
"""`server.max_job_s` 0 means this many SLOs."""
JOB_STOP_GRACE_S = 2.0
"""A worker still running a job this long (plus a tenth of the job limit) after the job was
aborted for time is restarted: cancels are honoured between steps, so a step hangs."""
REASONS_SHOWN = 8
"""Workers named in a not-ready reason (then a count)."""


@dataclass
class WorkerState:
    ready: bool = False
    batch_id: int | None = None
    """The batch it runs now; None = idle."""
    variant: str | None = None
    """Variant loaded, or asked to preload."""
    loaded: str | None = None
    """Variant known to be loaded (the worker reported it)."""
    request_ids: set[str] = field(default_factory=set)
    restarts: int = 0
    last_heard_s: float = 0.0
    """When it last sent an event (for the stall watchdog)."""
    run_since_s: float = 0.0
    """When its batch started running (sent, or its variant loaded): the job time limit's clock."""
    overdue_s: float | None = None
    """When jobs of its batch were aborted for time (it is restarted if it does not stop)."""
    kill_reason: str | None = None
    """Why the dispatcher restarted it, for its requests' errors."""
    stopped: bool = False
    """Alive but suspended (the pool saw it stopped, e.g. SIGSTOP)."""

    @property
    def loading(self) -> bool:
        """Loading the variant its batch (or a preload) needs: silent, and off the job clock."""
        return self.loaded != self.variant

    def died(self) -> None:
        self.ready, self.batch_id = False, None
        self.variant = self.loaded = None
        self.overdue_s = self.kill_reason = None
        self.stopped = False
        self.restarts += 1


def worker_problem(state: WorkerState, now: float, hung_after_s: float) -> str | None:
    """Why this worker cannot serve now, or None. Busy and silent for `hung_after_s` counts as
    hung (the stall watchdog restarts it later, at `server.worker_stall_s`)."""
    if not state.ready:
        return "is not running (starting, or restarting after it died)"
    if not state.loaded:
        return "is loading its variant"
    if state.stopped:
        return "is stopped (its process is suspended)"
    silent = now - state.last_heard_s
    if state.batch_id is not None and not state.loading and silent > hung_after_s:
        return f"has been busy and silent for {silent:.0f} s (hung?)"
    return None


def not_ready_reason(states: Mapping[int, WorkerState], now: float, hung_after_s: float) \
        -> str | None:
    """None if some worker can serve, else every worker's problem (the first few)."""
    problems = [(w, worker_problem(s, now, hung_after_s)) for w, s in states.items()]
    if any(problem is None for _, problem in problems):
        return None
    named = [f"worker {w} {problem}" for w, problem in problems[:REASONS_SHOWN]]
    if len(problems) > REASONS_SHOWN:
        named.append(f"{len(problems) - REASONS_SHOWN} more likewise")
    return "no worker can serve: " + "; ".join(named)


def stall_reason(stall_s: float) -> str:
    return (
        f"its worker reported no progress for {stall_s:g} s (server.worker_stall_s: a step "
        "slower than that counts as a hang) and was restarted"
    )


def unstoppable_reason(grace_s: float) -> str:
    return (
        f"its worker did not stop within {grace_s:g} s of aborting a batch-mate past the job "
        "time limit, and was restarted"
    )


def time_limit_reason(ran_s: float, limit_s: float) -> str:
    return (
        f"exceeded the job time limit: ran {ran_s:.1f} s, the limit is {limit_s:g} s "
        "(server.max_job_s)"
    )


def failed_reason(causes: list[str]) -> str:
    """A request that failed on every worker that tried it, with each worker's fate."""
    return f"failed {'twice' if len(causes) == 2 else f'{len(causes)} times'}: " + \
        "; then ".join(causes)
