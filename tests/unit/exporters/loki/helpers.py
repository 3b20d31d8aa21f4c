"""Builders of OTLP log requests for the loki exporter tests."""

from __future__ import annotations

from typing import Any

from agent.config.decode import decode
from agent.exporters.loki.config import Config
from agent.pdata import Logs, proto
from agent.pdata.attributes import set_any_value

URL = "http://127.0.0.1:1/loki/api/v1/push"


def config(**kw: Any) -> Config:
    """A decoded loki config (YAML-shaped keyword arguments)."""
    return decode(Config, {"endpoint": URL, **kw})


def kvs(target: Any, attrs: dict[str, Any]) -> None:
    for k, v in attrs.items():
        kv = target.add()
        kv.key = k
        set_any_value(kv.value, v)


def request(resources: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> Any:
    """An ExportLogsServiceRequest from ``[(resource attributes, [record spec, ...]), ...]``.

    A record spec holds ``body``, ``ts``, ``observed``, ``sev``, ``text``, ``trace``, ``span``, ``attrs``.
    """
    req = proto.ExportLogsServiceRequest()
    for res_attrs, records in resources:
        rl = req.resource_logs.add()
        kvs(rl.resource.attributes, res_attrs)
        sl = rl.scope_logs.add()
        sl.scope.name = "tests"
        for spec in records:
            r = sl.log_records.add()
            r.time_unix_nano = spec.get("ts", 0)
            r.observed_time_unix_nano = spec.get("observed", 0)
            r.severity_number = spec.get("sev", 9)
            r.severity_text = spec.get("text", "INFO")
            if "trace" in spec:
                r.trace_id = bytes.fromhex(spec["trace"])
            if "span" in spec:
                r.span_id = bytes.fromhex(spec["span"])
            if "body" in spec:
                set_any_value(r.body, spec["body"])
            kvs(r.attributes, spec.get("attrs", {}))
    return req


def logs(resources: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> Logs:
    return Logs(request(resources))
