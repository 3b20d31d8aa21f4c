"""Loud warnings when an installed library is outside the range its instrumentor supports.

Every OpenTelemetry instrumentor package declares the library versions it instruments as
requirements with the ``instruments`` extra (or ``instruments-any``: any one of them suffices),
for example ``sqlalchemy<2.1.0,>=1.0.0; extra == "instruments"`` for
``opentelemetry-instrumentation-sqlalchemy`` 0.66b*. When the installed library is outside that
range, ``opentelemetry-instrument`` skips the instrumentor and the application runs without, say,
database spans; easy to miss in a busy startup log. :func:`warn_unsupported_instrumentations`
checks every installed ``opentelemetry_instrumentor`` entry point (nothing is hard-coded) and
reports each mismatch at ``WARNING`` level *and* on stderr. A library that is not installed at
all is normal (instrumentors for unused libraries) and not reported.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from packaging.requirements import InvalidRequirement, Requirement

__all__ = [
    "UnsupportedInstrumentation",
    "find_unsupported_instrumentations",
    "warn_unsupported_instrumentations",
]

_logger = logging.getLogger(__name__)

_INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"
_warned = False


@dataclass(frozen=True)
class UnsupportedInstrumentation:
    """An instrumentor whose library is installed at a version it does not instrument.

    Attributes:
        instrumentor: The entry point's name (``sqlalchemy``).
        distribution: The instrumentor's distribution and version (``opentelemetry-instrumentation-sqlalchemy 0.66b2``).
        required: The declared requirement(s) (``sqlalchemy<2.1.0,>=1.0.0``).
        installed: The installed library version(s) (``sqlalchemy 2.1.0``).
    """

    instrumentor: str
    distribution: str
    required: str
    installed: str

    def message(self) -> str:
        """Return the one-line warning for this mismatch."""
        return (
            f"{self.distribution} (instrumentor '{self.instrumentor}') supports {self.required}, "
            f"but {self.installed} is installed: it instruments NOTHING. "
            f"Install a supported version of the library (or a newer instrumentor)."
        )


def _installed_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def _instruments_requirements(dist: importlib_metadata.Distribution) -> tuple[list[Requirement], list[Requirement]]:
    required: list[Requirement] = []
    required_any: list[Requirement] = []
    for raw in dist.requires or ():
        if "instruments" not in raw:
            continue
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            _logger.debug("Unparsable requirement %r of %s", raw, dist.metadata["Name"])
            continue
        if req.marker is None:
            continue
        if req.marker.evaluate({"extra": "instruments"}):
            required.append(req)
        elif req.marker.evaluate({"extra": "instruments-any"}):
            required_any.append(req)
    return required, required_any


def _check(
    dist: importlib_metadata.Distribution, version: Callable[[str], str | None]
) -> tuple[list[str], list[str]] | None:
    """Return (required, installed) descriptions of a conflict, or ``None``."""
    required, required_any = _instruments_requirements(dist)
    for req in required:
        found = version(req.name)
        if found is not None and not req.specifier.contains(found):
            return [f"{req.name}{req.specifier}"], [f"{req.name} {found}"]
    if required_any:
        installed: list[str] = []
        for req in required_any:
            found = version(req.name)
            if found is None:
                continue
            if req.specifier.contains(found):
                return None
            installed.append(f"{req.name} {found}")
        if installed:
            return [f"{req.name}{req.specifier}" for req in required_any], installed
    return None


def find_unsupported_instrumentations(
    entry_points: Iterable[importlib_metadata.EntryPoint] | None = None,
    version: Callable[[str], str | None] | None = None,
) -> list[UnsupportedInstrumentation]:
    """List the installed instrumentors whose library is installed at an unsupported version.

    Args:
        entry_points: The ``opentelemetry_instrumentor`` entry points to check; all installed
            ones when ``None``.
        version: Returns the installed version of a distribution or ``None``;
            ``importlib.metadata.version`` when ``None``.

    Returns:
        One item per mismatching instrumentor, in entry-point order.
    """
    eps = importlib_metadata.entry_points(group=_INSTRUMENTOR_GROUP) if entry_points is None else entry_points
    lookup = _installed_version if version is None else version
    found: list[UnsupportedInstrumentation] = []
    seen: set[str] = set()
    for ep in eps:
        dist = ep.dist
        if dist is None:
            continue
        key = f"{ep.name}:{dist.metadata['Name']}"
        if key in seen:
            continue
        seen.add(key)
        conflict = _check(dist, lookup)
        if conflict is not None:
            required, installed = conflict
            found.append(
                UnsupportedInstrumentation(
                    instrumentor=ep.name,
                    distribution=f"{dist.metadata['Name']} {dist.version}",
                    required=" or ".join(required),
                    installed=", ".join(installed),
                )
            )
    return found


def warn_unsupported_instrumentations(
    *,
    stream: IO[str] | None = None,
    entry_points: Iterable[importlib_metadata.EntryPoint] | None = None,
    version: Callable[[str], str | None] | None = None,
    once: bool = True,
) -> list[UnsupportedInstrumentation]:
    """Warn (``logging.WARNING`` and stderr) about every unsupported library version.

    Args:
        stream: Where to print the banner; ``sys.stderr`` when ``None``.
        entry_points: See :func:`find_unsupported_instrumentations`.
        version: See :func:`find_unsupported_instrumentations`.
        once: Do nothing if a previous call with ``once=True`` already ran in this process.

    Returns:
        The mismatches found (empty when skipped by ``once``).
    """
    global _warned
    if once and _warned:
        return []
    if once:
        _warned = True
    try:
        problems = find_unsupported_instrumentations(entry_points, version)
    except Exception:  # a broken distribution must not stop the application
        _logger.exception("Could not check instrumentor version ranges")
        return []
    out = sys.stderr if stream is None else stream
    for problem in problems:
        text = problem.message()
        _logger.warning("%s", text)
        print(f"otel-sidecar: WARNING: {text}", file=out, flush=True)
    return problems
