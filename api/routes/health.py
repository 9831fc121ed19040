"""Liveness, readiness and Prometheus metrics: unauthenticated, as probes and scrapers expect."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Services, get_metrics, optional_caller, services
from api.metrics import Metrics

router = APIRouter(tags=["operations"])
COUNTS = ("documents", "chunks", "vectors")


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: models loaded, stores reachable, data directory writable",
            responses={503: {"description": "not ready; `error` says which part"}})
def readyz(request: Request, svc: Services = Depends(services)):
    """`status` for anyone (probes); the document, chunk and vector counts only for an admin's credentials."""
    try:
        detail = svc.ready()
    except Exception as exc:  # any store or model failure means "not ready", with the reason
        return JSONResponse({"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}, status_code=503)
    who = optional_caller(request)
    if who is None or not who.is_admin:
        detail = {k: v for k, v in detail.items() if k not in COUNTS}
    if not detail["model_loaded"]:
        return JSONResponse({"status": "starting", **detail}, status_code=503)
    return {"status": "ready", **detail}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(metrics: Metrics = Depends(get_metrics)) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
