"""Resource attributes from the Downward API and the environment; user settings win."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource

from instrumentation import __version__
from instrumentation.resource import detect_resource_attributes, resource_attributes

DOWNWARD_API = {
    "K8S_POD_NAME": "auth-api-7d9f8-x2k4q",
    "K8S_POD_UID": "0b8e1c52-8f0e-4c51-9d43-6a3f1e2b7c90",
    "K8S_NAMESPACE": "shop",
    "K8S_NODE_NAME": "node-a1",
    "K8S_CONTAINER_NAME": "auth-api",
    "SERVICE_VERSION": "1.4.2",
    "DEPLOYMENT_ENVIRONMENT": "staging",
}


def test_downward_api_variables() -> None:
    attrs = detect_resource_attributes(DOWNWARD_API, hostname="ignored-host", pid=7)
    assert attrs["k8s.pod.name"] == "auth-api-7d9f8-x2k4q"
    assert attrs["k8s.pod.uid"] == "0b8e1c52-8f0e-4c51-9d43-6a3f1e2b7c90"
    assert attrs["k8s.namespace.name"] == "shop"
    assert attrs["k8s.node.name"] == "node-a1"
    assert attrs["k8s.container.name"] == "auth-api"
    assert attrs["service.name"] == "auth-api"
    assert attrs["service.version"] == "1.4.2"
    assert attrs["deployment.environment.name"] == attrs["deployment.environment"] == "staging"
    assert attrs["service.instance.id"] == "auth-api-7d9f8-x2k4q-7"
    assert attrs["host.name"] == "ignored-host"
    assert attrs["process.pid"] == 7
    assert attrs["telemetry.distro.name"] == "otel-sidecar"
    assert attrs["telemetry.distro.version"] == __version__


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [
        ({"POD_NAME": "p1"}, "k8s.pod.name", "p1"),
        ({"KUBERNETES_POD_NAME": "p2"}, "k8s.pod.name", "p2"),
        ({"POD_NAMESPACE": "ns1"}, "k8s.namespace.name", "ns1"),
        ({"K8S_NAMESPACE_NAME": "ns2", "POD_NAMESPACE": "other"}, "k8s.namespace.name", "ns2"),
        ({"NODE_NAME": "n1"}, "k8s.node.name", "n1"),
        ({"POD_UID": "u1"}, "k8s.pod.uid", "u1"),
        ({"APP_VERSION": "2.0"}, "service.version", "2.0"),
        ({"ENVIRONMENT": "prod"}, "deployment.environment.name", "prod"),
    ],
)
def test_alternative_variable_names(env: dict[str, str], key: str, value: str) -> None:
    assert detect_resource_attributes(env, hostname="h", pid=1)[key] == value


def test_host_name_is_the_pod_name_inside_kubernetes() -> None:
    attrs = detect_resource_attributes({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, hostname="auth-api-abc", pid=1)
    assert attrs["k8s.pod.name"] == "auth-api-abc"


def test_defaults_outside_kubernetes() -> None:
    attrs = detect_resource_attributes({}, hostname="laptop", pid=4242, program="/venv/bin/uvicorn")
    assert "k8s.pod.name" not in attrs
    assert attrs["service.name"] == "unknown_service:uvicorn"
    assert attrs["service.version"] == "unknown"
    assert attrs["deployment.environment.name"] == "unknown"
    assert attrs["service.instance.id"] == "laptop-4242"


def test_uuid_instance_id_without_a_host_name() -> None:
    instance = str(detect_resource_attributes({}, hostname="", pid=1)["service.instance.id"])
    assert len(instance) == 36 and instance.count("-") == 4


def test_user_environment_wins_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **DOWNWARD_API,
        "OTEL_SERVICE_NAME": "checkout",
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=9.9,deployment.environment=prod,k8s.node.name=n%2Fx",
    }
    attrs = resource_attributes(env, hostname="h", pid=1)
    assert "service.name" not in attrs and "service.version" not in attrs and "k8s.node.name" not in attrs
    assert attrs["deployment.environment.name"] == "prod"  # the twin of the user's key
    assert "deployment.environment" not in attrs
    monkeypatch.setenv("OTEL_SERVICE_NAME", env["OTEL_SERVICE_NAME"])
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", env["OTEL_RESOURCE_ATTRIBUTES"])
    resource = Resource.create(attrs).attributes
    assert resource["service.name"] == "checkout"
    assert resource["service.version"] == "9.9"
    assert resource["deployment.environment"] == resource["deployment.environment.name"] == "prod"
    assert resource["k8s.node.name"] == "n/x"
    assert resource["k8s.pod.name"] == "auth-api-7d9f8-x2k4q"


def test_generic_container_name_variable_is_not_trusted() -> None:
    # Some runtimes set CONTAINER_NAME to unrelated values; it must not rename the service.
    attrs = detect_resource_attributes({"CONTAINER_NAME": "sandbox-xyz"}, hostname="h", pid=1, program="uvicorn")
    assert "k8s.container.name" not in attrs
    assert attrs["service.name"] == "unknown_service:uvicorn"
