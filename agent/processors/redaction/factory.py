"""Factory of the ``redaction`` processor (collector-contrib's ``redaction``, extended; beta)."""

from __future__ import annotations

from agent.component import Capabilities, Factory, Kind, Settings, Signal, Stability
from agent.processors.redaction.config import Config
from agent.processors.redaction.processor import RedactionProcessor

__all__ = ["FACTORY", "create"]


def create(settings: Settings, config: Config, signal: Signal, next_consumer: object) -> RedactionProcessor:
    """One redaction processor for one pipeline."""
    return RedactionProcessor(settings, config, signal, next_consumer)


FACTORY = Factory(
    type="redaction",
    kind=Kind.PROCESSOR,
    config_class=Config,
    create=create,
    signals=frozenset(Signal),
    capabilities=Capabilities(mutates_data=True),
    stability=Stability.BETA,
    description="Removes attributes not allowed and masks secrets (passwords, tokens, JWTs, API keys, cards, "
                "e-mails, SQL literals, URL credentials) in attributes, bodies, names, events and links.",
)
