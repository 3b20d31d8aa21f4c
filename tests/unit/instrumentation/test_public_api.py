"""The public API of the instrumentation package, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import instrumentation

ROOT = Path(__file__).resolve().parents[3]


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(instrumentation).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert set(instrumentation.__all__) == public | {"__version__"}


def test_import_does_not_pull_in_fastapi_or_sqlalchemy() -> None:
    code = (
        "import sys, instrumentation, instrumentation.distro, instrumentation.configurator;"
        "print(sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
