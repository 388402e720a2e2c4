"""Schemathesis over the OpenAPI document (issue #15): every operation, every check it has
(server errors, status codes, content types, response headers and schemas, schema-valid bodies
served and invalid ones refused, unsupported methods, ...), bounded and deterministic, over
loopback against a worker-free server (`edge_helpers.Edge`), so generation answers at once.

The document is the one an app of the edge server's config serves (read at collection, since
schemathesis' lazy `from_fixture` does not run under this pytest); a test checks that the live
server serves the same."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from api_helpers import api_config
from edge_helpers import BODY_TIMEOUT_S, CAP, Edge, InstantRuntime
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from argus.api import create_app

MAX_EXAMPLES = 50
"""Fuzzing cases per operation (positive and negative), besides the coverage phase's; the spec
has no examples or links (no stateful phase)."""

load_all_checks()
ALL_CHECKS = sorted(CHECKS.get_all_names())


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": 15,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all",
                       "database": "none"},
        "checks": {"enabled": True},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}},
    })


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    running = Edge()
    yield running
    running.close()


SPEC = create_app(
    api_config(max_body_bytes=CAP, body_timeout_s=BODY_TIMEOUT_S), runtime=InstantRuntime()
).openapi()
schema = schemathesis.openapi.from_dict(SPEC, config=_config())


def test_the_live_server_serves_this_document(edge: Edge) -> None:
    assert edge.http.get("/openapi.json").json() == SPEC


def test_every_check_is_on() -> None:
    checks = schema.config.checks
    assert {"response_schema_conformance", "status_code_conformance", "content_type_conformance",
            "response_headers_conformance", "negative_data_rejection",
            "positive_data_acceptance"} <= set(ALL_CHECKS)
    assert all(checks.get_by_name(name=name).enabled for name in ALL_CHECKS)


def _integer_spelling(case) -> None:
    """`2.0` -> `2` in a schema-valid body's integer fields. JSON Schema 2020-12 (OpenAPI 3.1)
    counts `2.0` as an integer, but Argus refuses it where OpenAI's API does (strict types,
    tests/api/test_http_edge.py), which no keyword can say; so a valid body spells them as
    integers. Schema-invalid bodies are sent as generated."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if not isinstance(case.body, dict):
        return
    for name in INTEGER_FIELDS:
        value = case.body.get(name)
        if isinstance(value, float) and value.is_integer():
            case.body[name] = int(value)


def _real_images(case) -> None:
    """A schema-valid edit's `image` and `mask` files are real PNGs (1x1, so they match): no
    schema keyword can say "a decodable image", and random bytes are rightly a 400. Schema-
    invalid bodies are sent as generated."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if case.path != "/v1/images/edits" or not isinstance(case.body, dict):
        return
    for name in ("image", "mask"):
        if name in case.body:
            case.body[name] = TINY_PNG


TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200015e5b4cf10000000049454e44ae426082"
)
BODY = SPEC["components"]["schemas"]["ImageGenerationBody"]
INTEGER_FIELDS = [
    name for name, field in BODY["properties"].items()
    if any(branch.get("type") == "integer" for branch in field.get("anyOf", [field]))
]


@schema.parametrize()
@pytest.mark.timeout(60)
def test_every_operation_conforms_to_the_openapi_document(case, edge: Edge) -> None:
    _integer_spelling(case)
    _real_images(case)
    case.call_and_validate(base_url=edge.url)


def test_with_api_keys_the_document_declares_bearer_auth_and_its_401() -> None:
    from tenancy_helpers import KEYS

    spec = create_app(api_config(api_keys=KEYS), runtime=InstantRuntime()).openapi()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            public = path in ("/health", "/ready", "/metrics")
            assert ("401" in operation["responses"]) is not public, path
            assert ("security" in operation) is not public, path
