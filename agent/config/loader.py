"""Load collector-format YAML: files deep-merged in order, ``--set`` overrides,
and ``${...}`` expansion.

Expansion follows the collector's confmap rules:

* ``${env:NAME}``, bare ``${NAME}``, ``${env:NAME:-default}``; ``${file:path}``
  and ``${yaml:inline}`` also work. ``$$`` is a literal ``$``; bare ``$NAME`` is
  left alone.
* A scalar that is exactly one reference keeps the YAML type of the expanded
  text (``${env:PORT}`` with PORT=4317 is an int); an embedded reference is
  substituted as text.
* An unset variable without a default expands to an empty value.
* At most 100 references per scalar (no recursion into the result).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_NAME", "deep_merge", "default_config_text", "expand", "load", "parse_set"]

DEFAULT_CONFIG_NAME = "default.yaml"

_REF = re.compile(r"\$\$|\$\{([^{}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_REFS = 100


def default_config_text() -> str:
    """The embedded default config (``agent/default.yaml``)."""
    return resources.files("agent").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def _resolve(ref: str, path: str, env: Mapping[str, str]) -> str:
    scheme, sep, rest = ref.partition(":")
    if not sep:
        scheme, rest = "env", ref
    if scheme == "env":
        name, dsep, default = rest.partition(":-")
        name = name.strip()
        if not _ENV_NAME.match(name):
            raise ConfigError(path, f"invalid environment variable name in ${{{ref}}}")
        val = env.get(name)
        if val is None or (val == "" and dsep):
            return default if dsep else ""
        return val
    if scheme == "file":
        try:
            return Path(rest).read_text(encoding="utf-8").rstrip("\n")
        except OSError as e:
            raise ConfigError(path, f"cannot read ${{file:{rest}}}: {e.strerror}") from None
    if scheme == "yaml":
        return rest
    if scheme in ("http", "https"):
        raise ConfigError(path, f"${{{scheme}:...}} references are not supported by otel-sidecar")
    if _ENV_NAME.match(scheme) and rest.startswith("-"):
        # ${NAME:-default} without the env: scheme
        return _resolve("env:" + ref, path, env)
    raise ConfigError(path, f"unknown reference scheme {scheme!r} in ${{{ref}}}")


def _expand_str(s: str, path: str, env: Mapping[str, str]) -> Any:
    if "$" not in s:
        return s
    matches = list(_REF.finditer(s))
    if len(matches) > _MAX_REFS:
        raise ConfigError(path, f"more than {_MAX_REFS} references")
    if len(matches) == 1 and matches[0].group(0) != "$$" and matches[0].span() == (0, len(s)):
        text = _resolve(matches[0].group(1), path, env)
        try:
            value = yaml.safe_load(text) if text != "" else None
        except yaml.YAMLError:
            return text
        # Keep scalars typed; keep structured values only for ${yaml:}/${file:}.
        if isinstance(value, dict | list) and not matches[0].group(1).startswith(("yaml:", "file:")):
            return text
        return text if value is None and text != "" else value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return _resolve(m.group(1), path, env)

    return _REF.sub(sub, s)


def expand(node: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Expand references in every string scalar (and mapping key) of ``node``."""
    env = os.environ if env is None else env
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = _expand_str(k, path, env) if isinstance(k, str) else k
            sub = f"{path}.{key}" if path else str(key)
            out[key] = expand(v, env, sub)
        return out
    if isinstance(node, list):
        return [expand(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        return _expand_str(node, path, env)
    return node


def deep_merge(base: Any, over: Any) -> Any:
    """Maps merge recursively, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def parse_set(expr: str) -> dict[str, Any]:
    """``a.b.c=value`` (or the collector's ``a::b::c=value``) as a nested mapping."""
    key, sep, raw = expr.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", f"expected key=value, got {expr!r}")
    parts = key.strip().split("::") if "::" in key else key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError("--set", f"empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node: dict[str, Any] = {parts[-1]: value}
    for p in reversed(parts[:-1]):
        node = {p: node}
    return node


def _load_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(source, f"invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, f"top level must be a mapping, got {type(data).__name__}")
    return data


def load(
    files: Sequence[str] = (),
    sets: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merged, expanded raw config. No files means the embedded default config.

    A file argument may also be ``yaml:<inline yaml>`` or ``env:NAME``.

    Raises:
        ConfigError: a file cannot be read or parsed, or a reference is invalid.
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    if not files:
        merged = _load_yaml(default_config_text(), "<default config>")
    for f in files:
        if f.startswith("yaml:"):
            text, source = f[5:], "yaml:"
        elif f.startswith("env:"):
            text, source = env.get(f[4:], ""), f
        else:
            try:
                text = Path(f.removeprefix("file:")).read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f, f"cannot read config file: {e.strerror}") from None
            source = f
        merged = deep_merge(merged, _load_yaml(text, source))
    merged = expand(merged, env)
    for s in sets:
        merged = deep_merge(merged, parse_set(s))
    return merged
