"""Prometheus metrics of the HTTP API, in a registry of their own (one per app, so tests can count)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    """Request counts by route template and status, latency by route, orders by source and outcome."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "galleryflow_api_requests_total", "HTTP requests answered, by route template and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "galleryflow_api_request_seconds", "Time to answer an HTTP request", ["route"],
            registry=self.registry,
        )
        self.orders = Counter(
            "galleryflow_api_orders_total", "Pushed orders, by source and outcome (accepted, rejected)",
            ["source", "outcome"], registry=self.registry,
        )


class MetricsMiddleware:
    """Counts every HTTP request under its route template (never the raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the app raises before answering
        began = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - began)


def _route_template(scope: Scope) -> str:
    """The matched route's template; plain routes (``/docs``) by their own path; else ``(unmatched)``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    requested = scope.get("path")
    for route in getattr(scope.get("app"), "routes", ()):
        if getattr(route, "path", None) == requested:
            return str(requested)
    return "(unmatched)"
