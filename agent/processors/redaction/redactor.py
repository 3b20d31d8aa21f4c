"""The redaction engine: key rules and value rules applied in place to OTLP attributes and values.

Order of the rules for one attribute (the collector's, then the presets):

1. ``ignored_keys`` / ``ignored_key_patterns``: left untouched.
2. Not in ``allowed_keys`` (unless ``allow_all_keys``): removed. This applies
   to attribute lists (resource, scope, span, event, link, log record, data
   point) and to the keys of log body maps, as in the collector; summary
   attributes (``redaction.*``) are always allowed.
3. The value matches an ``allowed_values`` regex: left untouched.
4. ``blocked_key_patterns`` or a secret key (``presets.passwords``): the whole
   value is masked, whatever its type.
5. Otherwise string values (and, with ``redact_all_types``, the string form
   of other scalars) go through ``blocked_values`` (each match masked), the
   SQL sanitizer for statement keys, the URL sanitizer for URL keys, then the
   value presets. Maps and arrays nested in values are walked (nested map keys
   get rules 1, 4 and 5). Int values that are Luhn-valid card numbers are
   masked when ``presets.credit_cards`` is on.

Masking replaces with ``****``, or with the hex digest of the masked text
when ``hash_function`` is set. Nothing here logs; counts go to a
caller-provided tally (reason -> occurrences) and, when ``summary`` is
``info``/``debug``, to the collector's ``redaction.*`` attributes (key names
only with ``debug``; never values).

Performance: per-key decisions and per-string results are memoized (bounded
dictionaries, cleared when full), so repeated keys and values cost a
dictionary lookup; a clean new string costs the presets' substring guards.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from agent.processors.redaction.config import Config
from agent.processors.redaction.presets import (
    DB_STATEMENT_KEYS,
    URL_KEYS,
    Tally,
    ValueScanner,
    is_secret_key,
    sanitize_sql,
)

__all__ = ["SUMMARY_KEYS", "Redactor", "Summary"]

MASK: Final = "****"
_MEMO_MAX: Final = 8192

# Key actions.
_IGNORE: Final = 0
_DELETE: Final = 1
_MASK_KEY: Final = 2       # blocked_key_patterns
_MASK_SECRET: Final = 3    # presets.passwords
_VALUES: Final = 4
_SQL: Final = 5
_URL: Final = 6
_URL_QUERY: Final = 7

_ALLOWED: Final = object()
_UNCHANGED: Final = object()

#: Attributes the processor writes (always allowed, as in the collector).
SUMMARY_KEYS: Final[tuple[str, ...]] = (
    "redaction.redacted.keys", "redaction.redacted.count", "redaction.masked.keys", "redaction.masked.count",
    "redaction.allowed.keys", "redaction.allowed.count", "redaction.ignored.count",
    "redaction.body.redacted.keys", "redaction.body.redacted.count", "redaction.body.masked.keys",
    "redaction.body.masked.count", "redaction.body.allowed.keys", "redaction.body.allowed.count",
    "redaction.body.ignored.count",
)


class Summary:
    """Keys redacted, masked, allowed and ignored in one attribute list (or one body)."""

    __slots__ = ("allowed", "ignored", "masked", "redacted")

    def __init__(self) -> None:
        self.redacted: list[str] = []
        self.masked: list[str] = []
        self.allowed: list[str] = []
        self.ignored = 0

    def __bool__(self) -> bool:
        return bool(self.redacted or self.masked or self.allowed or self.ignored)


def _hasher(name: str, key: bytes) -> Callable[[str], str] | None:
    if name in ("", "none"):
        return None
    if name.startswith("hmac-"):
        digest = "sha256" if name == "hmac-sha256" else "sha512"
        return lambda text: hmac.new(key, text.encode(), digest).hexdigest()
    algo = {"md5": "md5", "sha1": "sha1", "sha3": "sha3_256"}[name]
    return lambda text: hashlib.new(algo, text.encode()).hexdigest()


class Redactor:
    """Applies a redaction config to attribute lists and values (see the module docstring).

    Args:
        config: the decoded processor config.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._allow_all = config.allow_all_keys
        self._allowed = frozenset(config.allowed_keys) | frozenset(SUMMARY_KEYS)
        self._ignored = frozenset(config.ignored_keys)
        self._ignored_rx = [re.compile(p) for p in config.ignored_key_patterns]
        self._blocked_key_rx = [re.compile(p) for p in config.blocked_key_patterns]
        self._blocked_rx = [re.compile(p) for p in config.blocked_values]
        self._allowed_rx = [re.compile(p) for p in config.allowed_values]
        self._all_types = config.redact_all_types
        self._summary = config.summary if config.summary in ("debug", "info") else ""
        hasher = _hasher(config.hash_function, config.hmac_key.encode())
        self.mask: Callable[[str], str] = hasher if hasher is not None else _star
        presets = config.presets
        self._scanner = ValueScanner(presets, self.mask)
        self._scan_values = self._scanner.active
        self._secret_keys = presets.on("passwords")
        self._extra_secret = frozenset(w.lower() for w in presets.extra_secret_keys)
        sql_keys: set[str] = set(DB_STATEMENT_KEYS) if presets.on("sql_literals") else set()
        if config.db_sanitizer.sql.enabled:
            sql_keys.update(config.db_sanitizer.sql.attributes)
        self._sql_keys = frozenset(sql_keys)
        self._url_keys = URL_KEYS if presets.on("url_credentials") else frozenset()
        self._cards = presets.on("credit_cards")
        self._top: dict[str, int] = {}
        self._nested: dict[str, int] = {}
        self._memo: dict[str, Any] = {}
        self._special_memo: dict[tuple[int, str], Any] = {}

    @property
    def fails_closed(self) -> bool:
        """True when every attribute is removed (empty ``allowed_keys`` without ``allow_all_keys``)."""
        return not self._allow_all and not self.config.allowed_keys

    @property
    def summary_level(self) -> str:
        return self._summary

    # -- key decisions ----------------------------------------------------------------------
    def _action(self, key: str, top: bool) -> int:
        memo = self._top if top else self._nested
        action = memo.get(key)
        if action is not None:
            return action
        if key in self._ignored or any(rx.search(key) for rx in self._ignored_rx):
            action = _IGNORE
        elif top and not self._allow_all and key not in self._allowed:
            action = _DELETE
        elif any(rx.search(key) for rx in self._blocked_key_rx):
            action = _MASK_KEY
        elif key in self._sql_keys:
            action = _SQL
        elif key in self._url_keys:
            action = _URL_QUERY if key == "url.query" else _URL
        elif self._secret_keys and is_secret_key(key, self._extra_secret):
            action = _MASK_SECRET
        else:
            action = _VALUES
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = action
        return action

    # -- values -------------------------------------------------------------------------------
    def _allowed_value(self, s: str) -> bool:
        return any(rx.search(s) for rx in self._allowed_rx)

    def text(self, s: str, tally: Tally) -> str:
        """A free-text string (span name, body string): ``blocked_values`` then the value presets.
        Returns ``s`` itself when nothing matched (or ``allowed_values`` matched)."""
        if not s:
            return s
        memo = self._memo
        hit = memo.get(s)
        if hit is not None:
            if hit is _UNCHANGED or hit is _ALLOWED:
                return s
            new, counts = hit
            _add_counts(tally, counts)
            return str(new)
        if self._allowed_rx and self._allowed_value(s):
            _memoize(memo, s, _ALLOWED)
            return s
        local: Tally = {}
        out = s
        for rx in self._blocked_rx:
            out, n = rx.subn(self._mask_match, out)
            if n:
                local["blocked_value"] = local.get("blocked_value", 0) + n
        if self._scan_values:
            out = self._scanner.scan(out, local)
        if out == s:
            _memoize(memo, s, _UNCHANGED)
            return s
        _memoize(memo, s, (out, tuple(local.items())))
        _add_counts(tally, local.items())
        return out

    def _mask_match(self, m: re.Match[str]) -> str:
        return self.mask(m.group(0))

    def _special(self, s: str, action: int, tally: Tally) -> str:
        """Values of SQL and URL keys: their sanitizer, then the text rules (memoized per action)."""
        key = (action, s)
        special = self._special_memo
        hit = special.get(key)
        if hit is not None:
            if hit is _UNCHANGED:
                return s
            new, counts = hit
            _add_counts(tally, counts)
            return str(new)
        if self._allowed_rx and self._allowed_value(s):
            return s
        local: Tally = {}
        if action == _SQL:
            out = sanitize_sql(s)
            if out != s:
                local["sql_literal"] = 1
        else:
            out = self._scanner.sanitize_url(s, local, query_only=action == _URL_QUERY)
        out = self.text(out, local)
        if out == s:
            _memoize(special, key, _UNCHANGED)
            return s
        _memoize(special, key, (out, tuple(local.items())))
        _add_counts(tally, local.items())
        return out

    def _mask_any(self, v: Any) -> bool:
        """Replace a whole AnyValue by its mask. Returns False for empty values (left as they are)."""
        which = v.WhichOneof("value")
        if which is None:
            return False
        if which == "string_value":
            s = v.string_value
            if not s or s == MASK:
                return False
            v.string_value = self.mask(s)
            return True
        text = str(v) if which in ("array_value", "kvlist_value") else str(getattr(v, which))
        v.string_value = self.mask(text)
        return True

    def value(self, v: Any, action: int, tally: Tally) -> bool:
        """Apply the value rules of ``action`` to an AnyValue in place. Returns True when it changed."""
        s = v.string_value
        if s:
            new = self.text(s, tally) if action == _VALUES else self._special(s, action, tally)
            if new is not s:
                v.string_value = new
                return True
            return False
        which = v.WhichOneof("value")
        if which is None or which == "string_value":
            return False
        if which == "kvlist_value":
            changed = False
            for kv in v.kvlist_value.values:
                changed |= self._nested_kv(kv, tally)
            return changed
        if which == "array_value":
            changed = False
            for item in v.array_value.values:
                changed |= self.value(item, _VALUES, tally)
            return changed
        if which == "int_value" and self._cards and self._scanner.card_int(v.int_value):
            v.string_value = self.mask(str(v.int_value))
            tally["credit_card"] = tally.get("credit_card", 0) + 1
            return True
        if self._all_types and which in ("int_value", "double_value", "bool_value"):
            text = str(getattr(v, which)).lower() if which == "bool_value" else str(getattr(v, which))
            new = self.text(text, tally)
            if new is not text:
                v.string_value = new
                return True
        return False

    def _nested_kv(self, kv: Any, tally: Tally) -> bool:
        action = self._action(kv.key, False)
        if action == _IGNORE:
            return False
        if action in (_MASK_KEY, _MASK_SECRET):
            if self._mask_any(kv.value):
                reason = "blocked_key" if action == _MASK_KEY else "password"
                tally[reason] = tally.get(reason, 0) + 1
                return True
            return False
        return self.value(kv.value, action, tally)

    # -- attribute lists ------------------------------------------------------------------------
    def attrs(self, attrs: Any, tally: Tally, summary: Summary | None = None, *, body: bool = False) -> bool:
        """Apply every rule to a repeated ``KeyValue`` field in place. Returns True when it changed.

        Args:
            attrs: the attribute list (or a body's ``kvlist_value.values``).
            tally: reason -> occurrences, updated.
            summary: collects key names for the ``redaction.*`` summary, when given.
            body: the list is a log body map (its summary goes to the record's attributes).
        """
        if not attrs:
            return False
        changed = False
        doomed: list[int] | None = None
        action_of = self._action
        top_memo = self._top
        memo = self._memo
        for i, kv in enumerate(attrs):
            key = kv.key
            action = top_memo.get(key)
            if action is None:
                action = action_of(key, True)
            if action == _VALUES:
                v = kv.value
                s = v.string_value
                if s:
                    if memo.get(s) is _UNCHANGED:
                        continue  # the common case: a value already seen clean
                    new = self.text(s, tally)
                    if new is not s:
                        v.string_value = new
                        changed = True
                        if summary is not None:
                            summary.masked.append(key)
                    elif summary is not None and self._allowed_rx and self._allowed_value(s):
                        summary.allowed.append(key)
                    continue
                if self.value(v, action, tally):
                    changed = True
                    if summary is not None:
                        summary.masked.append(key)
                continue
            if action == _IGNORE:
                if summary is not None:
                    summary.ignored += 1
                continue
            if action == _DELETE:
                if doomed is None:
                    doomed = []
                doomed.append(i)
                continue
            v = kv.value
            if self._allowed_rx:
                sv = v.string_value
                if sv and self._allowed_value(sv):
                    if summary is not None:
                        summary.allowed.append(key)
                    continue
            if action in (_MASK_KEY, _MASK_SECRET):
                if self._mask_any(v):
                    changed = True
                    reason = "blocked_key" if action == _MASK_KEY else "password"
                    tally[reason] = tally.get(reason, 0) + 1
                    if summary is not None:
                        summary.masked.append(key)
                continue
            if self.value(v, action, tally):
                changed = True
                if summary is not None:
                    summary.masked.append(key)
        if doomed:
            if summary is not None:
                summary.redacted.extend(attrs[i].key for i in doomed)
            for i in reversed(doomed):
                del attrs[i]
            tally["not_allowed"] = tally.get("not_allowed", 0) + len(doomed)
            changed = True
        return changed

    def body(self, body: Any, record_attrs: Any, tally: Tally) -> bool:
        """Redact a log record body in place (string, map or array); the summary goes to ``record_attrs``."""
        summary = Summary() if self._summary else None
        which = body.WhichOneof("value")
        changed = False
        if which == "string_value":
            s = body.string_value
            new = self.text(s, tally)
            if new is not s:
                body.string_value = new
                changed = True
                if summary is not None:
                    summary.masked.append("body")
        elif which == "kvlist_value":
            changed = self._body_map(body.kvlist_value.values, "", tally, summary)
        elif which == "array_value":
            for i, item in enumerate(body.array_value.values):
                changed |= self._body_item(item, f"[{i}]", tally, summary)
        elif which is not None:
            changed = self.value(body, _VALUES, tally)
        if summary:
            self.write_summary(record_attrs, summary, body=True)
            changed = True
        return changed

    def _body_map(self, values: Any, path: str, tally: Tally, summary: Summary | None) -> bool:
        changed = False
        doomed: list[int] = []
        for i, kv in enumerate(values):
            key = kv.key
            full = f"{path}.{key}" if path else key
            action = self._action(key, True)
            if action == _IGNORE:
                if summary is not None:
                    summary.ignored += 1
            elif action == _DELETE:
                doomed.append(i)
                if summary is not None:
                    summary.redacted.append(full)
            elif action in (_MASK_KEY, _MASK_SECRET):
                if self._mask_any(kv.value):
                    changed = True
                    reason = "blocked_key" if action == _MASK_KEY else "password"
                    tally[reason] = tally.get(reason, 0) + 1
                    if summary is not None:
                        summary.masked.append(full)
            elif kv.value.WhichOneof("value") in ("kvlist_value", "array_value"):
                changed |= self._body_item(kv.value, full, tally, summary)
            elif self.value(kv.value, action, tally):
                changed = True
                if summary is not None:
                    summary.masked.append(full)
        for i in reversed(doomed):
            del values[i]
        if doomed:
            tally["not_allowed"] = tally.get("not_allowed", 0) + len(doomed)
            changed = True
        return changed

    def _body_item(self, v: Any, path: str, tally: Tally, summary: Summary | None) -> bool:
        which = v.WhichOneof("value")
        if which == "kvlist_value":
            return self._body_map(v.kvlist_value.values, path, tally, summary)
        if which == "array_value":
            changed = False
            for i, item in enumerate(v.array_value.values):
                changed |= self._body_item(item, f"{path}.[{i}]", tally, summary)
            return changed
        if self.value(v, _VALUES, tally):
            if summary is not None:
                summary.masked.append(path)
            return True
        return False

    def write_summary(self, attrs: Any, summary: Summary, *, body: bool = False) -> None:
        """Add the collector's ``redaction[.body].*`` attributes (merged with existing ones)."""
        if not self._summary or not summary:
            return
        prefix = "redaction.body." if body else "redaction."
        debug = self._summary == "debug"
        for kind, keys in (("redacted", summary.redacted), ("masked", summary.masked),
                           ("allowed", summary.allowed)):
            if not keys:
                continue
            if debug:
                _merge_keys(attrs, f"{prefix}{kind}.keys", keys)
            _add_count(attrs, f"{prefix}{kind}.count", len(keys))
        if summary.ignored:
            _add_count(attrs, f"{prefix}ignored.count", summary.ignored)


def _memoize(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Remember ``value`` for ``key``; a full memo (``_MEMO_MAX`` entries) is emptied first."""
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def _add_counts(tally: Tally, counts: Iterable[tuple[str, int]]) -> None:
    """Add ``(reason, count)`` pairs to ``tally``."""
    for reason, n in counts:
        tally[reason] = tally.get(reason, 0) + n


def _star(_: str) -> str:
    return MASK


def _merge_keys(attrs: Any, name: str, keys: list[str]) -> None:
    for kv in attrs:
        if kv.key == name:
            old = kv.value.string_value
            merged = sorted([*keys, *old.split(",")]) if old else sorted(keys)
            kv.value.string_value = ",".join(merged)
            return
    kv = attrs.add()
    kv.key = name
    kv.value.string_value = ",".join(sorted(keys))


def _add_count(attrs: Any, name: str, n: int) -> None:
    for kv in attrs:
        if kv.key == name:
            kv.value.int_value = kv.value.int_value + n
            return
    kv = attrs.add()
    kv.key = name
    kv.value.int_value = n
