"""The queries of the operations kit: every PromQL and LogQL expression of the Grafana dashboards,
the Grafana provisioning and the Prometheus rules, and the tools that check them.

* :func:`dashboard_queries` lists each panel target (and template-variable query) of
  ``deploy/grafana/dashboards/*.json``; :func:`substitute` replaces Grafana's variables
  (``$job``, ``${job}``, ``[[job]]``, ``$__rate_interval``...) with concrete values.
* :func:`alert_rules` lists the alerting rules of ``deploy/prometheus/rules/*.yml``;
  :func:`alert_signals` splits an alert expression into the series it compares with its
  thresholds: set operators at the top are split (``A or B`` -> ``A``, ``B``), a comparison
  filter gives its operand(s) (``X > 3`` -> ``X``), ``absent(v)`` gives ``v``. An alert that is
  not firing returns nothing, but each of its signals must.
* :func:`check_logql` parses LogQL with Grafana's grammar (npm ``@grafana/lezer-logql``, run by
  ``node`` from ``tests/ops/logql``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
LOGQL_DIR = Path(__file__).resolve().parent / "logql"

#: Grafana's global variables, with values fit for a short test run (1 s scrapes).
GRAFANA_GLOBALS: Mapping[str, str] = {
    "__rate_interval": "10s",
    "__interval": "5s",
    "__interval_ms": "5000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
    "__auto": "10s",
}


@dataclass(frozen=True)
class Query:
    """One query of a dashboard: where it is and what it says."""

    dashboard: str
    panel_id: int | None
    panel: str
    ref_id: str
    datasource_uid: str
    datasource_type: str
    expr: str
    instant: bool = False

    @property
    def where(self) -> str:
        return f"{self.dashboard} panel {self.panel_id} {self.panel!r} query {self.ref_id}"


def load_dashboard(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) if panel.get("type") == "row" else ()


def _ds(obj: Mapping[str, Any], default: Mapping[str, Any] | None) -> tuple[str, str]:
    ds = obj.get("datasource") or default or {}
    return str(ds.get("uid", "")), str(ds.get("type", ""))


def dashboard_queries(path: Path) -> list[Query]:
    """The targets of every panel, and the query of every ``query`` template variable."""
    dashboard = load_dashboard(path)
    out: list[Query] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            uid, kind = _ds(target, panel.get("datasource"))
            out.append(Query(path.name, panel.get("id"), panel.get("title", ""), target.get("refId", ""), uid, kind,
                             target.get("expr", ""), bool(target.get("instant"))))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            uid, kind = _ds(var, None)
            query = var.get("query")
            expr = query.get("query", "") if isinstance(query, dict) else str(query)
            out.append(Query(path.name, None, f"variable {var['name']}", var["name"], uid, kind, expr, True))
    return out


def dashboard_variables(path: Path) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load_dashboard(path).get("templating", {}).get("list", [])}


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


def variables_in(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses."""
    return {next(g for g in m.groups() if g) for m in _VAR.finditer(expr)}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana's variables with ``values`` (and :data:`GRAFANA_GLOBALS`); KeyError for an unknown one."""
    merged = {**GRAFANA_GLOBALS, **values}

    def repl(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        return merged[name]

    return _VAR.sub(repl, expr)


# ------------------------------------------------------------------ PromQL helpers


def label_values_query(expr: str) -> str | None:
    """``label_values(metric{...}, label)`` (Grafana's variable query) -> the PromQL series selector, else None."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr, re.DOTALL)
    return m.group(1) if m else None


def _promql() -> Any:
    import pytest

    return pytest.importorskip("promql_parser", reason="PyPI promql-parser (a test dependency)")


def parse_promql(expr: str) -> Any:
    """Parse with promql-parser (a Rust port of Prometheus's parser); ValueError on a syntax error."""
    return _promql().parse(expr)


_COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
_SET_OPS = frozenset({"and", "or", "unless"})


def _is_scalar(node: Any) -> bool:
    kind = type(node).__name__
    if kind == "NumberLiteral":
        return True
    if kind == "ParenExpr":
        return _is_scalar(node.expr)
    if kind == "UnaryExpr":
        return _is_scalar(node.expr)
    if kind == "BinaryExpr":
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def _unparen(node: Any) -> str:
    while type(node).__name__ == "ParenExpr":
        node = node.expr
    return str(node)


def alert_signals(expr: str) -> list[str]:
    """The sub-expressions an alert compares with its thresholds (see the module docstring)."""
    def walk(node: Any) -> list[str]:
        kind = type(node).__name__
        if kind == "ParenExpr":
            return walk(node.expr)
        if kind == "BinaryExpr":
            op = str(node.op)
            if op in _SET_OPS:
                return walk(node.lhs) + walk(node.rhs)
            returns_bool = node.modifier is not None and node.modifier.return_bool
            if op in _COMPARISONS and not returns_bool:  # a filter: what it filters is the signal
                if _is_scalar(node.rhs):
                    return [_unparen(node.lhs)]
                if _is_scalar(node.lhs):
                    return [_unparen(node.rhs)]
                return [_unparen(node.lhs), _unparen(node.rhs)]
        if kind == "Call" and node.func.name == "absent":
            return [str(node.args[0])]
        if kind == "Call" and node.func.name == "absent_over_time":
            return [f"count_over_time({node.args[0]})"]
        return [str(node)]

    return walk(parse_promql(expr))


@dataclass(frozen=True)
class AlertRule:
    file: str
    group: str
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    for_: str


def alert_rules() -> list[AlertRule]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.append(AlertRule(path.name, group["name"], rule["alert"], rule["expr"],
                                         rule.get("labels", {}), rule.get("annotations", {}), rule.get("for", "0s")))
    return out


def recording_rules() -> list[tuple[str, str]]:
    return [(rule["record"], rule["expr"]) for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "record" in rule]


# ------------------------------------------------------------------ LogQL


class LogQLCheckerUnavailable(RuntimeError):
    """node, npm or the grammar package cannot be had."""


def _ensure_logql_modules() -> str:
    node = shutil.which("node")
    if node is None:
        raise LogQLCheckerUnavailable("node is not installed (the LogQL grammar runs on Node.js)")
    if not (LOGQL_DIR / "node_modules" / "@grafana" / "lezer-logql").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            raise LogQLCheckerUnavailable("npm is not installed: cannot install @grafana/lezer-logql")
        # Pinned by tests/ops/logql/package-lock.json; from the npm registry, or npm's cache.
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=LOGQL_DIR,
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {LOGQL_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return node


def check_logql(queries: list[str]) -> list[dict[str, Any]]:
    """Parse each query with @grafana/lezer-logql; one ``{"query", "top", "errors"}`` per query."""
    node = _ensure_logql_modules()
    done = subprocess.run([node, "check.mjs"], cwd=LOGQL_DIR, input=json.dumps(queries), capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"check.mjs failed ({done.returncode}): {done.stderr}")
    results = json.loads(done.stdout)
    assert isinstance(results, list)
    return results


_STREAM_SELECTOR = re.compile(r"^\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def stream_matchers(query: str) -> list[tuple[str, str, str]]:
    """The label matchers of a log query's stream selector (``{a="b", c=~"d"}`` -> ``[(a, =, b), (c, =~, d)]``)."""
    m = _STREAM_SELECTOR.search(query)
    if m is None:
        return []
    body = m.group(1)
    out = []
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if mm is None:
            raise ValueError(f"cannot read the stream selector of {query!r} at {body[pos:]!r}")
        out.append((mm.group(1), mm.group(2), json.loads(f'"{mm.group(3)}"')))
        pos = mm.end()
    return out


def logql_queries_of_datasources() -> list[tuple[str, str]]:
    """LogQL inside the Grafana provisioning (Jaeger's trace-to-logs query), with ``$$`` unescaped."""
    out = []
    for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]:
        t2l = ds.get("jsonData", {}).get("tracesToLogsV2", {})
        if t2l.get("customQuery") and t2l.get("query"):
            out.append((f"{ds['name']}.tracesToLogsV2.query", t2l["query"].replace("$$", "$")))
    return out
