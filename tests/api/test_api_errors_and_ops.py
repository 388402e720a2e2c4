"""Bad input is a 4xx OpenAI-shaped error (never a 500); models, health, ready, metrics, cluster."""

from __future__ import annotations

import httpx
import pytest

GOOD = {"prompt": "a red circle"}

BAD_BODIES = [
    ({**GOOD, "prompt": ""}, "prompt"),
    ({**GOOD, "prompt": "   "}, "prompt"),
    ({**GOOD, "prompt": "x" * 2001}, "prompt"),
    ({}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({**GOOD, "negative_prompt": "x" * 2001}, "negative_prompt"),
    ({**GOOD, "n": 0}, "n"),
    ({**GOOD, "n": 5}, "n"),
    ({**GOOD, "n": "two"}, "n"),
    ({**GOOD, "size": "big"}, "size"),
    ({**GOOD, "size": "4096x4096"}, "size"),
    ({**GOOD, "size": "30x30"}, "size"),
    ({**GOOD, "size": "0x32"}, "size"),
    ({**GOOD, "size": "-32x32"}, "size"),
    ({**GOOD, "model": "dall-e-9"}, "model"),
    ({**GOOD, "response_format": "gif"}, "response_format"),
    ({**GOOD, "quality": "ultra"}, "quality"),
    ({**GOOD, "num_inference_steps": 0}, "num_inference_steps"),
    ({**GOOD, "num_inference_steps": 5000}, "num_inference_steps"),
    ({**GOOD, "guidance_scale": -1}, "guidance_scale"),
    ({**GOOD, "guidance_scale": 1e9}, "guidance_scale"),
    ({**GOOD, "seed": -1}, "seed"),
    ({**GOOD, "seed": 2**40}, "seed"),
    ({**GOOD, "stream": "maybe"}, "stream"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES, ids=[p for _, p in BAD_BODIES])
def test_bad_input_is_400_naming_the_field(client: httpx.Client, body: dict, param: str) -> None:
    response = client.post("/v1/images/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"] and "code" in error


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"null"])
def test_malformed_body_is_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post(
        "/v1/images/generations", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nowhere", 404),
        ("GET", "/v1/images/generations", 405),
        ("DELETE", "/v1/images/generations/img-unknown", 404),
        ("GET", "/v1/images/files/unknown.png", 404),
    ],
)
def test_other_errors_have_the_openai_shape(
    client: httpx.Client, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_models_list_variants_and_levels_flagged_random(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    by_id = {m["id"]: m["argus"] for m in body["data"]}
    assert by_id["auto"]["kind"] == "auto"
    assert by_id["tiny-large"]["random_weights"] is True
    assert by_id["large-10"] == {
        "kind": "level", "variant": "tiny-large", "steps": 10, "cache_k": 0,
        "feature_cache": "", "random_weights": True,
    }


def test_health_ready_cluster(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    cluster = client.get("/v1/cluster").json()
    assert cluster["num_workers"] == 1 and sum(cluster["workers_per_level"].values()) == 1
    assert cluster["runtime"]["workers"]["0"]["ready"] is True


def test_metrics_exposes_requests_queue_latency_slo(client: httpx.Client) -> None:
    client.post("/v1/images/generations", json=GOOD)
    text = client.get("/metrics").text
    for name in (
        'argus_requests_total{level="large-',
        "argus_request_latency_seconds_bucket",
        "argus_request_queue_seconds_count",
        'argus_queue_length{level="large-20"}',
        "argus_slo_attainment_ratio",
        "argus_workers_ready 1.0",
    ):
        assert name in text, name
