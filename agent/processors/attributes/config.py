"""Configuration of the ``attributes`` processor (the collector's keys)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.component import Signal
from agent.processors.attributes.actions import ActionConfig
from agent.processors.attributes.matching import MatchProperties

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """``processors.attributes``.

    Attributes:
        actions: ordered attribute actions (required, non-empty); see
            :mod:`agent.processors.attributes.actions`.
        include: only items matching this block are processed.
        exclude: items matching this block are not processed (checked after include).
    """

    actions: list[ActionConfig] = field(default_factory=list)
    include: MatchProperties | None = None
    exclude: MatchProperties | None = None

    def validate(self) -> list[tuple[str, str]]:
        """Cross-field checks; ``(subpath, message)`` pairs for the decoder."""
        if not self.actions:
            return [("actions", "required: at least one action")]
        return []

    def problems_for(self, signal: Signal) -> list[tuple[str, str]]:
        """Problems of ``include``/``exclude`` for a pipeline of ``signal`` (checked at creation)."""
        problems: list[tuple[str, str]] = []
        for name in ("include", "exclude"):
            block: MatchProperties | None = getattr(self, name)
            if block is not None:
                problems.extend((f"{name}.{sub}" if sub else name, msg) for sub, msg in block.problems_for(signal))
        return problems
