"""deploy/alertmanager/alertmanager.yml: `amtool check-config` passes, `amtool config routes test`
proves where each severity/component goes (and every alert of the rules reaches the receivers
its labels call for), a real Alertmanager applies the inhibition rules, and no secret is inline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.ops.queries import DEPLOY, alert_rules
from tests.ports import free_port

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"
CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.skipif(not os.access(AMTOOL, os.X_OK),
                                reason="amtool is not installed (Debian package 'prometheus-alertmanager')")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def receivers_for(labels: dict[str, str]) -> list[str]:
    done = amtool("config", "routes", "test", f"--config.file={CONFIG}", *(f"{k}={v}" for k, v in labels.items()))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def test_check_config() -> None:
    done = amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


#: (labels) -> receivers, in the order Alertmanager notifies them.
ROUTES = [
    ({"severity": "critical", "component": "api"}, ["pagerduty-oncall", "slack-api"]),
    ({"severity": "warning", "component": "api"}, ["slack-api"]),
    ({"severity": "warning", "component": "cache"}, ["slack-api"]),
    ({"severity": "critical", "component": "database"}, ["pagerduty-oncall", "email-database"]),
    ({"severity": "warning", "component": "database"}, ["email-database"]),
    ({"severity": "critical", "component": "sidecar"}, ["pagerduty-oncall", "slack-observability"]),
    ({"severity": "warning", "component": "sidecar"}, ["slack-observability"]),
    ({"severity": "warning", "component": "auth"}, ["email-security"]),
    ({"severity": "info", "component": "business"}, ["email-product"]),
    ({"alertname": "Watchdog", "severity": "none", "component": "alerting"}, ["deadmansswitch"]),
    ({"severity": "warning", "component": "something-else"}, ["slack-alerts"]),
]


@pytest.mark.parametrize(("labels", "expected"), ROUTES, ids=lambda v: ",".join(v) if isinstance(v, list) else None)
def test_routes(labels: dict[str, str], expected: list[str]) -> None:
    assert receivers_for(labels) == expected
    # amtool's own verification flag agrees (non-zero exit on a mismatch).
    done = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={','.join(expected)}",
                  *(f"{k}={v}" for k, v in labels.items()))
    assert done.returncode == 0, done.stdout + done.stderr


def _expected_receivers(severity: str, component: str) -> list[str]:
    first = ["pagerduty-oncall"] if severity == "critical" else []
    if severity == "info":
        return [*first, "email-product"]
    by_component = {"sidecar": "slack-observability", "database": "email-database", "auth": "email-security",
                    "api": "slack-api", "cache": "slack-api"}
    return [*first, by_component.get(component, "slack-alerts")]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r.name)
def test_every_alert_reaches_its_receivers(rule: Any) -> None:
    labels = {"alertname": rule.name, **rule.labels}
    got = receivers_for(labels)
    if rule.name == "Watchdog":
        assert got == ["deadmansswitch"]
    else:
        assert got == _expected_receivers(rule.labels["severity"], rule.labels["component"])
        assert "slack-alerts" not in got, "no alert of ours should fall through to the catch-all"


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [item for i, v in enumerate(node) for item in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_no_secret_inline() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    secret_keys = {"api_url", "slack_api_url", "routing_key", "service_key", "auth_password", "smtp_auth_password",
                   "auth_secret", "smtp_auth_secret", "credentials", "password", "bearer_token", "url_file"}
    leaves = _walk(config)
    for path, _ in leaves:
        assert path.rsplit(".", 1)[-1] not in secret_keys, f"{path}: use the *_file variant"
    files = [value for path, value in leaves if path.endswith("_file")]
    assert files and all(str(f).startswith("/etc/alertmanager/secrets/") for f in files), files
    # The referenced files are documented for operators.
    readme = (DEPLOY / "alertmanager" / "secrets" / "README.md").read_text()
    for f in files:
        assert Path(f).name in readme, f


# ------------------------------------------------------------------ inhibition, with a real Alertmanager

def _silent_copy(tmp: Path) -> Path:
    """The config with every receiver emptied (same names): routing and inhibition unchanged, no notification."""
    config = yaml.safe_load(CONFIG.read_text())
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    config["global"] = {"resolve_timeout": "5m"}
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def alertmanager(tmp_path: Path) -> Any:
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.skip("alertmanager is not installed (Debian package 'prometheus-alertmanager')")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={_silent_copy(tmp_path)}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "alertmanager not ready"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _alert(name: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": name},
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}


def test_critical_inhibits_the_matching_warning(alertmanager: str) -> None:
    alerts = [
        _alert("ApiLatencyVeryHigh", job="auth-api", severity="critical", component="api"),
        _alert("ApiLatencyHigh", job="auth-api", severity="warning", component="api"),
        _alert("ApiLatencyHigh", job="shop-api", severity="warning", component="api"),          # other job
        _alert("DatabaseQueriesSlow", job="auth-api", severity="warning", component="database"),  # other component
        _alert("HighCpuUsage", job="auth-api", instance="pod-1", severity="warning", component="api"),  # other instance
        _alert("DatabaseDown", job="billing", severity="critical", component="database"),
        _alert("DatabaseQueriesSlow", job="billing", severity="warning", component="database"),
        _alert("SidecarDown", job="otel-sidecar-self", instance="a:8888", severity="critical", component="sidecar"),
        _alert("SidecarExporterQueueNearlyFull", job="otel-sidecar-self", instance="a:8888", severity="warning",
               component="sidecar", exporter="loki"),
        _alert("SidecarExporterQueueNearlyFull", job="otel-sidecar-self", instance="b:8888", severity="warning",
               component="sidecar", exporter="loki"),
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    expected_suppressed = {("ApiLatencyHigh", "auth-api", ""), ("DatabaseQueriesSlow", "billing", ""),
                           ("SidecarExporterQueueNearlyFull", "otel-sidecar-self", "a:8888")}
    deadline = time.monotonic() + 15
    state: dict[tuple[str, str, str], str] = {}
    while time.monotonic() < deadline:
        got = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        state = {(a["labels"]["alertname"], a["labels"].get("job", ""), a["labels"].get("instance", "")):
                 a["status"]["state"] for a in got}
        if len(state) == len(alerts) and {k for k, v in state.items() if v == "suppressed"} == expected_suppressed:
            break
        time.sleep(0.2)
    assert {k for k, v in state.items() if v == "suppressed"} == expected_suppressed, state
    assert all(v == "active" for k, v in state.items() if k not in expected_suppressed), state
