"""Prometheus metrics at the service's ``/metrics``: requests, latencies, transfers, queue lengths."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tornado import web


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "backendai_manager_requests", "Requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "backendai_manager_request_duration_seconds", "Time to answer", ["method", "route"], registry=self.registry
        )
        self.transfer_bytes = Counter(
            "backendai_manager_transfer_bytes", "Bytes uploaded and downloaded", ["direction"], registry=self.registry
        )
        self.queue_length = Gauge(
            "backendai_manager_pending_sessions", "Sessions waiting, per resource group", ["resource_group"],
            registry=self.registry,
        )  # fmt: skip

    @staticmethod
    def _route(handler: web.RequestHandler) -> str:
        return type(handler).__name__

    def request_started(self, handler: web.RequestHandler) -> None:
        handler._metrics_start = time.perf_counter()

    def request_finished(self, handler: web.RequestHandler) -> None:
        start = getattr(handler, "_metrics_start", None)
        route = self._route(handler)
        method = handler.request.method or ""
        self.requests.labels(method, route, str(handler.get_status())).inc()
        if start is not None:
            self.latency.labels(method, route).observe(time.perf_counter() - start)


class MetricsHandler(web.RequestHandler):
    def get(self):
        manager = self.settings["backendai_manager"]
        self._refresh_queue(manager)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(manager.metrics.registry))

    @staticmethod
    def _refresh_queue(manager) -> None:
        from sqlalchemy import func, select

        from ..db import models as m

        with manager.database.session() as db:
            rows = db.execute(
                select(m.Session.scaling_group, func.count())
                .where(m.Session.status == m.SessionStatus.PENDING)
                .group_by(m.Session.scaling_group)
            ).all()
        for group, count in rows:
            manager.metrics.queue_length.labels(group).set(count)
