"""deploy/grafana: the provisioning files and the dashboard JSON are structurally sound, every
PromQL expression of the dashboard parses (promql-parser) and every LogQL expression parses with
Grafana's LogQL grammar (npm @grafana/lezer-logql, run by node). Whether the PromQL returns data
from a real Prometheus is tests/e2e/test_dashboards.py's job.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.queries import (
    DASHBOARDS,
    DATASOURCES,
    DEPLOY,
    LogQLCheckerUnavailable,
    Query,
    check_logql,
    dashboard_queries,
    dashboard_variables,
    iter_panels,
    label_values_query,
    load_dashboard,
    logql_queries_of_datasources,
    parse_promql,
    stream_matchers,
    substitute,
    variables_in,
)

GRID_WIDTH = 24
PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
OVERVIEW = DEPLOY / "grafana" / "dashboards" / "service-overview.json"
#: Concrete values for the dashboard's variables (what a user would pick).
VALUES = {"job": "auth-api", "service": "auth-api", "sidecar": ".*", "search": ""}

#: The panels of the original plan, and the sidecar health row.
PLAN_PANELS = [
    "Request rate by method", "Request duration (p95, p50)", "Error rate (5xx)", "Active requests",
    "Requests per hour", "DB query duration (p95 by operation)", "DB connection pool", "Cache hit rate",
    "Authentication", "Memory", "CPU", "Disk I/O", "Top slow endpoints (p95 over the time range)", "Logs",
    "Active alerts",
]
SIDECAR_PANELS = ["Received and refused items", "Sent and failed items by exporter", "Exporter queue usage",
                  "Sidecar memory (RSS) and CPU", "Prometheus exporter series"]


def datasources() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def all_queries() -> list[Query]:
    return [q for path in DASHBOARDS for q in dashboard_queries(path)]


# ------------------------------------------------------------------ provisioning

def test_datasources_provisioning() -> None:
    raw = yaml.safe_load(DATASOURCES.read_text())
    assert raw["apiVersion"] == 1
    uids = [ds["uid"] for ds in raw["datasources"]]
    assert len(uids) == len(set(uids))
    by_uid = datasources()
    assert {by_uid[u]["type"] for u in ("prometheus", "loki", "jaeger")} == {"prometheus", "loki", "jaeger"}
    assert sum(1 for ds in raw["datasources"] if ds.get("isDefault")) == 1
    # Exemplars -> Jaeger.
    prometheus = by_uid["prometheus"]["jsonData"]
    [dest] = prometheus["exemplarTraceIdDestinations"]
    assert dest["name"] == "trace_id" and by_uid[dest["datasourceUid"]]["type"] == "jaeger"
    # Loki's trace_id (structured metadata) -> Jaeger.
    [field] = by_uid["loki"]["jsonData"]["derivedFields"]
    assert field["matcherType"] == "label" and field["matcherRegex"] == "trace_id"
    assert by_uid[field["datasourceUid"]]["type"] == "jaeger"
    assert field["url"].replace("$$", "$") == "${__value.raw}"  # Grafana unescapes $$
    # Jaeger -> Loki and Prometheus.
    jaeger = by_uid["jaeger"]["jsonData"]
    assert by_uid[jaeger["tracesToLogsV2"]["datasourceUid"]]["type"] == "loki"
    assert by_uid[jaeger["tracesToMetrics"]["datasourceUid"]]["type"] == "prometheus"


def test_datasources_escape_dollars() -> None:
    # Grafana expands $VAR / ${VAR} from its environment in provisioning files; a literal $ is $$.
    text = "\n".join(line.split("#", 1)[0] for line in DATASOURCES.read_text().splitlines())
    unescaped = re.findall(r"(?<!\$)\$(?!\$)[{A-Za-z_]", text.replace("$$", ""))
    assert unescaped == []


def test_datasource_urls_point_at_compose_services() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for ds in datasources().values():
        m = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"])
        assert m, ds["url"]
        host, port = m.groups()
        assert host in compose, ds["url"]
        published = {p.split(":")[-1] for p in compose[host].get("ports", [])}
        assert port in published, (ds["url"], compose[host].get("ports"))


def test_dashboard_provider() -> None:
    provider = yaml.safe_load(PROVIDER.read_text())
    [p] = provider["providers"]
    assert p["type"] == "file"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"] if v.startswith(".")}
    assert (DEPLOY / mounts[p["options"]["path"]]).resolve() == OVERVIEW.parent.resolve()
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == DATASOURCES.parent.parent.resolve()


# ------------------------------------------------------------------ dashboard structure

@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dash = load_dashboard(path)
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = list(iter_panels(dash))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert set(g) == {"x", "y", "w", "h"}, p["title"]
        assert all(isinstance(g[k], int) for k in g), p["title"]
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= GRID_WIDTH and g["h"] >= 1 and g["y"] >= 0, p["title"]
        if p["type"] == "row":
            assert (g["x"], g["w"], g["h"]) == (0, GRID_WIDTH, 1), p["title"]
        boxes.append((p["title"], g))
    for i, (t1, a) in enumerate(boxes):  # no two panels overlap
        for t2, b in boxes[i + 1:]:
            overlap = (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                       and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
            assert not overlap, f"{t1!r} overlaps {t2!r}"
    for p in panels:
        if p["type"] == "row":
            continue
        refs = [t["refId"] for t in p.get("targets", [])]
        assert refs and len(refs) == len(set(refs)), p["title"]
        assert p.get("description"), f"{p['title']}: describe what the panel shows"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_datasources_exist(path: Path) -> None:
    by_uid = datasources()
    for q in dashboard_queries(path):
        assert q.datasource_uid in by_uid, q.where
        assert by_uid[q.datasource_uid]["type"] == q.datasource_type, q.where
    for p in iter_panels(load_dashboard(path)):
        if "datasource" in p:
            assert p["datasource"]["uid"] in by_uid, p["title"]


def test_overview_has_the_planned_panels() -> None:
    titles = [p["title"] for p in iter_panels(load_dashboard(OVERVIEW)) if p["type"] != "row"]
    assert titles == PLAN_PANELS + SIDECAR_PANELS
    panels = {p["title"]: p for p in iter_panels(load_dashboard(OVERVIEW))}
    assert panels["Logs"]["type"] == "logs" and panels["Logs"]["datasource"]["type"] == "loki"
    assert panels["Top slow endpoints (p95 over the time range)"]["type"] == "table"
    # The p95 query asks Grafana for exemplars: the path from a slow request to its trace.
    p95 = panels["Request duration (p95, p50)"]["targets"][0]
    assert p95["exemplar"] is True and "http_server_request_duration_seconds_bucket" in p95["expr"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables_are_defined(path: Path) -> None:
    defined = set(dashboard_variables(path))
    for q in dashboard_queries(path):
        used = {v for v in variables_in(q.expr) if not v.startswith("__")}
        assert used <= defined, (q.where, used - defined)
        substitute(q.expr, VALUES)  # every variable has a value


# ------------------------------------------------------------------ query syntax

PROMQL = [q for q in all_queries() if q.datasource_type == "prometheus"]
LOGQL = [q for q in all_queries() if q.datasource_type == "loki"]


@pytest.mark.parametrize("query", PROMQL, ids=lambda q: q.where)
def test_promql_parses(query: Query) -> None:
    expr = substitute(query.expr, VALUES)
    selector = label_values_query(expr)
    parse_promql(selector if selector is not None else expr)


#: Values of the Grafana variables inside the Jaeger data source's trace-to-logs query.
TRACE_TO_LOGS_VALUES = {'${__span.tags["service.name"]}': "auth-api",
                        "${__trace.traceId}": "4bf92f3577b34da6a3ce929d0e0e4736"}


def test_logql_parses_with_grafanas_grammar() -> None:
    queries = [(q.where, substitute(q.expr, VALUES)) for q in LOGQL]
    for where, expr in logql_queries_of_datasources():
        for variable, value in TRACE_TO_LOGS_VALUES.items():
            expr = expr.replace(variable, value)
        queries.append((where, expr))
    assert len(queries) >= 2
    try:
        results = check_logql([expr for _, expr in queries])
    except LogQLCheckerUnavailable as e:
        pytest.skip(str(e))
    for (where, expr), result in zip(queries, results, strict=True):
        assert "$" not in expr, (where, expr)
        assert result["errors"] == [], (where, expr, result)
        # A stream selector needs a matcher that does not match the empty string.
        matchers = stream_matchers(expr)
        assert any(op in ("=", "=~") and value not in ("", ".*") for _, op, value in matchers), (where, expr)


def test_logql_checker_rejects_bad_queries() -> None:
    try:
        results = check_logql(['{service_name="a" |= "x"', 'rate({a="b"}[5m]) >', '{a="b"} | json'])
    except LogQLCheckerUnavailable as e:
        pytest.skip(str(e))
    assert [bool(r["errors"]) for r in results] == [True, True, False]
