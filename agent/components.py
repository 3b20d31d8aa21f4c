"""The component registry: one line per implemented component.

Each entry names the module whose ``FACTORY`` attribute is the component's
:class:`agent.component.Factory`. Modules are imported on first use, so the
CLI starts fast and a broken optional component cannot break the others.
"""

from __future__ import annotations

import importlib
from functools import cache

from agent.component import Factory, Kind
from agent.errors import ConfigError

__all__ = ["NOT_IMPLEMENTED", "factories", "lookup"]

_REGISTRY: dict[Kind, dict[str, str]] = {
    Kind.RECEIVER: {
        "otlp": "agent.receivers.otlp.factory",
    },
    Kind.PROCESSOR: {
        "batch": "agent.processors.batch.factory",
        "memory_limiter": "agent.processors.memory_limiter.factory",
        "resource": "agent.processors.resource.factory",
        "attributes": "agent.processors.attributes.factory",
        "tail_sampling": "agent.processors.tail_sampling.factory",
        "redaction": "agent.processors.redaction.factory",
    },
    Kind.EXPORTER: {
        "debug": "agent.exporters.debug.factory",
        "file": "agent.exporters.file.factory",
        "otlp": "agent.exporters.otlp.factory",
        "otlphttp": "agent.exporters.otlphttp.factory",
        "jaeger": "agent.exporters.jaeger.factory",
        "prometheus": "agent.exporters.prometheus.factory",
        "prometheusremotewrite": "agent.exporters.prometheusremotewrite.factory",
        "loki": "agent.exporters.loki.factory",
    },
    Kind.CONNECTOR: {
        "forward": "agent.connectors.forward.factory",
        "span_metrics": "agent.connectors.span_metrics.factory",
        "span_detectors": "agent.connectors.span_detectors.factory",
    },
    Kind.EXTENSION: {
        "health_check": "agent.extensions.health_check.factory",
        "file_storage": "agent.extensions.file_storage.factory",
    },
}

#: Collector components otel-sidecar does not implement: a config naming one gets
#: "not implemented by otel-sidecar" instead of "unknown type".
NOT_IMPLEMENTED: dict[Kind, frozenset[str]] = {
    Kind.RECEIVER: frozenset({
        "prometheus", "jaeger", "zipkin", "kafka", "filelog", "hostmetrics", "k8s_cluster", "kubeletstats",
        "fluentforward", "syslog", "statsd", "carbon", "collectd", "opencensus", "journald", "redis",
        "postgresql", "mysql", "httpcheck", "docker_stats", "sqlquery", "otlpjsonfile", "loki", "k8sobjects",
        "k8s_events", "tcplog", "udplog", "awsxray", "datadog", "splunk_hec", "influxdb", "nop", "receiver_creator",
    }),
    Kind.PROCESSOR: frozenset({
        "filter", "transform", "probabilistic_sampler", "k8sattributes", "resourcedetection",
        "groupbyattrs", "groupbytrace", "routing", "metricstransform", "cumulativetodelta",
        "cumulative_to_delta", "deltatocumulative", "delta_to_cumulative", "deltatorate", "span",
        "logdedup", "interval", "metricsgeneration", "schema", "sumologic", "geoip", "isolationforest",
        "memorylimiter", "unroll", "coralogix", "logstransform", "experimental_metricsgeneration",
    }),
    Kind.EXPORTER: frozenset({
        "kafka", "zipkin", "elasticsearch", "opensearch", "clickhouse", "awsxray", "awsemf", "datadog",
        "splunk_hec", "googlecloud", "azuremonitor", "influxdb", "loadbalancing", "sapm", "signalfx",
        "otelarrow", "carbon", "logging", "nop", "awss3", "awskinesis", "coralogix", "sentry",
        "tencentcloud_logservice", "honeycombmarker", "syslog", "pulsar", "rabbitmq", "googlemanagedprometheus",
    }),
    Kind.CONNECTOR: frozenset({
        "count", "servicegraph", "routing", "exceptions", "failover", "roundrobin", "sum",
        "grafanacloud", "datadog", "signaltometrics", "otlpjson",
    }),
    Kind.EXTENSION: frozenset({
        "pprof", "zpages", "healthcheckv2", "bearertokenauth", "basicauth", "oauth2client",
        "oidc", "headers_setter", "memory_limiter", "db_storage", "k8s_observer", "docker_observer",
        "host_observer", "jaegerremotesampling", "sigv4auth", "opamp", "ack", "cgroupruntime",
    }),
}


@cache
def _load(module: str) -> Factory:
    mod = importlib.import_module(module)
    factory: Factory = mod.FACTORY
    return factory


@cache
def factories(kind: Kind) -> dict[str, Factory]:
    """Implemented factories of ``kind`` by type name, aliases included."""
    out: dict[str, Factory] = {}
    for name, module in _REGISTRY[kind].items():
        f = _load(module)
        if f.type != name or f.kind is not kind:
            raise RuntimeError(f"registry entry {kind}:{name} loads factory {f.kind}:{f.type}")
        out[name] = f
        for alias in f.aliases:
            out[alias] = f
    return out


def lookup(kind: Kind, type_name: str, path: str = "") -> Factory:
    """The factory for ``type_name``.

    Raises:
        ConfigError: unknown, or known to the collector but not implemented here.
    """
    found = factories(kind).get(type_name)
    if found is not None:
        return found
    if type_name in NOT_IMPLEMENTED[kind]:
        raise ConfigError(path, f"{kind.value} type {type_name!r} is an OpenTelemetry Collector component "
                                f"not implemented by otel-sidecar; implemented {kind.value}s: "
                                f"{', '.join(sorted(factories(kind)))}")
    raise ConfigError(path, f"unknown {kind.value} type {type_name!r}; valid types: "
                            f"{', '.join(sorted(factories(kind))) or '(none)'}")
