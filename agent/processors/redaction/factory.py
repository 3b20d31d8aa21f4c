"""Factory of the ``redaction`` processor (collector-contrib's ``redaction``, extended; beta)."""

from __future__ import annotations

from agent.processors.base import processor_factory
from agent.processors.redaction.config import Config
from agent.processors.redaction.processor import RedactionProcessor

__all__ = ["FACTORY"]

FACTORY = processor_factory(
    "redaction", Config, RedactionProcessor,
    description="Removes attributes not allowed and masks secrets (passwords, tokens, JWTs, API keys, cards, "
                "e-mails, SQL literals, URL credentials) in attributes, bodies, names, events and links.",
)
