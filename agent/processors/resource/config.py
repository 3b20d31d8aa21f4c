"""Configuration of the ``resource`` processor (the collector's keys)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.processors.attributes.actions import ActionConfig

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """``processors.resource``.

    Attributes:
        attributes: ordered actions on resource attributes (required,
            non-empty). The key is ``attributes``, as in the collector's
            resource processor (the ``attributes`` processor calls it
            ``actions``); the actions are the same, see
            :mod:`agent.processors.attributes.actions`.
    """

    attributes: list[ActionConfig] = field(default_factory=list)

    def validate(self) -> list[tuple[str, str]]:
        """Cross-field checks; ``(subpath, message)`` pairs for the decoder."""
        if not self.attributes:
            return [("attributes", "required: at least one action")]
        return []
