"""Every config shipped under collector-config/ validates with our loader, as
`otel-sidecar validate` would check it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.loader import default_config_text, load
from agent.config.model import build

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "collector-config").rglob("*.yaml") if p.is_file())


def test_there_are_configs() -> None:
    assert {p.name for p in CONFIGS} >= {"default.yaml", "jaeger-v2-otlp.yaml", "loki-push.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_validates(path: Path) -> None:
    cfg = build(load([str(path)], env={}))
    assert cfg.pipelines


def test_default_file_is_the_embedded_config() -> None:
    assert (ROOT / "collector-config" / "default.yaml").read_text() == default_config_text()
