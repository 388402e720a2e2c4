"""The API tests' server config and server-sent-events reader."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from argus.config import ArgusConfig, parse_config
from argus.defaults import RANDOM_FAMILY


def api_config(**server: object) -> ArgusConfig:
    """The random-weight stand-in family (fixed, whatever the shipped default becomes), one
    worker with one thread, a small queue; sizes up to 4x the 32 px native one (the slow test
    requests are 128x128)."""
    settings = {"workers": 1, "threads_per_worker": 1, "queue_capacity": 2, "slo_s": 120.0,
                "max_size_factor": 4.0}
    settings.update(server)
    return parse_config({**RANDOM_FAMILY, "server": settings})


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a server-sent-events response, as they arrive."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line.removeprefix("data: "))
            event = None
