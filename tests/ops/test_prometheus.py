"""deploy/prometheus: the configs pass `promtool check config`, the rules `promtool check rules`,
and `promtool test rules` shows every alert firing and staying quiet on synthetic series.

The Kubernetes variant (prometheus-kubernetes.yml) uses kubernetes_sd_configs, which Debian's
Prometheus build leaves out; it is checked with the pod discovery swapped for file_sd_configs
carrying the same ``__meta_kubernetes_*`` labels, and a real Prometheus then shows which fake pods
its relabeling keeps and with which labels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import prom
from tests.ops.queries import DEPLOY, RULE_FILES, RULE_TESTS, alert_rules
from tests.ports import free_port

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
pytestmark = pytest.mark.skipif(not os.access(PROMTOOL, os.X_OK),
                                reason="promtool is not installed (Debian package 'prometheus')")

PROM_DIR = DEPLOY / "prometheus"
SEVERITIES = {"critical", "warning", "info", "none"}
COMPONENTS = {"api", "database", "cache", "auth", "business", "sidecar", "alerting"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def test_check_config() -> None:
    done = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    # The rule files are found through rule_files and checked too.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout, done.stdout


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_check_rules(path: Path) -> None:
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests() -> None:
    assert RULE_TESTS
    done = promtool("test", "rules", *(str(p) for p in RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def _rule_tests() -> list[dict[str, Any]]:
    cases = []
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(group.get("alert_rule_test", []))
    return cases


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    cases = _rule_tests()
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = {r.name for r in alert_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == {"Watchdog"}, "alerts never shown quiet (Watchdog always fires)"
    # Every test file loads rule files that exist.
    for path in RULE_TESTS:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            assert (path.parent / rule_file).resolve() in {p.resolve() for p in RULE_FILES}


def test_alerts_have_routing_labels_and_annotations() -> None:
    rules = alert_rules()
    assert len({r.name for r in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        assert rule.labels.get("severity") in SEVERITIES, rule.name
        assert rule.labels.get("component") in COMPONENTS, rule.name
        assert rule.annotations.get("summary") and rule.annotations.get("description"), rule.name


def test_the_plans_alerts_exist() -> None:
    names = {r.name for r in alert_rules()}
    assert names >= {
        "ApiDown", "ApiLatencyVeryHigh", "ApiLatencyHigh", "ApiErrorRateHigh", "DatabaseQueriesSlow",
        "CacheHitRateLow", "PossibleBruteForce", "DatabaseDown", "HighCpuUsage", "HighMemoryUsage",
        "NoRegistrations", "RegistrationSpike",
        "SidecarDown", "SidecarExportFailing", "SidecarEnqueueFailing", "SidecarExporterQueueNearlyFull",
        "SidecarRefusingData", "SidecarSeriesOverflow", "SidecarDroppedPoints",
    }


# ------------------------------------------------------------------ Kubernetes pod discovery

def _kubernetes_config_with_file_sd(sd_file: Path) -> dict[str, Any]:
    """prometheus-kubernetes.yml with every kubernetes_sd_configs replaced by file_sd_configs on ``sd_file``."""
    cfg = yaml.safe_load((PROM_DIR / "prometheus-kubernetes.yml").read_text())

    def swap(block: dict[str, Any]) -> None:
        sds = block.pop("kubernetes_sd_configs")
        assert sds and all(sd.get("role") == "pod" for sd in sds), sds
        block["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1m"}]

    for scrape in cfg["scrape_configs"]:
        swap(scrape)
    for am in cfg["alerting"]["alertmanagers"]:
        swap(am)
    cfg["rule_files"] = [str(PROM_DIR / r) for r in cfg["rule_files"]]
    return cfg


def _pod_target(address: str, pod: str, container: str, port_name: str, *, annotated: bool,
                phase: str = "Running", init: bool = False) -> dict[str, Any]:
    labels = {
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_node_name": "node-1",
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_init": "true" if init else "false",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "auth-api",
    }
    if annotated:
        labels["__meta_kubernetes_pod_annotation_otel_sidecar_io_scrape"] = "true"
    return {"targets": [address], "labels": labels}


def test_kubernetes_config_checks_with_file_sd(tmp_path: Path) -> None:
    sd = tmp_path / "pods.json"
    sd.write_text("[]")
    (tmp_path / "k8s.yml").write_text(yaml.safe_dump(_kubernetes_config_with_file_sd(sd)))
    done = promtool("check", "config", str(tmp_path / "k8s.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(not prom.available(), reason="prometheus is not installed (Debian package 'prometheus')")
def test_kubernetes_relabeling_keeps_the_sidecar_ports_of_annotated_running_pods(tmp_path: Path) -> None:
    # Fake pods on loopback addresses (scrapes of them fail fast; no traffic leaves the machine).
    pods = [
        _pod_target("127.0.0.1:1", "auth-api-1", "otel-sidecar", "otel-prom", annotated=True, init=True),
        _pod_target("127.0.0.1:2", "auth-api-1", "otel-sidecar", "otel-self", annotated=True, init=True),
        _pod_target("127.0.0.1:3", "auth-api-1", "otel-sidecar", "otel-health", annotated=True, init=True),
        _pod_target("127.0.0.1:4", "auth-api-1", "auth-api", "http", annotated=True),
        _pod_target("127.0.0.1:5", "other-1", "otel-sidecar", "otel-prom", annotated=False, init=True),
        _pod_target("127.0.0.1:6", "auth-api-2", "otel-sidecar", "otel-prom", annotated=True, phase="Pending"),
    ]
    sd = tmp_path / "pods.json"
    sd.write_text(json.dumps(pods))
    scrape = _kubernetes_config_with_file_sd(sd)["scrape_configs"]
    for job in scrape:
        job["scrape_interval"] = "1h"  # discovery is what is tested, not scraping
        job["scrape_timeout"] = "1s"
    server = prom.start(tmp_path, "k8s", free_port(), scrape)
    try:
        deadline = time.monotonic() + 20
        active: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/api/v1/targets", timeout=5).json()
            active = body["data"]["activeTargets"]
            if len(active) >= 2:
                break
            time.sleep(0.2)
        got = {t["labels"]["job"]: t["labels"] for t in active}
        assert len(active) == 2, active
        common = {"namespace": "shop", "pod": "auth-api-1", "container": "otel-sidecar", "node": "node-1",
                  "app": "auth-api"}
        assert got["otel-sidecar"] == {**common, "job": "otel-sidecar", "instance": "127.0.0.1:1"}
        assert got["otel-sidecar-self"] == {**common, "job": "otel-sidecar-self", "instance": "127.0.0.1:2"}
        scrape_cfg = {t["scrapePool"]: t for t in active}
        assert set(scrape_cfg) == {"otel-sidecar", "otel-sidecar-self"}
    finally:
        prom.stop(server)
