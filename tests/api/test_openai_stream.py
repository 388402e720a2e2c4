"""OpenAI's streaming format and output fields, checked with the official client."""

from __future__ import annotations

import base64
import io
import time

import httpx
import openai
import pytest
from api_helpers import sse_events
from live_server import LiveServer
from openai import OpenAI
from PIL import Image

FAST = {"prompt": "a red circle", "model": "large-5", "size": "32x32"}
"""5 steps at 32x32: previews after steps 1 and 3 with partial_images=2."""


@pytest.fixture(scope="module")
def client_openai(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_stream_yields_partials_then_completed(client_openai: OpenAI) -> None:
    events = list(client_openai.images.generate(**FAST, stream=True, partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    *partials, completed = events
    assert [p.partial_image_index for p in partials] == [0, 1]
    for event in events:
        image = decoded(event.b64_json)
        assert image.format == "PNG" and image.size == (32, 32)
        assert (event.size, event.output_format, event.background) == ("32x32", "png", "opaque")
        assert event.quality in ("low", "medium", "high") and event.created_at > 0
    assert partials[0].b64_json != completed.b64_json  # an early x0 guess, not the image
    assert completed.usage.output_tokens == 5 and completed.usage.input_tokens == 0
    assert completed.usage.total_tokens == 5
    assert completed.argus["steps"] == 5 and completed.argus["image_index"] == 0


def test_stream_n_images_and_no_partials(client_openai: OpenAI) -> None:
    events = list(client_openai.images.generate(**FAST, n=2, stream=True, partial_images=1))
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    completed = [e for e in events if e.type == "image_generation.completed"]
    assert len(events) == 4 and events[-1].type == "image_generation.completed"
    assert [(p.partial_image_index, p.argus["image_index"]) for p in partials] == [(0, 0), (0, 1)]
    assert [c.argus["image_index"] for c in completed] == [0, 1]
    assert completed[0].argus["seed"] + 1 == completed[1].argus["seed"]
    plain = list(client_openai.images.generate(**FAST, stream=True))
    assert [e.type for e in plain] == ["image_generation.completed"]


@pytest.mark.parametrize(("output_format", "pillow"),
                         [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_formats(client_openai: OpenAI, output_format: str, pillow: str) -> None:
    result = client_openai.images.generate(**FAST, output_format=output_format)
    image = decoded(result.data[0].b64_json)
    assert image.format == pillow and image.size == (32, 32)
    assert (result.output_format, result.size, result.background) == (
        output_format, "32x32", "opaque"
    )
    assert result.quality in ("low", "medium", "high")
    assert result.usage.output_tokens == 5 and result.usage.total_tokens == 5
    assert result.usage.input_tokens_details.text_tokens == 0
    streamed = list(client_openai.images.generate(
        **FAST, output_format=output_format, stream=True, partial_images=1
    ))
    assert [decoded(e.b64_json).format for e in streamed] == [pillow, pillow]


def test_output_compression_and_url_media_type(client_openai: OpenAI) -> None:
    def jpeg_bytes(compression: int) -> int:
        result = client_openai.images.generate(
            **FAST, output_format="jpeg", output_compression=compression, extra_body={"seed": 4}
        )
        return len(base64.b64decode(result.data[0].b64_json))

    assert jpeg_bytes(5) < jpeg_bytes(100)
    url = client_openai.images.generate(
        **FAST, output_format="webp", response_format="url"
    ).data[0].url
    assert url.endswith(".webp")
    served = httpx.get(url)
    assert served.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(served.content)).format == "WEBP"


@pytest.mark.parametrize(("fields", "param"), [
    ({"background": "transparent"}, "background"),
    ({"background": "transparent", "output_format": "jpeg"}, "background"),
    ({"output_format": "gif"}, "output_format"),
    ({"output_compression": 101}, "output_compression"),
    ({"stream": True, "partial_images": 4}, "partial_images"),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
])
def test_unsupported_fields_are_400_naming_them(
    client_openai: OpenAI, fields: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_openai.images.generate(**FAST, **fields)
    error = caught.value.body
    assert error["param"] == param
    if param == "background":
        assert "transparent" in error["message"] and "opaque" in error["message"]


def test_openai_hints_are_accepted(client_openai: OpenAI) -> None:
    result = client_openai.images.generate(
        **FAST, moderation="low", style="vivid", background="opaque",
        extra_body={"safety_identifier": "user-1", "complexity": "low"},
    )
    assert decoded(result.data[0].b64_json).size == (32, 32)
    auto = client_openai.images.generate(prompt="a red circle", model="large-5", size="auto")
    assert auto.size == "32x32"


def test_argus_events_on_request(client: httpx.Client) -> None:
    ask = {**FAST, "stream": True, "argus_events": True, "partial_images": 1}
    with client.stream("POST", "/v1/images/generations", json=ask) as response:
        events = list(sse_events(response))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "argus.accepted" and kinds[-1] == "image_generation.completed"
    steps = [d["step"] for kind, d in events if kind == "argus.progress"]
    assert steps == [1, 2, 3, 4, 5]
    assert kinds.count("image_generation.partial_image") == 1
    assert all(kind == data["type"] for kind, data in events)


def test_disconnect_mid_stream_cancels(client_openai: OpenAI, client: httpx.Client) -> None:
    slow = {"prompt": "a slow red circle", "model": "large-20", "size": "128x128"}
    stream = client_openai.images.generate(**slow, stream=True, partial_images=3)
    first = next(iter(stream))
    assert first.type == "image_generation.partial_image" and first.size == "128x128"
    stream.close()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        workers = client.get("/v1/cluster").json()["runtime"]["workers"].values()
        if not any(w["busy"] for w in workers):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker kept generating after the client left")
    assert 'status="cancelled"' in client.get("/metrics").text
