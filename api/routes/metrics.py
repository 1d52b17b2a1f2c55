"""``GET /metrics``: the app's Prometheus metrics (see :mod:`api.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.metrics import METRICS


def build_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Updates handled per type, handler latency, refusals and errors, audited writes per action,
        reference-source latency and failures, imported rows; plus process metrics."""
        return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)

    return router
