"""Factory of the ``otlp`` receiver (stable; traces, metrics and logs).

``create(settings, config, consumers)`` returns one :class:`OTLPReceiver` per
receiver id; it serves exactly the signals present in ``consumers`` (each
consumer has the matching ``consume_<signal>`` method) and answers the others
with gRPC UNIMPLEMENTED / HTTP 404.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.component import Factory, Kind, Settings, Signal, Stability
from agent.receivers.otlp.config import Config
from agent.receivers.otlp.receiver import OTLPReceiver

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, consumers: Mapping[Signal, object]) -> OTLPReceiver:
    """Build the receiver; nothing is bound until ``start``.

    Raises:
        TypeError: a consumer lacks the ``consume_<signal>`` method of its signal.
    """
    return OTLPReceiver(settings, config, consumers)


FACTORY = Factory(
    type="otlp",
    kind=Kind.RECEIVER,
    config_class=Config,
    create=create,
    signals=frozenset(Signal),
    stability=Stability.STABLE,
    description="OTLP over gRPC and HTTP (protobuf and JSON)",
)
