"""Optional Prometheus metrics at ``/metrics`` (``metrics_addr="host:port"``),
with ``prometheus_client`` (the ``metrics`` extra): jobs ended by outcome,
handler durations and jobs running, per service and job."""

from __future__ import annotations

from typing import Any


class Metrics:
    """The worker's metrics, on a registry of its own."""

    def __init__(self, addr: str) -> None:
        try:
            import prometheus_client as prom
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "metrics_addr needs prometheus_client: pip install 'rpc-runtime[metrics]'"
            ) from e
        self.registry = prom.CollectorRegistry()
        self.jobs = prom.Counter(
            "rpc_worker_jobs", "Jobs ended, by outcome", ["service", "job", "outcome"],
            registry=self.registry,
        )
        self.duration = prom.Histogram(
            "rpc_worker_handler_seconds", "How long handlers ran", ["service", "job"],
            registry=self.registry,
        )
        self.running = prom.Gauge(
            "rpc_worker_running_jobs", "Handlers running now", ["service", "job"],
            registry=self.registry,
        )
        host, _, port = addr.rpartition(":")
        self.server: Any = prom.start_http_server(
            int(port), addr=host or "0.0.0.0", registry=self.registry
        )
        self.port = int(self.server[0].server_port) if isinstance(self.server, tuple) else int(port)

    def started(self, service: str, job: str) -> None:
        self.running.labels(service, job).inc()

    def finished(self, service: str, job: str, seconds: float) -> None:
        self.running.labels(service, job).dec()
        self.duration.labels(service, job).observe(seconds)

    def ended(self, service: str, job: str, outcome: str) -> None:
        self.jobs.labels(service, job, outcome).inc()

    def close(self) -> None:
        if isinstance(self.server, tuple):
            self.server[0].shutdown()
