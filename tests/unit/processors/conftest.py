"""Fixtures for processor tests."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from agent.component import ComponentID, Kind, Settings
from agent.telemetry.metrics import SelfMetrics


@pytest.fixture
def proc_settings(telemetry: SelfMetrics) -> Callable[..., Settings]:
    """``proc_settings("batch/x", pipeline="traces")``: processor settings on the test's registry."""

    def make(cid: str = "batch", pipeline: str = "traces", logger: logging.Logger | None = None) -> Settings:
        pid = ComponentID.parse(cid)
        return Settings(id=pid, kind=Kind.PROCESSOR, telemetry=telemetry,
                        logger=logger or logging.getLogger(f"test.processor.{pid}"), extra={"pipeline": pipeline})

    return make
