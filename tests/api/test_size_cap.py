"""`size` is capped at `server.max_size_factor` (2) x the native resolution of the variants that
may serve the request: a 1024x1024 request on a 32 px model is a 400 naming the cap."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edge_helpers import GOOD, PATH, Edge


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    running = Edge(max_size_factor=2.0)
    yield running
    running.close()


@pytest.mark.parametrize("size", ["32x32", "64x64", "64x32", "8x64"])
def test_sizes_up_to_the_cap_are_served(edge: Edge, size: str) -> None:
    response = edge.http.post(PATH, json={**GOOD, "size": size})
    assert response.status_code == 200, response.text
    width, height = (int(side) for side in size.split("x"))
    assert (edge.runtime.submitted[-1].width, edge.runtime.submitted[-1].height) == (width, height)


@pytest.mark.parametrize(("size", "model", "which"), [
    ("1024x1024", None, "the variants that may serve it"),
    ("72x32", None, "the variants that may serve it"),
    ("32x128", "tiny-small", "tiny-small"),
    ("128x128", "small-10", "tiny-small"),
])
def test_sizes_past_the_cap_are_a_clear_400(
    edge: Edge, size: str, model: str | None, which: str
) -> None:
    body = {**GOOD, "size": size, **({"model": model} if model else {})}
    response = edge.http.post(PATH, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "size" and error["code"] == "invalid_value"
    assert error["message"] == (
        f"size {size} is too large: each side may be at most 64 px, 2 x the 32 px native "
        f"resolution of {which} (server.max_size_factor)"
    )
