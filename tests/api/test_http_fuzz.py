"""Fuzzing the request schema: whatever a client sends is either a 4xx at the API or a
`GenerationRequest` the model can take (its text tokenizes, its numbers are in range)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import httpx
import pytest
from api_helpers import api_config
from edge_helpers import PATH, Edge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from argus.api.schemas import (
    FORBIDDEN_CHARS,
    MAX_GUIDANCE,
    MAX_SEED,
    ImageGenerationBody,
    InvalidField,
    to_generation_request,
)
from argus.engine.random_models import build_tokenizer
from argus.runtime.base import GenerationRequest

CONFIG = api_config()
TOKENIZER = build_tokenizer()
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates, controls
json_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
             | any_text)
junk = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(any_text, inner, max_size=3), max_leaves=6)
sizes = (st.from_regex(r"[0-9０-９٣]{1,4}[xX×][0-9０-９]{1,4}", fullmatch=True)
         | st.sampled_from(["auto", "32x32", "64x48", "32x32\n", " 32x32", "3_2x32"]))
FIELDS = {
    "prompt": any_text | st.just("a red circle"),
    "negative_prompt": any_text,
    "user": any_text,
    "model": st.sampled_from(["auto", "tiny-large", "large-10"]) | any_text,
    "n": st.integers(-2, 6) | st.sampled_from(["2", True, 2.0]),
    "size": sizes | any_text,
    "response_format": st.sampled_from(["url", "b64_json", "gif"]),
    "quality": st.sampled_from(["auto", "high", "low", "ultra"]),
    "num_inference_steps": st.integers(-1, 2000) | st.sampled_from([10, 20, "10"]),
    "guidance_scale": st.floats(allow_nan=True) | st.integers(-5, 100) | st.just("3"),
    "seed": st.integers(-1, 2**40) | st.just(1.0),
    "stream": st.booleans() | st.sampled_from(["yes", 1, 0]),
}
plausible = st.fixed_dictionaries(  # in range but for the text: mostly gets to the model
    {"prompt": any_text.map(lambda t: "a red circle " + t)},
    optional={"negative_prompt": any_text, "user": any_text, "n": st.integers(1, 4),
              "size": st.sampled_from(["32x32", "64x48", "auto", "32X32"]),
              "guidance_scale": st.floats(0, MAX_GUIDANCE), "seed": st.integers(0, MAX_SEED),
              "quality": st.sampled_from(["auto", "high", "low"])},
)
bodies = plausible | st.fixed_dictionaries(
    {"prompt": FIELDS["prompt"]},
    optional={name: FIELDS[name] | junk for name in FIELDS if name != "prompt"},
)


def validate(body: object) -> GenerationRequest | None:
    """What the API does with a parsed JSON body: None where it answers 400."""
    try:
        return to_generation_request(ImageGenerationBody.model_validate(body), CONFIG)
    except (ValidationError, InvalidField):
        return None


def assert_model_can_take(spec: GenerationRequest) -> None:
    for text in (spec.prompt, spec.negative_prompt, spec.tenant):
        text.encode("utf-8")
        assert not FORBIDDEN_CHARS.search(text), repr(text)
    assert spec.prompt.strip() and len(spec.prompt) <= CONFIG.server.max_prompt_chars
    TOKENIZER([spec.prompt, spec.negative_prompt], padding="max_length",
              max_length=TOKENIZER.model_max_length, truncation=True, return_tensors="pt")
    assert isinstance(spec.n, int) and not isinstance(spec.n, bool)
    assert 1 <= spec.n <= CONFIG.server.max_n
    for side in (spec.width, spec.height):
        assert side is None or (type(side) is int and 8 <= side <= CONFIG.server.max_size)
    if spec.guidance_scale is not None:
        assert math.isfinite(spec.guidance_scale) and 0 <= spec.guidance_scale <= MAX_GUIDANCE
    if spec.seed is not None:
        assert type(spec.seed) is int and 0 <= spec.seed <= MAX_SEED


@FUZZ
@given(bodies)
def test_a_body_is_a_400_or_a_request_the_model_can_take(body: dict) -> None:
    spec = validate(body)
    if spec is not None:
        assert_model_can_take(spec)


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    running = Edge()
    yield running
    running.close()


raw_bodies = (
    bodies.map(lambda b: json.dumps(b).encode())  # NaN/Infinity included: invalid JSON
    | junk.map(lambda j: json.dumps(j).encode())
    | st.binary(max_size=64)
    | st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"prompt": "' + b"9" * 5000 + b'"}',
                       b'{"prompt": "a", "n": ' + b"9" * 5000 + b"}"])
)


@settings(FUZZ, max_examples=40)
@given(raw_bodies)
def test_over_http_any_body_is_a_200_or_an_openai_shaped_4xx(edge: Edge, raw: bytes) -> None:
    response = edge.http.post(PATH, content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
    else:
        assert response.json()["data"]


def test_http_client_sees_the_status_not_a_reset(edge: Edge) -> None:
    """A plain client that sends its whole (too large) body before reading gets the 413."""
    from edge_helpers import CAP

    response = edge.http.post(PATH, content=b" " * (CAP + 1),
                              headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert isinstance(response, httpx.Response)
