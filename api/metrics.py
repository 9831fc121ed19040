"""Prometheus metrics: requests and latency per route, per-stage timings, answer outcomes, LLM tokens."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per app, so two apps in one process (tests) do not share counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("lore_http_requests_total", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("lore_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=_LATENCY, registry=r)
        self.stage = Histogram("lore_stage_duration_seconds", "time per answer stage (retrieve, answer, search)",
                               ["stage"], buckets=_LATENCY, registry=r)
        self.answers = Counter("lore_answers_total", "answers by status; no_evidence / all = abstention rate",
                               ["status", "channel"], registry=r)
        self.abstention = Gauge("lore_abstention_ratio", "share of answers that abstained (no_evidence) since start",
                                registry=r)
        self.tokens = Counter("lore_llm_tokens_total", "LLM tokens used", ["kind"], registry=r)
        self.source_success = Gauge("lore_source_last_success_timestamp_seconds",
                                    "when each source last synced successfully (ok or partial)", ["source"], registry=r)
        self.source_failures = Counter("lore_source_sync_failures_total",
                                       "syncs that changed nothing because the source failed", ["source"], registry=r)
        self.source_item_failures = Counter("lore_source_item_failures_total",
                                            "items a sync could not fetch or parse", ["source"], registry=r)
        self._answered = self._abstained = 0

    def observe_answer(self, answer_dict: dict, channel: str) -> None:
        status = answer_dict["status"]
        self.answers.labels(status, channel).inc()
        self._answered += 1
        self._abstained += status == "no_evidence"
        self.abstention.set(self._abstained / self._answered)
        t = answer_dict.get("timings") or {}
        for stage in ("retrieve", "answer"):
            if f"{stage}_ms" in t:
                self.stage.labels(stage).observe(t[f"{stage}_ms"] / 1000)
        for kind, n in (answer_dict.get("usage") or {}).items():
            if kind in ("prompt_tokens", "completion_tokens"):
                self.tokens.labels(kind.removesuffix("_tokens")).inc(n)

    def observe_sync(self, report: dict) -> None:
        source = report.get("source", "")
        if report.get("status") in ("ok", "partial"):
            finished = report.get("finished_at") or ""
            try:
                self.source_success.labels(source).set(datetime.fromisoformat(finished).timestamp())
            except ValueError:
                self.source_success.labels(source).set_to_current_time()
        elif report.get("status") == "failed":
            self.source_failures.labels(source).inc()
        if report.get("failed"):
            self.source_item_failures.labels(source).inc(len(report["failed"]))

    def observe_search(self, seconds: float) -> None:
        self.stage.labels("search").observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request under its route template (`/v1/passages/{chunk_id}`), not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def sending(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            took = time.perf_counter() - t0
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(took)
            # the route template, never the raw path or query (they can carry ids and search text)
            log.info("%s %s -> %d in %.0f ms", scope["method"], template, status, took * 1000)
