"""Command line: ``otel-sidecar [run] [--config FILE]... [--set key=value]...``,
``otel-sidecar validate --config FILE...``, ``otel-sidecar components``,
``otel-sidecar --version``.

Exit codes: 0 success; 1 invalid configuration or a component failed to
start; 2 bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from agent import __version__
from agent.component import Kind
from agent.config.loader import load
from agent.config.model import Config, build
from agent.errors import ConfigError, ConfigErrors

__all__ = ["main"]


def _common(default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", action="append", default=default, metavar="FILE",
                        help="collector-format YAML; repeat to deep-merge in order "
                             "(also yaml:<inline> and env:VAR). Default: the embedded config.")
    common.add_argument("--set", action="append", default=default, metavar="KEY=VALUE",
                        help="override one value, e.g. --set processors.batch.timeout=1s")
    return common


def _parser() -> argparse.ArgumentParser:
    # Sub-commands take the same options; SUPPRESS keeps values given before the
    # sub-command (``otel-sidecar --config a.yaml validate``).
    common = _common(argparse.SUPPRESS)
    p = argparse.ArgumentParser(prog="otel-sidecar", parents=[_common(None)],
                                description="OpenTelemetry-native sidecar collector agent.")
    p.add_argument("--version", action="version", version=f"otel-sidecar {__version__}")
    p.add_argument("--data-dir", default=os.environ.get("OTEL_SIDECAR_DATA_DIR", "./data"),
                   help="directory for files written by default (env OTEL_SIDECAR_DATA_DIR)")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", parents=[common], help="run the sidecar (the default)")
    sub.add_parser("validate", parents=[common], help="check the configuration and exit")
    sub.add_parser("components", help="list implemented component types by kind")
    return p


def _load(files: Sequence[str], sets: Sequence[str]) -> Config:
    return build(load(files, sets))


def _print_errors(err: ConfigError) -> None:
    errors = err.errors if isinstance(err, ConfigErrors) else [err]
    print(f"otel-sidecar: invalid configuration ({len(errors)} problem{'s' * (len(errors) != 1)}):",
          file=sys.stderr)
    for e in errors:
        print(f"  {e}", file=sys.stderr)


def _components() -> int:
    from agent import components

    for kind in Kind:
        fs = components.factories(kind)
        print(f"{kind.section}:")
        seen = set()
        for name in sorted(fs):
            f = fs[name]
            if f.type in seen:
                continue
            seen.add(f.type)
            aliases = f" (alias: {', '.join(f.aliases)})" if f.aliases else ""
            sigs = ", ".join(s.value for s in sorted(f.signals)) if f.signals else ""
            pairs = ", ".join(f"{a}->{b}" for a, b in sorted(f.connects)) if f.connects else ""
            detail = sigs or pairs
            print(f"  {f.type}{aliases}  [{f.stability}]" + (f"  {detail}" if detail else ""))
    return 0


def _run(config: Config, data_dir: str) -> int:
    from agent.service import Service
    from agent.telemetry.logs import setup_logging

    setup_logging(config.telemetry.logs.level, config.telemetry.logs.encoding)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(Service(config, data_dir=data_dir).run())
    except RuntimeError as e:  # bind failures and other start errors, already explained
        print(f"otel-sidecar: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "components":
        return _components()
    try:
        config = _load(args.config or (), args.set or ())
    except ConfigError as e:
        _print_errors(e)
        return 1
    if args.command == "validate":
        print("configuration is valid")
        return 0
    return _run(config, args.data_dir)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
