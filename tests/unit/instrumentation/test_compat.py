"""The loud warning for libraries outside the range their instrumentor supports."""

from __future__ import annotations

import importlib.metadata
import io
import logging
from pathlib import Path

import pytest

from instrumentation.compat import find_unsupported_instrumentations, warn_unsupported_instrumentations


def sqlalchemy_2_1(name: str) -> str | None:
    """Installed versions as they would be with SQLAlchemy 2.1 (everything else real)."""
    if name.lower() == "sqlalchemy":
        return "2.1.0"
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_nothing_to_report_with_the_pinned_environment() -> None:
    assert find_unsupported_instrumentations() == []


def test_simulated_sqlalchemy_2_1_is_reported() -> None:
    [problem] = find_unsupported_instrumentations(version=sqlalchemy_2_1)
    assert problem.instrumentor == "sqlalchemy"
    assert problem.distribution.startswith("opentelemetry-instrumentation-sqlalchemy ")
    assert problem.required == "sqlalchemy<2.1.0,>=1.0.0"
    assert problem.installed == "sqlalchemy 2.1.0"


def test_warning_is_logged_and_printed_to_stderr(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="instrumentation.compat"):
        problems = warn_unsupported_instrumentations(stream=stream, version=sqlalchemy_2_1, once=False)
    assert len(problems) == 1
    [record] = [r for r in caplog.records if r.name == "instrumentation.compat"]
    assert record.levelno == logging.WARNING
    assert "sqlalchemy 2.1.0 is installed" in record.getMessage() and "NOTHING" in record.getMessage()
    printed = stream.getvalue()
    assert printed.startswith("otel-sidecar: WARNING: opentelemetry-instrumentation-sqlalchemy")
    assert "sqlalchemy<2.1.0,>=1.0.0" in printed


def test_once_means_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("instrumentation.compat._warned", False)
    stream = io.StringIO()
    assert warn_unsupported_instrumentations(stream=stream, version=sqlalchemy_2_1)
    assert warn_unsupported_instrumentations(stream=stream, version=sqlalchemy_2_1) == []
    assert stream.getvalue().count("WARNING") == 1


def _fake_instrumentor(site: Path, name: str, requires: list[str]) -> None:
    dist_info = site / f"fake_instrumentation_{name}-1.0.dist-info"
    dist_info.mkdir()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: fake-instrumentation-{name}",
        "Version: 1.0",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n")
    (dist_info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{name} = fake_mod:Instrumentor\n")


def test_generic_over_every_installed_instrumentor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A made-up instrumentor distribution is checked like the real ones (nothing is hard-coded)."""
    _fake_instrumentor(tmp_path, "fakepy", ['packaging<1.0; extra == "instruments"'])
    _fake_instrumentor(tmp_path, "fakeok", ['packaging>=1; extra == "instruments"'])
    _fake_instrumentor(tmp_path, "fakemissing", ['not-installed-lib>=1; extra == "instruments"'])
    _fake_instrumentor(
        tmp_path,
        "fakeany",
        ['packaging<1.0; extra == "instruments-any"', 'not-installed-lib>=1; extra == "instruments-any"'],
    )
    _fake_instrumentor(
        tmp_path,
        "fakeanyok",
        ['packaging<1.0; extra == "instruments-any"', 'packaging>=1; extra == "instruments-any"'],
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = {p.instrumentor: p for p in find_unsupported_instrumentations()}
    assert set(problems) == {"fakepy", "fakeany"}
    packaging_version = importlib.metadata.version("packaging")
    assert problems["fakepy"].required == "packaging<1.0"
    assert problems["fakepy"].installed == f"packaging {packaging_version}"
    assert problems["fakeany"].required == "packaging<1.0 or not-installed-lib>=1"
