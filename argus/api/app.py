"""The HTTP API (OpenAI Images-compatible) over a `Runtime`.

Thin by design: validate into a `GenerationRequest`, submit, then answer with JSON or
server-sent events. Scheduling, batching and workers live behind the runtime.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from argus import __version__
from argus.api.auth import PUBLIC_PATHS, AuthGuard, TenantAuth
from argus.api.dashboard import Dashboard, install_dashboard
from argus.api.edge import BodyGuard, EdgeRoute, received_at
from argus.api.edits import add_edit_route
from argus.api.errors import error_body, error_response, install_error_handlers
from argus.api.errors import overloaded_response as overloaded
from argus.api.formats import MEDIA_TYPES, OutputOptions, encode_all, response_fields
from argus.api.formats import served_quality as served
from argus.api.images import ImageStore
from argus.api.metrics import Metrics
from argus.api.schemas import (
    MEDIUM_FLOOR,
    ErrorResponse,
    ImageGenerationBody,
    InvalidField,
    body_schema_limits,
    to_generation_request,
)
from argus.api.streaming import ImageStream
from argus.config import ArgusConfig
from argus.engine.variants import is_random
from argus.routing.service import BUDGET_HEADER, EdgeCloudRouter, annotate, budget_override
from argus.runtime.base import (
    GenerationCancelledError,
    GenerationRequest,
    InvalidGenerationInput,
    JobHandle,
    JobOutcome,
    Overloaded,
    Runtime,
    ServingError,
)

DISCONNECT_POLL_S = 0.1
STATUS_MEANING = {
    400: "invalid request (the error's `param` names the field)",
    401: "no valid API key (`Authorization: Bearer KEY`, keys in `server.api_keys`)",
    404: "not found",
    408: "the request body did not arrive within `server.body_timeout_s`",
    409: "cancelled (DELETE or client disconnect)",
    413: "request body larger than `server.max_body_bytes`",
    429: "queue full; retry after `Retry-After` seconds",
    503: "no worker ready, deadline cannot be met, or generation failed (`Retry-After`)",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route actually sends."""
    return {s: {"model": ErrorResponse, "description": STATUS_MEANING[s]} for s in statuses}


def _argus_info(outcome: JobOutcome, index: int) -> dict[str, Any]:
    t = outcome.timings_ms
    return {
        "request_id": outcome.request_id,
        "variant": outcome.variant,
        "level": outcome.level,
        "steps": outcome.steps,
        "steps_run": outcome.steps_run,
        "seed": outcome.seed + index,
        "cache": {
            "hit": outcome.cache.hit,
            "k": outcome.cache.k,
            "similarity": outcome.cache.similarity,
            "entry_id": outcome.cache.entry_id,
        },
        "predicted_quality": outcome.predicted_quality,
        "timings_ms": {k: round(t[k], 2) for k in ("queue", "run", "total")},
    }


class ImagesService:
    """The state behind the routes: config, runtime, metrics, stored images."""

    def __init__(self, config: ArgusConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.metrics = Metrics()
        server = config.server
        self.images = ImageStore(server.image_store_per_tenant, server.image_store_max_bytes)
        """Images behind `response_format: url`, per tenant (`argus.api.images`)."""
        self.auth = TenantAuth(config)
        """API keys, request ownership and per-tenant limits (`argus.api.auth`)."""
        self.edge_cloud = EdgeCloudRouter.from_config(
            config.routing, registry=self.metrics.registry
        )
        """Edge/cloud router (None unless `routing.enabled`); its counters are in /metrics."""
        self.dashboard: Dashboard | None = None
        """Live dashboard and quality audit (`argus.api.dashboard`), fed by `watch`."""

    async def route_to_cloud(self, body: ImageGenerationBody, tenant: str, http: Request):
        """(cloud response, decision) if the router sends it to the cloud and the cloud
        delivers, else (None, decision or None): serve locally, annotated with the decision."""
        if self.edge_cloud is None:
            return None, None
        try:
            budget = budget_override(http.headers.get(BUDGET_HEADER))
        except ValueError as err:
            raise InvalidField(BUDGET_HEADER, str(err)) from None
        base_url = self.base_url(http)

        def to_url(png: bytes) -> str:
            return f"{base_url}v1/images/files/{self.images.put(png, tenant)}.png"

        return await self.edge_cloud.cloud_first(body.model_dump(), tenant, budget, to_url)

    def base_url(self, http: Request) -> str:
        """Where image links point: `server.public_url`, else the address this server is bound
        to (the socket's, never the client's `Host` header). Ends with `/`."""
        if self.config.server.public_url:
            return self.config.server.public_url.rstrip("/") + "/"
        host, port = http.scope.get("server") or (self.config.server.host, self.config.server.port)
        if ":" in host:
            host = f"[{host}]"
        root = http.scope.get("root_path", "").rstrip("/")
        return f"{http.scope.get('scheme', 'http')}://{host}:{port}{root}/"

    def response(
        self,
        outcome: JobOutcome,
        response_format: str,
        base_url: str,
        options: OutputOptions | None = None,
        images: list[bytes] | None = None,
        tenant: str | None = None,
    ) -> dict:
        """The JSON body; `images`: the outcome's PNGs already in `options`' format; `tenant`:
        whose store bucket URLs go to (the request's)."""
        options = options or OutputOptions()
        ext = options.output_format
        data = []
        for i, image in enumerate(outcome.images_png if images is None else images):
            item: dict[str, Any] = {"revised_prompt": None}
            if response_format == "url":
                item["url"] = f"{base_url}v1/images/files/{self.images.put(image, tenant)}.{ext}"
            else:
                item["b64_json"] = base64.b64encode(image).decode("ascii")
            item["argus"] = _argus_info(outcome, i)
            data.append(item)
        quality = self.quality_of(options.quality)(outcome.predicted_quality)
        return {
            "created": int(time.time()),
            "data": data,
            **response_fields(outcome.width, outcome.height, quality, options,
                              len(outcome.images_png), outcome.steps_run),
        }

    def quality_of(self, requested: str) -> Callable[[float | None], str]:
        """Predicted relative quality -> the `quality` reported (`formats.served_quality`)."""
        floor = self.config.control.quality_floor
        return lambda predicted: served(requested, predicted, floor, MEDIUM_FLOOR)

    def watch(self, handle: JobHandle, spec: GenerationRequest | None = None) -> None:
        """Record the request's metrics once, however it ends (and show it on the dashboard)."""

        def record(future: asyncio.Future[JobOutcome]) -> None:
            if future.cancelled():
                return
            error = future.exception()
            if error is None:
                self.metrics.completed(future.result())
                if self.dashboard is not None and spec is not None:
                    self.dashboard.completed(spec, future.result())
            elif isinstance(error, GenerationCancelledError):
                self.metrics.ended("cancelled", handle.level, counts_for_slo=False)
            elif isinstance(error, Overloaded):
                self.metrics.ended("rejected", handle.level)
            else:
                self.metrics.ended("failed", handle.level)

        handle.outcome.add_done_callback(record)

    def models(self) -> dict[str, Any]:
        config = self.config
        entries: list[dict[str, Any]] = [
            {"id": "auto", "object": "model", "created": 0, "owned_by": "argus",
             "argus": {"kind": "auto", "description": "Argus chooses the level per request"}}
        ]
        for v in config.variants:
            entries.append({
                "id": v.name, "object": "model", "created": 0, "owned_by": "argus",
                "argus": {
                    "kind": "variant", "source": v.source, "random_weights": is_random(v.source),
                    "default_steps": v.default_steps, "resolution": v.resolution,
                    "guidance_scale": v.guidance_scale, "scheduler": v.scheduler, "eta": v.eta,
                    "load_time_s": v.load_time_s, "memory_gb": v.memory_gb,
                },
            })
        for lv in config.levels:
            source = config.variant(lv.variant).source
            entries.append({
                "id": lv.name, "object": "model", "created": 0, "owned_by": "argus",
                "argus": {
                    "kind": "level", "variant": lv.variant, "steps": lv.steps,
                    "cache_k": lv.cache_k, "feature_cache": lv.feature_cache,
                    "random_weights": is_random(source),
                },
            })
        return {"object": "list", "data": entries}


def _error_of(err: Exception) -> JSONResponse:
    if isinstance(err, Overloaded):
        return overloaded(err)
    if isinstance(err, GenerationCancelledError):
        return error_response(409, f"request was cancelled: {err}", code="cancelled")
    if isinstance(err, InvalidGenerationInput):  # the engine could not take this input
        return error_response(400, str(err), code="invalid_input")
    return error_response(503, str(err), code="generation_failed", retry_after_s=5)


def create_app(config: ArgusConfig, runtime: Runtime | None = None) -> FastAPI:
    """The FastAPI app; it starts `runtime` (default: `build_runtime(config)`) on startup and
    drains it on shutdown."""
    if runtime is None:
        from argus.runtime.dispatcher import build_runtime

        runtime = build_runtime(config)
    service = ImagesService(config, runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        await dashboard.start()
        yield
        await dashboard.stop()
        await runtime.shutdown()
        if service.edge_cloud is not None:
            await service.edge_cloud.aclose()

    app = FastAPI(title="Argus", version=__version__, lifespan=lifespan)
    app.router.route_class = EdgeRoute
    app.add_middleware(AuthGuard, auth=service.auth)  # inside BodyGuard: its limits come first
    app.add_middleware(
        BodyGuard, max_bytes=config.server.max_body_bytes, timeout_s=config.server.body_timeout_s
    )
    app.state.service = service
    service.dashboard = dashboard = install_dashboard(app, config, runtime,
                                                      service.metrics.registry)
    install_error_handlers(app)
    _add_image_routes(app, service)
    add_edit_route(app, service, _answer, IMAGE_RESPONSES)
    _add_ops_routes(app, service)
    _declare_sent_statuses(app, config)
    return app


def _declare_sent_statuses(app: FastAPI, config: ArgusConfig) -> None:
    """The spec says what the routes send and take: FastAPI's automatic 422 is dropped (bad
    input is a 400, declared per route with the error schema); the request body carries this
    deployment's limits (`schemas.body_schema_limits`) and no unknown fields; with API keys,
    Bearer auth and its 401 on every route but `auth.PUBLIC_PATHS`."""
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate_openapi()
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = spec.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            body = schemas["ImageGenerationBody"]
            body["additionalProperties"] = False
            for name, limits in body_schema_limits(config).items():
                _constrain(body["properties"][name], limits)
            if config.server.api_keys:
                _declare_auth(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _constrain(field: dict[str, Any], limits: dict[str, object]) -> None:
    """Add `limits` to a field's schema (to its non-null branch when it is nullable)."""
    branches = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
    for branch in branches:
        branch.update(limits)


def _declare_auth(spec: dict[str, Any]) -> None:
    """Bearer auth and its 401 (the `ErrorResponse` schema is there: routes declare errors)."""
    spec.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "an API key listed (by digest) in server.api_keys"}
    }
    for path, operations in spec.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": STATUS_MEANING[401],
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            }


IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "images (JSON), or server-sent events when `stream` is true",
          "content": {"text/event-stream": {}}},
    **_errors(400, 408, 409, 413, 429, 503),
}
"""What the generations and edits routes send."""


def _add_image_routes(app: FastAPI, service: ImagesService) -> None:
    runtime = service.runtime

    @app.post("/v1/images/generations", responses=IMAGE_RESPONSES)
    async def generate(body: ImageGenerationBody, http: Request) -> Response:
        spec = service.auth.scoped(to_generation_request(body, service.config))
        from_cloud, route = await service.route_to_cloud(body, spec.tenant, http)
        if from_cloud is not None:
            return JSONResponse(from_cloud)
        return await _answer(service, spec, body, http, route)

    @app.delete("/v1/images/generations/{request_id}", responses=_errors(404))
    async def cancel(request_id: str) -> Response:
        if not service.auth.may_cancel(request_id) or not await runtime.cancel(request_id):
            return error_response(
                404, f"no queued or running request {request_id!r}", "request_id", "not_found"
            )
        return JSONResponse({"id": request_id, "object": "image.generation", "cancelled": True})

    @app.get(
        "/v1/images/files/{image_id}.{ext}",
        response_class=Response,
        responses={
            200: {"description": "the image", "content": {t: {} for t in MEDIA_TYPES.values()}},
            **_errors(404),
        },
    )
    async def image_file(image_id: str, ext: str) -> Response:
        image = service.images.get(image_id)
        if image is None or ext not in MEDIA_TYPES:
            return error_response(404, "image not found or expired", code="not_found")
        return Response(image, media_type=MEDIA_TYPES[ext])


async def _wait_unless_disconnected(runtime: Runtime, handle: JobHandle, http: Request) -> bool:
    """Wait for the outcome; if the client goes away first, cancel and return False."""
    while not handle.outcome.done():
        await asyncio.wait({handle.outcome}, timeout=DISCONNECT_POLL_S)
        if not handle.outcome.done() and await http.is_disconnected():
            await runtime.cancel(handle.request_id)
            return False
    return True


async def _answer(service: ImagesService, spec: GenerationRequest, body: ImageGenerationBody,
                  http: Request, route: object = None, kind: str = "image_generation") -> Response:
    """Submit `spec` and answer it as `body` asks: JSON, or server-sent events of `kind`
    (`image_generation` or `image_edit`); `route`: an edge/cloud decision to annotate."""
    runtime = service.runtime
    spec = dataclasses.replace(spec, received_s=received_at(http))
    try:
        handle = await service.auth.submit(runtime, spec)
    except Overloaded as err:
        service.metrics.ended("rejected", None)
        return overloaded(err)
    service.watch(handle, spec)
    response_format = body.response_format or "b64_json"
    base_url = service.base_url(http)
    options = body.output_options()
    if body.stream:
        events = ImageStream(runtime, handle, options, service.quality_of(options.quality),
                             _argus_info, _error_of, bool(body.argus_events), kind).events()
        headers = {"x-argus-request-id": handle.request_id, "Cache-Control": "no-cache"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    if not await _wait_unless_disconnected(runtime, handle, http):
        message = "client disconnected; generation cancelled"
        return error_response(409, message, code="cancelled")
    try:
        outcome = handle.outcome.result()
    except ServingError as err:
        return _error_of(err)
    images = await encode_all(outcome.images_png, options)
    payload = service.response(outcome, response_format, base_url, options, images, spec.tenant)
    if spec.received_s is not None:  # the server's whole part: arrival to the answer's bytes
        served_ms = round((time.monotonic() - spec.received_s) * 1e3, 2)
        for item in payload.get("data", ()):
            if "argus" in item:
                item["argus"]["timings_ms"]["server"] = served_ms
    if route is not None:
        annotate(payload, route)  # type: ignore[arg-type]
    return JSONResponse(payload)


def _add_ops_routes(app: FastAPI, service: ImagesService) -> None:
    runtime = service.runtime

    @app.get("/v1/models")
    async def models() -> dict:
        return service.models()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", responses=_errors(503))
    async def ready() -> Response:
        drift = service.dashboard.drifting() if service.dashboard else []
        if runtime.ready():  # a quality drift is reported, not a reason to stop traffic
            return JSONResponse({"status": "ready", "quality_drift": drift})
        message = runtime.not_ready_reason() or "no worker is ready yet (or draining)"
        body = error_body(503, message, code="not_ready")
        return JSONResponse(body, 503, headers={"Retry-After": "1"})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(service.metrics.render(runtime), media_type="text/plain; version=0.0.4")

    @app.get("/v1/cluster")
    async def cluster() -> JSONResponse:
        snap = runtime.snapshot()
        if service.dashboard is not None:
            snap = {**snap, "audit": service.dashboard.audit_snapshot()}
        return JSONResponse(service.auth.visible(jsonable_encoder(snap)))

    @app.get("/v1/routing")
    async def routing() -> JSONResponse:
        """Edge/cloud routing: budget, breaker state, cloud calls and cost."""
        edge_cloud = service.edge_cloud
        return JSONResponse({"enabled": edge_cloud is not None,
                             **(edge_cloud.snapshot() if edge_cloud else {})})
