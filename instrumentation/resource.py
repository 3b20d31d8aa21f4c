"""Resource attributes for the instrumented service: identity, environment and Kubernetes placement.

User settings always win: any key given in ``OTEL_RESOURCE_ATTRIBUTES`` (or ``service.name`` via
``OTEL_SERVICE_NAME``) is left to the SDK, which reads those variables itself. For the other keys:

=========================  =====================================================================
attribute                  source (first set wins)
=========================  =====================================================================
``service.name``           ``K8S_CONTAINER_NAME``, else
                           ``unknown_service:<program>`` (``sys.argv[0]``'s base name, e.g. ``uvicorn``)
``service.version``        ``SERVICE_VERSION``, ``APP_VERSION``, else ``unknown``
``deployment.environment.name``  ``DEPLOYMENT_ENVIRONMENT``, ``ENVIRONMENT``, else ``unknown``; also
                           written as the older ``deployment.environment`` for backends that use it
``service.instance.id``    ``<pod name or host name>-<pid>`` (unique per process, so several
                           uvicorn workers of one pod never share one), a UUID4 without host name
``k8s.pod.name``           ``K8S_POD_NAME``, ``POD_NAME``, ``KUBERNETES_POD_NAME``; inside Kubernetes
                           (``KUBERNETES_SERVICE_HOST`` set) the host name, which is the pod name
``k8s.pod.uid``            ``K8S_POD_UID``, ``POD_UID``
``k8s.namespace.name``     ``K8S_NAMESPACE_NAME``, ``K8S_NAMESPACE``, ``POD_NAMESPACE``, ``KUBERNETES_NAMESPACE``
``k8s.node.name``          ``K8S_NODE_NAME``, ``NODE_NAME``, ``KUBERNETES_NODE_NAME``
``k8s.container.name``     ``K8S_CONTAINER_NAME`` (not the generic ``CONTAINER_NAME``, which some
                           runtimes set to unrelated values)
``host.name``              the host name
``process.pid``            the process id
``telemetry.distro.name``  ``otel-sidecar``
``telemetry.distro.version``  the installed ``otel-sidecar`` version
=========================  =====================================================================

The Kubernetes variables come from the Downward API::

    env:
      - name: K8S_POD_NAME
        valueFrom: {fieldRef: {fieldPath: metadata.name}}
      - name: K8S_POD_UID
        valueFrom: {fieldRef: {fieldPath: metadata.uid}}
      - name: K8S_NAMESPACE
        valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
      - name: K8S_NODE_NAME
        valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
      - name: K8S_CONTAINER_NAME
        value: auth-api                      # the container's name; no fieldRef exists for it
      - name: SERVICE_VERSION
        valueFrom: {fieldRef: {fieldPath: "metadata.labels['app.kubernetes.io/version']"}}
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

__all__ = [
    "ENV_SOURCES",
    "detect_resource_attributes",
    "resource_attributes",
    "user_resource_attributes",
    "user_resource_keys",
]

#: Environment variables read for each attribute, in order of precedence.
ENV_SOURCES: Final[Mapping[str, tuple[str, ...]]] = {
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME", "KUBERNETES_POD_NAME"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID"),
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "K8S_NAMESPACE", "POD_NAMESPACE", "KUBERNETES_NAMESPACE"),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME", "KUBERNETES_NODE_NAME"),
    "k8s.container.name": ("K8S_CONTAINER_NAME",),
    "service.version": ("SERVICE_VERSION", "APP_VERSION"),
    "deployment.environment.name": ("DEPLOYMENT_ENVIRONMENT", "ENVIRONMENT"),
}

DISTRO_NAME: Final = "otel-sidecar"


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def user_resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the resource attributes the user set through ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``.

    Parsed like the SDK does: comma-separated ``key=value`` pairs, percent-decoded;
    ``OTEL_SERVICE_NAME`` wins over a ``service.name`` pair.

    Args:
        environ: The environment to read.
    """
    attrs: dict[str, str] = {}
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip() and value.strip():
            attrs[unquote(key.strip())] = unquote(value.strip())
    service_name = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        attrs["service.name"] = service_name
    return attrs


def user_resource_keys(environ: Mapping[str, str]) -> set[str]:
    """Return the keys of :func:`user_resource_attributes`.

    Args:
        environ: The environment to read.
    """
    return set(user_resource_attributes(environ))


def detect_resource_attributes(
    environ: Mapping[str, str] | None = None,
    *,
    hostname: str | None = None,
    pid: int | None = None,
    program: str | None = None,
) -> dict[str, str | int]:
    """Detect the resource attributes described in the module docstring (ignoring user overrides).

    Args:
        environ: The environment to read; ``os.environ`` when ``None``.
        hostname: The host name; ``socket.gethostname()`` when ``None``.
        pid: The process id; ``os.getpid()`` when ``None``.
        program: The program name for the default service name; ``sys.argv[0]`` when ``None``.

    Returns:
        The attributes.
    """
    env = os.environ if environ is None else environ
    host = socket.gethostname() if hostname is None else hostname
    process_id = os.getpid() if pid is None else pid
    attrs: dict[str, str | int] = {}
    for key, names in ENV_SOURCES.items():
        value = _first(env, names)
        if value is not None:
            attrs[key] = value
    if "k8s.pod.name" not in attrs and env.get("KUBERNETES_SERVICE_HOST") and host:
        attrs["k8s.pod.name"] = host

    container = attrs.get("k8s.container.name")
    if container:
        attrs["service.name"] = container
    else:
        argv0 = program if program is not None else (sys.argv[0] if sys.argv and sys.argv[0] else "python")
        attrs["service.name"] = f"unknown_service:{os.path.basename(argv0) or 'python'}"
    attrs.setdefault("service.version", "unknown")
    environment = str(attrs.setdefault("deployment.environment.name", "unknown"))
    attrs["deployment.environment"] = environment

    instance_host = attrs.get("k8s.pod.name") or host
    attrs["service.instance.id"] = f"{instance_host}-{process_id}" if instance_host else str(uuid.uuid4())
    if host:
        attrs["host.name"] = host
    attrs["process.pid"] = process_id
    attrs["telemetry.distro.name"] = DISTRO_NAME
    attrs["telemetry.distro.version"] = _distro_version()
    return attrs


def resource_attributes(environ: Mapping[str, str] | None = None, **detect_kwargs: object) -> dict[str, str | int]:
    """Return the attributes for ``Resource.create``: detected ones minus the keys the user set.

    ``Resource.create(attributes)`` lets its argument override ``OTEL_RESOURCE_ATTRIBUTES`` and
    ``OTEL_SERVICE_NAME``; dropping those keys here keeps the user's values.

    Args:
        environ: The environment to read; ``os.environ`` when ``None``.
        **detect_kwargs: Passed to :func:`detect_resource_attributes` (``hostname``, ``pid``, ``program``).

    Returns:
        The attributes to pass as ``resource_attributes``.
    """
    env = os.environ if environ is None else environ
    detected = detect_resource_attributes(env, **detect_kwargs)  # type: ignore[arg-type]
    user = user_resource_attributes(env)
    # The two deployment-environment keys are one setting: a user value for either sets both.
    for key, twin in (
        ("deployment.environment.name", "deployment.environment"),
        ("deployment.environment", "deployment.environment.name"),
    ):
        if key in user and twin not in user:
            detected[twin] = user[key]
    return {key: value for key, value in detected.items() if key not in user}


def _distro_version() -> str:
    from instrumentation import __version__  # avoid an import cycle

    return __version__
