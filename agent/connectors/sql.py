"""SQL statement helpers shared by the span connectors: sanitise, fingerprint, operation and table.

Role: turn a DB client span's statement (``db.query.text`` / ``db.statement``)
into a :class:`QueryInfo`: the sanitised text, a short fingerprint, the
operation (``SELECT``...), the first table (``users``, ``public.users``) and
the low-cardinality summary (``SELECT users``, semconv's ``db.query.summary``).

Sanitising (one left-to-right regex pass, so quotes inside comments and
comment markers inside strings are handled):

* comments (``/* ... */``, ``-- ...``) are removed: sqlcommenter puts a
  per-request ``traceparent`` there;
* string literals (``'...'`` with ``''`` or ``\\'`` escapes, ``E'...'``,
  ``X'...'``), dollar-quoted bodies (``$$...$$``), numbers and hex numbers
  become ``?``; so do bind placeholders (``%(name)s``, ``%s``, ``:name``,
  ``$1``, ``@p1``), so the same query gives one text whatever the driver;
  double-quoted, back-quoted and bracketed identifiers are kept;
* ``IN (?, ?, ...)`` becomes ``IN (?)`` and repeated ``VALUES`` tuples
  collapse to one, so batch sizes do not split a query in two;
* runs of whitespace become one space; the text is trimmed.

The fingerprint is the first 16 hex digits of BLAKE2b over the sanitised text.

Operation and table (semconv: "the first collection name found in the
query", schema prefix kept, quotes removed): ``SELECT`` takes the first
``FROM`` target at parenthesis depth 0 (else the first anywhere);
``INSERT``/``REPLACE``/``MERGE`` their ``INTO`` target; ``UPDATE`` its target;
``DELETE`` its ``FROM`` target; ``WITH`` is resolved to the main statement
after the CTEs; DDL (``CREATE``/``DROP``/``ALTER``/``TRUNCATE`` ``TABLE``)
the table. Other statements (``BEGIN``, ``PRAGMA``...) have an operation and
no table. Operations are upper case.

Cost: parsing is regex work (tens of µs for an ORM statement), so callers go
through :class:`QueryCache`, which keeps results per raw statement text (ORM
statements repeat; inlined literals do not, and a full cache is cleared).
Statements longer than :data:`MAX_STATEMENT` characters are cut before
parsing. Everything here is pure or owned by one caller: no locks, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["MAX_STATEMENT", "QueryCache", "QueryInfo", "operation_and_table", "parse", "sanitize"]

#: Statements are cut to this many characters before they are parsed.
MAX_STATEMENT: Final = 16384

_TOKEN = re.compile(
    r"(/\*.*?(?:\*/|$)|--[^\n]*)"                          # 1: comment -> removed
    r"|((?:\b[EeNnXxBb])?'(?:[^'\\]|\\.|'')*'?"            # 2: string literal -> ?
    r"|\$\$.*?(?:\$\$|$)"                                  #    dollar-quoted body
    r"|\b0[xX][0-9A-Fa-f]+\b"                              #    hex number
    r"|(?<![\w$.:@])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b"      #    number, not part of an identifier
    r"|%\([^)]*\)s|%s|(?<![:\w]):[A-Za-z_]\w*|\$\d+|@\w+)"  # bind placeholders
    r"|(\"[^\"]*\"|`[^`]*`|\[[^\]]*\])"                    # 3: quoted identifier -> kept
    r"|(\s+)",                                             # 4: whitespace -> one space
    re.DOTALL,
)
_IN_LIST = re.compile(r"\b(IN)\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)
_VALUES_ROWS = re.compile(r"(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))+")


def _sub(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return " "
    if m.group(2) is not None:
        return "?"
    if m.group(3) is not None:
        return m.group(3)
    return " "


def sanitize(statement: str) -> str:
    """``statement`` with comments removed, literals and placeholders as ``?``, lists collapsed,
    whitespace normalised (see the module docstring)."""
    text = _TOKEN.sub(_sub, statement[:MAX_STATEMENT]).strip()
    if "?" in text and "(" in text:
        text = _IN_LIST.sub(r"\1 (?)", text)
        text = _VALUES_ROWS.sub(r"\1", text)
    if "  " in text:  # removing a comment may leave two spaces
        text = " ".join(text.split())
    return text


_IDENT_PART = r"(?:\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$#]*)"
_IDENT = rf"({_IDENT_PART}(?:\s*\.\s*{_IDENT_PART})*)"
_SKIP = r"(?:(?:ONLY|LATERAL|IGNORE|LOW_PRIORITY|DELAYED|HIGH_PRIORITY|QUICK)\s+)*"
_FIRST_WORD = re.compile(r"\s*\(*\s*([A-Za-z]+)")
_WITH_SCAN = re.compile(r"([()])|\b(SELECT|INSERT|UPDATE|DELETE|MERGE|REPLACE)\b", re.IGNORECASE)
_FROM_SCAN = re.compile(rf"([()])|\bFROM\s+{_SKIP}(\(|{_IDENT})", re.IGNORECASE)
_TARGETS: Final[dict[str, re.Pattern[str]]] = {
    "INSERT": re.compile(rf"INSERT\s+(?:OR\s+\w+\s+)?{_SKIP}INTO\s+{_IDENT}", re.IGNORECASE),
    "REPLACE": re.compile(rf"REPLACE\s+{_SKIP}INTO\s+{_IDENT}", re.IGNORECASE),
    "MERGE": re.compile(rf"MERGE\s+INTO\s+{_IDENT}", re.IGNORECASE),
    "UPDATE": re.compile(rf"UPDATE\s+(?:OR\s+\w+\s+)?{_SKIP}{_IDENT}", re.IGNORECASE),
    "DELETE": re.compile(rf"DELETE\s+{_SKIP}FROM\s+{_SKIP}{_IDENT}", re.IGNORECASE),
    "CREATE": re.compile(rf"CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL|TEMP|TEMPORARY|UNLOGGED|VIRTUAL)\s+)*"
                         rf"TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_IDENT}", re.IGNORECASE),
    "DROP": re.compile(rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_IDENT}", re.IGNORECASE),
    "ALTER": re.compile(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_IDENT}", re.IGNORECASE),
    "TRUNCATE": re.compile(rf"TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?{_IDENT}", re.IGNORECASE),
}
_UNQUOTE = re.compile(r"\s*\.\s*")


def _name(ident: str) -> str:
    """``"public" . "Users"`` -> ``public.Users`` (quotes removed, schema kept)."""
    parts = _UNQUOTE.split(ident) if "." in ident else [ident]
    return ".".join(p[1:-1] if p[:1] in "\"`[" else p for p in parts)


def _select_table(text: str, pos: int) -> str:
    depth = 0
    anywhere = ""
    for m in _FROM_SCAN.finditer(text, pos):
        paren = m.group(1)
        if paren is not None:
            depth += 1 if paren == "(" else -1
            continue
        target = m.group(2)
        if target == "(":
            depth += 1
            continue
        if depth <= 0:
            return _name(target)
        if not anywhere:
            anywhere = _name(target)
    return anywhere


def operation_and_table(text: str) -> tuple[str, str]:
    """The upper-case operation and the first table of a (sanitised) statement; ``""`` when unknown."""
    m = _FIRST_WORD.match(text)
    if m is None:
        return "", ""
    op = m.group(1).upper()
    pos = m.start(1)
    if op == "WITH":
        depth = 0
        main = ""
        for w in _WITH_SCAN.finditer(text, m.end(1)):
            paren = w.group(1)
            if paren is not None:
                depth += 1 if paren == "(" else -1
            elif depth == 0:
                main = w.group(2).upper()
                pos = w.start(2)
                break
        if not main:
            return op, ""
        op = main
    if op == "SELECT":
        return op, _select_table(text, pos)
    pattern = _TARGETS.get(op)
    if pattern is None:
        return op, ""
    t = pattern.match(text, pos)
    return op, (_name(t.group(1)) if t is not None else "")


class QueryInfo:
    """What the connectors need to know about one statement (immutable once built).

    Attributes:
        text: the sanitised statement.
        fingerprint: 16 hex digits identifying :attr:`text`.
        operation: ``SELECT``, ``INSERT``... (``""`` when unknown).
        table: the first table (``""`` when none or unknown).
        summary: ``"<operation> <table>"`` (or just the operation).
    """

    __slots__ = ("fingerprint", "operation", "summary", "table", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.fingerprint = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.operation, self.table = operation_and_table(text)
        self.summary = f"{self.operation} {self.table}" if self.table else self.operation

    def __repr__(self) -> str:
        return f"QueryInfo({self.summary!r}, {self.fingerprint}, {self.text[:60]!r})"


def parse(statement: str) -> QueryInfo:
    """Sanitise and analyse one statement (uncached)."""
    return QueryInfo(sanitize(statement))


class QueryCache:
    """:func:`parse` results per raw statement text; cleared when ``max_entries`` is reached.

    Not thread-safe: one cache per component instance, used from the event loop.
    """

    __slots__ = ("_entries", "_max", "hits", "misses")

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[str, QueryInfo] = {}
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, statement: str) -> QueryInfo:
        info = self._entries.get(statement)
        if info is not None:
            self.hits += 1
            return info
        self.misses += 1
        if len(self._entries) >= self._max:
            self._entries.clear()
        info = self._entries[statement] = parse(statement)
        return info

    def __len__(self) -> int:
        return len(self._entries)
