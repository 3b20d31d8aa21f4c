"""Config of the ``health_check`` extension (collector shape)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config.decode import Duration
from agent.netutil import parse_endpoint


@dataclass(frozen=True)
class ResponseBody:
    healthy: str = ""
    unhealthy: str = ""


@dataclass(frozen=True)
class CheckCollectorPipeline:
    """Accepted for compatibility; the collector's implementation is broken
    (contrib#11780) and ours reports pipeline readiness instead."""

    enabled: bool = False
    interval: Duration = 300.0
    exporter_failure_threshold: int = 5


@dataclass(frozen=True)
class Config:
    endpoint: str = "127.0.0.1:13133"
    path: str = "/"
    response_body: ResponseBody | None = None
    check_collector_pipeline: CheckCollectorPipeline = field(default_factory=CheckCollectorPipeline)

    def validate(self) -> list[tuple[str, str]]:
        out = []
        try:
            parse_endpoint(self.endpoint)
        except ValueError as e:
            out.append(("endpoint", str(e)))
        if not self.path.startswith("/"):
            out.append(("path", "must start with '/'"))
        return out
