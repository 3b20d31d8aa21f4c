"""Shared fixtures: free loopback ports, a fresh self-metrics registry, settings."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from agent.component import ComponentID, Kind, Settings
from agent.telemetry.metrics import SelfMetrics
from tests import ports


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it to get a currently free TCP port on 127.0.0.1 (see tests/ports.py)."""
    return ports.free_port


@pytest.fixture
def telemetry() -> SelfMetrics:
    return SelfMetrics(process_metrics=False)


@pytest.fixture
def make_settings(telemetry: SelfMetrics) -> Callable[..., Settings]:
    def make(cid: str = "test", kind: Kind = Kind.EXPORTER, **kw: object) -> Settings:
        return Settings(id=ComponentID.parse(cid), kind=kind, telemetry=telemetry,
                        logger=logging.getLogger(f"test.{cid}"), **kw)  # type: ignore[arg-type]
    return make
