"""Edge/cloud routing for the live server: one object the API calls per generation request.

`EdgeCloudRouter.serve(body, edge)` decides the tier with the budgeted router, calls the cloud
for a cloud decision, and falls back to `edge()` (the local pipeline) when the cloud fails, is
slow, or its breaker is open. Every image's `argus` object says what happened: `tier` ("edge" or
"cloud") and `route: {prs, alpha, reason}`; a cloud that is itself Argus keeps its own metadata
under `argus.remote`.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

import argus
from argus.config import RoutingConfig
from argus.routing.predictor import load_predictor
from argus.routing.remote import CloudClient, CloudUnavailable
from argus.routing.router import BudgetedRouter, RouteDecision, RoutingPolicy, prs_policy

SHIPPED_PREDICTOR = Path(argus.__file__).parent / "assets" / "routing" / "predictor.json"
# Requests that name a local variant or a step count are served exactly as asked, locally.
AUTO_MODELS = (None, "", "auto")

BUDGET_HEADER = "x-argus-cloud-budget"
"""Request header overriding the tenant's cloud budget for this request (a share in [0, 1])."""

EdgeCall = Callable[[], Awaitable[dict[str, Any]]]


def budget_override(value: str | None) -> float | None:
    """The per-request cap from the `X-Argus-Cloud-Budget` header; ValueError if malformed."""
    if value is None:
        return None
    try:
        budget = float(value)
    except ValueError:
        raise ValueError(f"{BUDGET_HEADER} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"{BUDGET_HEADER} must be in [0, 1], got {budget}")
    return budget


def routing_policy(config: RoutingConfig) -> RoutingPolicy:
    """The RouteT2I policy from the configured (else the shipped) PRS predictor."""
    path = Path(config.predictor) if config.predictor else SHIPPED_PREDICTOR
    if not path.is_file():
        raise ValueError(f"routing is enabled but there is no PRS predictor at {path}; train one "
                         "with `argus route-eval --save-predictor` and set routing.predictor")
    predictor = load_predictor(path)
    return prs_policy(predictor.predict_prs, predictor.calibration_prs)


class RoutingMetrics:
    """Prometheus counters of routing, registered where the API renders its metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "argus_route_decisions_total", "Requests by the tier that served them and why",
            ["tier", "cause"], registry=registry,
        )
        self.cloud_cost = Counter(
            "argus_cloud_cost_total", "Accounted cost of successful cloud calls", registry=registry
        )

    def record(self, decision: RouteDecision, cost: float = 0.0) -> None:
        self.decisions.labels(decision.tier, decision.cause).inc()
        if cost:
            self.cloud_cost.inc(cost)


class EdgeCloudRouter:
    def __init__(self, router: BudgetedRouter, cloud: CloudClient,
                 metrics: RoutingMetrics | None = None) -> None:
        self.router = router
        self.cloud = cloud
        self.metrics = metrics or RoutingMetrics()

    @classmethod
    def from_config(
        cls,
        config: RoutingConfig,
        policy: RoutingPolicy | None = None,
        registry: CollectorRegistry | None = None,
    ) -> EdgeCloudRouter | None:
        """The live router, or None when routing is disabled; counters go to `registry`."""
        if not config.enabled:
            return None
        router = BudgetedRouter(policy or routing_policy(config), config.budget,
                                config.window_requests, config.tenant_budgets)
        return cls(router, CloudClient.from_config(config), RoutingMetrics(registry))

    def local_only_reason(self, body: dict[str, Any]) -> str | None:
        """Why a request must stay on the edge whatever its prompt, or None."""
        if body.get("model") not in AUTO_MODELS:
            return f"model {body['model']!r} pinned: served locally"
        if body.get("num_inference_steps") is not None:
            return "steps pinned: served locally"
        if body.get("stream"):
            return "streaming requests are served locally"
        return None

    async def cloud_first(
        self,
        body: dict[str, Any],
        tenant: str = "default",
        budget: float | None = None,
        to_url: Callable[[bytes], str] | None = None,
    ) -> tuple[dict[str, Any] | None, RouteDecision]:
        """Route one request; serve it from the cloud if so decided and the cloud delivers.

        Returns (annotated cloud response, decision) or (None, edge decision): the caller then
        serves locally and passes its response through `annotate(response, decision)`.
        `budget` overrides the tenant's cap; `to_url` turns PNG bytes into a URL for clients
        that asked for `response_format: url` (the cloud is always asked for inline images).
        """
        pinned = self.local_only_reason(body)
        if pinned is not None:
            decision = RouteDecision("edge", pinned, cause="local-only")
            self.metrics.record(decision)
            return None, decision
        decision = self.router.route(str(body.get("prompt", "")), tenant, budget)
        if decision.tier == "edge":
            self.metrics.record(decision)
            return None, decision
        try:
            response = await self.cloud.generate(body, tenant)
        except CloudUnavailable as err:
            reason = f"cloud failed, served on the edge: {err}"
            decision = dataclasses.replace(decision, tier="edge", reason=reason,
                                           cause="cloud-failed")
            self.metrics.record(decision)
            return None, decision
        self.metrics.record(decision, self.cloud.cost_per_call)
        if body.get("response_format") == "url" and to_url is not None:
            for item in response["data"]:
                if "b64_json" in item:
                    item["url"] = to_url(base64.b64decode(item.pop("b64_json")))
        return annotate(response, decision), decision

    async def serve(
        self,
        body: dict[str, Any],
        edge: EdgeCall,
        tenant: str = "default",
        budget: float | None = None,
    ) -> dict[str, Any]:
        """Serve one request on the tier the router picks, `edge()` serving it locally."""
        response, decision = await self.cloud_first(body, tenant, budget)
        return response if response is not None else annotate(await edge(), decision)

    def snapshot(self) -> dict[str, Any]:
        return {"budget": self.router.budget, "window_requests": self.router.window_requests,
                "breaker": self.cloud.breaker.state, "usage": self.cloud.usage.snapshot()}

    async def aclose(self) -> None:
        await self.cloud.aclose()


def annotate(response: dict[str, Any], decision: RouteDecision) -> dict[str, Any]:
    """Add `argus.tier` and `argus.route` to every image of an OpenAI-shaped response."""
    for item in response.get("data", []):
        own = item.get("argus")
        meta: dict[str, Any] = {}
        if decision.tier == "cloud" and own is not None:
            meta["remote"] = own
        elif own is not None:
            meta.update(own)
        meta["tier"] = decision.tier
        meta["route"] = decision.metadata()
        item["argus"] = meta
    return response
