"""Configuration of the ``redaction`` processor.

The collector-contrib keys, with the collector's semantics::

    processors:
      redaction:
        allow_all_keys: false        # true: keep every key (only values are checked)
        allowed_keys: []             # FAILS CLOSED: empty + allow_all_keys false removes every attribute
        ignored_keys: []             # kept untouched (no key or value rule applies)
        ignored_key_patterns: []     # regexes, same as ignored_keys
        blocked_key_patterns: []     # regexes on keys: the whole value is masked
        blocked_values: []           # regexes on values: each match is masked
        allowed_values: []           # regexes: a value matching one is left untouched (wins over blocked_values)
        redact_all_types: false      # also check non-string values (as their string form)
        hash_function: ""            # "" / none: "****"; md5 | sha1 | sha3 (SHA3-256) | hmac-sha256 | hmac-sha512
        hmac_key: ""                 # for the hmac-* functions (>= 32 / 64 bytes); never logged
        summary: silent              # debug: redaction.* counts and key names; info: counts; silent: none
        db_sanitizer: {sql: {enabled: false, attributes: [db.statement, db.query.text]}}

otel-sidecar extensions (see :mod:`agent.processors.redaction.presets` for what each detects)::

        presets:
          enabled: true              # master switch
          passwords: true            # secret keys (password, token, authorization...) and key=value in text
          bearer_tokens: true
          jwt: true
          api_keys: true
          credit_cards: true         # Luhn-valid 13-19 digit numbers only
          emails: true
          sql_literals: true         # literals in db.statement / db.query.text -> ?
          url_credentials: true      # user:password@ and secret query parameters in url.full / url.query ...
          extra_secret_keys: []      # more key words treated like "password"

The presets are on by default: a collector config that uses ``redaction``
gets the collector's behaviour plus these detectors (turn them off with
``presets: {enabled: false}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Config", "DBSanitizerConfig", "HashFunction", "PresetsConfig", "SQLSanitizerConfig",
           "URLSanitizerConfig"]

Problems = list[tuple[str, str]]
HashFunction = Literal["", "none", "md5", "sha1", "sha3", "hmac-sha256", "hmac-sha512"]


@dataclass(frozen=True, slots=True)
class PresetsConfig:
    """``presets``: built-in detectors (otel-sidecar extension), each can be turned off."""

    enabled: bool = True
    passwords: bool = True
    bearer_tokens: bool = True
    jwt: bool = True
    api_keys: bool = True
    credit_cards: bool = True
    emails: bool = True
    sql_literals: bool = True
    url_credentials: bool = True
    extra_secret_keys: tuple[str, ...] = ()

    def on(self, name: str) -> bool:
        """True when preset ``name`` runs."""
        return self.enabled and bool(getattr(self, name))


@dataclass(frozen=True, slots=True)
class SQLSanitizerConfig:
    """``db_sanitizer.sql``: replace literals in SQL statements by ``?``."""

    enabled: bool = False
    attributes: tuple[str, ...] = ("db.statement", "db.query.text")


@dataclass(frozen=True, slots=True)
class _OtherDBConfig:
    enabled: bool = False
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DBSanitizerConfig:
    """``db_sanitizer``: only ``sql`` is implemented by otel-sidecar."""

    sql: SQLSanitizerConfig = field(default_factory=SQLSanitizerConfig)
    redis: _OtherDBConfig = field(default_factory=_OtherDBConfig)
    memcached: _OtherDBConfig = field(default_factory=_OtherDBConfig)
    mongo: _OtherDBConfig = field(default_factory=_OtherDBConfig)
    opensearch: _OtherDBConfig = field(default_factory=_OtherDBConfig)
    es: _OtherDBConfig = field(default_factory=_OtherDBConfig)
    sanitize_span_name: bool | None = None

    def validate(self) -> Problems:
        out: Problems = []
        for kind in ("redis", "memcached", "mongo", "opensearch", "es"):
            if getattr(self, kind).enabled:
                out.append((f"{kind}.enabled", f"the {kind} sanitizer is not implemented by otel-sidecar "
                                               "(only db_sanitizer.sql)"))
        return out


@dataclass(frozen=True, slots=True)
class URLSanitizerConfig:
    """``url_sanitizer`` (path clustering for cardinality): not implemented by otel-sidecar."""

    enabled: bool = False
    attributes: tuple[str, ...] = ()
    sanitize_span_name: bool | None = None

    def validate(self) -> Problems:
        if self.enabled:
            return [("enabled", "url_sanitizer is not implemented by otel-sidecar; credentials in URLs are "
                                "masked by presets.url_credentials")]
        return []


@dataclass(frozen=True)
class Config:
    """The ``redaction`` processor's options (see the module docstring)."""

    allow_all_keys: bool = False
    allowed_keys: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
    ignored_key_patterns: tuple[str, ...] = ()
    blocked_key_patterns: tuple[str, ...] = ()
    blocked_values: tuple[str, ...] = ()
    allowed_values: tuple[str, ...] = ()
    redact_all_types: bool = False
    hash_function: HashFunction = ""
    hmac_key: str = field(default="", repr=False)  # a secret: never in reprs or logs
    summary: Literal["debug", "info", "silent", ""] = "silent"
    db_sanitizer: DBSanitizerConfig = field(default_factory=DBSanitizerConfig)
    url_sanitizer: URLSanitizerConfig = field(default_factory=URLSanitizerConfig)
    presets: PresetsConfig = field(default_factory=PresetsConfig)

    def validate(self) -> Problems:
        out: Problems = []
        for name in ("ignored_key_patterns", "blocked_key_patterns", "blocked_values", "allowed_values"):
            for i, pattern in enumerate(getattr(self, name)):
                try:
                    re.compile(pattern)
                except re.error as e:
                    out.append((f"{name}[{i}]", f"invalid regular expression: {e}"))
        if self.hash_function.startswith("hmac-"):
            need = 32 if self.hash_function == "hmac-sha256" else 64
            if len(self.hmac_key.encode()) < need:
                out.append(("hmac_key", f"{self.hash_function} needs an hmac_key of at least {need} bytes"))
        elif self.hmac_key:
            out.append(("hmac_key", "hmac_key is only used with hash_function hmac-sha256 or hmac-sha512"))
        return out
