"""Built-in detectors of the ``redaction`` processor's ``presets`` (an otel-sidecar extension).

This module is the reference for the presets' semantics; the in-process
redaction of ``instrumentation/`` mirrors it (its switches
``OTEL_SIDECAR_REDACT_SECRETS``/``BEARER``/``JWT``/``API_KEYS``/``CARDS``/``EMAILS``
map to ``passwords``/``bearer_tokens``/``jwt``/``api_keys``/``credit_cards``/``emails``).

============  ==============================================================  =====================
preset        what is detected                                                replaced by
============  ==============================================================  =====================
passwords     a *key* (attribute key, body-map key) whose words include a     the whole value
              secret word (:data:`SECRET_WORDS`, or a pair in
              :data:`SECRET_PAIRS`; words are split on ``. _ -`` and
              camelCase: ``db.password``, ``http.request.header.authorization``,
              ``clientSecret``; ``input_tokens`` is not one);
              in free text, ``<secret word>=value``, ``<secret word>: value``   the value only
              and ``"<secret word>": "value"``
bearer_tokens ``Bearer <token>`` (any case); ``Basic <base64>`` when it           the credential
              decodes to ``user:password``
jwt           ``eyJ<header>.eyJ<payload>.<signature>``                         the whole token
api_keys      AWS access key ids (``AKIA``/``ASIA`` + 16), GitHub tokens        the whole key
              (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``,
              ``github_pat_``), Slack (``xox?-``), Stripe (``sk_live_``,
              ``rk_test_``...), Google (``AIza`` + 35), OpenAI-style
              (``sk-`` + 20+), PEM private key blocks
credit_cards  13-19 digits, optionally grouped by single spaces or dashes,     the whole number
              that pass the Luhn check (not part of a longer digit run);
              also int values of 13-19 digits
emails        ``local@domain.tld``                                             the whole address
sql_literals  in ``db.statement``/``db.query.text`` (and the ``db_sanitizer``  ``?``
              attributes): quoted string literals, numbers, hex literals
url_          in ``url.full``/``url.original``/``url.query``/``http.url``/      the password / value
credentials   ``http.target``: the password of ``user:password@``, and the
              values of query parameters whose names are secret words or
              signature parameters (:data:`URL_SECRET_PARAMS`)
============  ==============================================================  =====================

Values that match nothing are returned unchanged (the same object). Each
detector is guarded by a cheap substring test, so a clean string costs a few
``in`` checks and at most two regex scans.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Final

from agent.processors.redaction.config import PresetsConfig

__all__ = [
    "DB_STATEMENT_KEYS",
    "SECRET_PAIRS",
    "SECRET_WORDS",
    "URL_KEYS",
    "URL_SECRET_PARAMS",
    "ValueScanner",
    "is_secret_key",
    "key_words",
    "luhn_valid",
    "sanitize_sql",
]

#: Words that make a key secret on their own.
SECRET_WORDS: Final[frozenset[str]] = frozenset({
    "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "apikey", "authorization",
    "cookie", "credential", "credentials", "privatekey", "accesskey", "secretkey", "sessionid", "jwt",
    "bearer", "otp", "pin", "cvv", "cvc", "ssn", "signature", "xapikey", "setcookie", "refreshtoken",
    "accesstoken", "idtoken", "authtoken", "clientsecret", "connectionstring",
})
#: Adjacent word pairs that make a key secret (``api_key``, ``private-key``, ``session.id``...).
SECRET_PAIRS: Final[frozenset[tuple[str, str]]] = frozenset({
    ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret"),
    ("session", "id"), ("auth", "token"), ("access", "token"), ("refresh", "token"), ("id", "token"),
    ("set", "cookie"), ("connection", "string"), ("x", "api"), ("card", "number"), ("security", "code"),
})
#: Attribute keys holding SQL, sanitized by ``sql_literals``.
DB_STATEMENT_KEYS: Final[frozenset[str]] = frozenset({"db.statement", "db.query.text"})
#: Attribute keys holding URLs or query strings, sanitized by ``url_credentials``.
URL_KEYS: Final[frozenset[str]] = frozenset({"url.full", "url.original", "url.query", "http.url", "http.target"})
#: Query parameters whose values are always masked (besides secret words), after
#: the OpenTelemetry semantic conventions' list for ``url.query``.
URL_SECRET_PARAMS: Final[frozenset[str]] = frozenset({
    "awsaccesskeyid", "signature", "sig", "xgoogsignature", "xamzsignature", "xamzcredential",
    "xamzsecuritytoken", "code", "state", "key", "auth", "apikey", "accesstoken", "token",
})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def key_words(key: str) -> list[str]:
    """A key split into lower-case words on punctuation and camelCase."""
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def is_secret_key(key: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when ``key`` names a secret (see the module table, ``passwords``)."""
    words = key_words(key)
    if not words:
        return False
    for i, w in enumerate(words):
        if w in SECRET_WORDS or w in extra:
            return True
        if i and (words[i - 1], w) in SECRET_PAIRS:
            return True
    return "".join(words) in SECRET_WORDS


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# -- detectors -------------------------------------------------------------------------------
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9._~+/-]{8,}=*)")
_BASIC = re.compile(r"(?i)\b(basic)(\s+)([A-Za-z0-9+/]{8,}={0,2})")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"[0-9][0-9 -]{11,}[0-9]")
_CARD_EXACT = re.compile(r"\d(?:[ -]?\d){12,18}")
_API_KEYS = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bsk-[A-Za-z0-9_-]{20,}"
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----"
)
_SECRET_TEXT_WORDS = (
    r"password|passwd|passphrase|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|auth[_-]?token|api[_-]?key|apikey|x-api-key|private[_-]?key|secret[_-]?key|"
    r"access[_-]?key|credentials?|session[_-]?id"
)
_SECRET_TEXT = re.compile(
    r"(?i)(\b(?:" + _SECRET_TEXT_WORDS + r")\b[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}\]]+)"
)
_SECRET_TEXT_HINTS = ("pass", "pwd", "secret", "token", "key", "credential", "session")
_SQL_LITERALS = re.compile(
    r"'(?:[^'\\]|\\.|'')*'"            # 'string' with '' or \' escapes
    r"|\b[xX]'[0-9A-Fa-f]*'"           # X'ff' hex string
    r"|\b0[xX][0-9A-Fa-f]+\b"          # 0xff
    r"|(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b"  # numbers, not parts of identifiers
    r"|\$\$[\s\S]*?\$\$"               # $$ dollar-quoted $$
)
_DIGIT = re.compile(r"\d")
_URL_USERINFO = re.compile(r"(//[^/?#@\s:]*:)([^/?#@\s]*)(@)")
_URL_PARAM = re.compile(r"([?&;]|^)([^=&;#\s]+)=([^&;#\s]*)")

#: (preset name, counter reason) pairs.
REASONS: Final[dict[str, str]] = {
    "passwords": "password", "bearer_tokens": "bearer_token", "jwt": "jwt", "api_keys": "api_key",
    "credit_cards": "credit_card", "emails": "email", "sql_literals": "sql_literal",
    "url_credentials": "url_credentials",
}


def sanitize_sql(statement: str) -> str:
    """``statement`` with every literal replaced by ``?`` (the collector's SQL obfuscation, simplified)."""
    if "'" not in statement and "$$" not in statement and _DIGIT.search(statement) is None:
        return statement
    return _SQL_LITERALS.sub("?", statement)


Tally = dict[str, int]
MaskFn = Callable[[str], str]


class ValueScanner:
    """Applies the enabled value presets to strings.

    Args:
        presets: the ``presets`` config block; a preset runs when ``presets.on(name)``.
        mask: turns a detected secret into its replacement (``****`` or a hash).
    """

    __slots__ = ("_bearer", "_cards", "_emails", "_jwt", "_keys", "_mask", "_secret_text")

    def __init__(self, presets: PresetsConfig, mask: MaskFn) -> None:
        self._mask = mask
        self._secret_text = presets.on("passwords")
        self._bearer = presets.on("bearer_tokens")
        self._jwt = presets.on("jwt")
        self._keys = presets.on("api_keys")
        self._cards = presets.on("credit_cards")
        self._emails = presets.on("emails")

    @property
    def active(self) -> bool:
        """True when at least one value preset runs."""
        return self._secret_text or self._bearer or self._jwt or self._keys or self._cards or self._emails

    def scan(self, s: str, tally: Tally) -> str:
        """``s`` with every detected secret replaced; ``tally[reason]`` counts the replacements."""
        if len(s) < 5:
            return s
        if s.isalnum():
            # No separators: only a bare card number or an AWS/Google key can hide here.
            if self._cards and s.isdigit() and 13 <= len(s) <= 19 and s.isascii() and luhn_valid(s):
                tally["credit_card"] = tally.get("credit_card", 0) + 1
                return self._mask(s)
            if self._keys and ("AKIA" in s or "ASIA" in s or "AIza" in s):
                return self._sub(_API_KEYS, s, tally, "api_key")
            return s
        out = s
        if self._jwt and "eyJ" in out:
            out = self._sub(_JWT, out, tally, "jwt")
        if self._keys and ("AKIA" in out or "ASIA" in out or "AIza" in out or "PRIVATE KEY" in out or (
                ("_" in out or "-" in out)
                and ("gh" in out or "xox" in out or "k_live_" in out or "k_test_" in out or "sk-" in out))):
            out = self._sub(_API_KEYS, out, tally, "api_key")
        low: str | None = None
        if self._bearer:
            low = out.lower()
            if "bearer" in low:
                out = self._sub_group3(_BEARER, out, tally, "bearer_token", None)
            if "basic" in low:
                out = self._sub_group3(_BASIC, out, tally, "bearer_token", _is_basic_credential)
        if self._secret_text:
            if low is None or out is not s:
                low = out.lower()
            for hint in _SECRET_TEXT_HINTS:
                if hint in low:
                    out = self._sub_secret_text(out, tally)
                    break
        if self._emails and "@" in out:
            out = self._sub(_EMAIL, out, tally, "email")
        if self._cards and _CARD.search(out) is not None:
            out = self._sub_cards(out, tally)
        return out

    def card_int(self, value: int) -> bool:
        """True when an int value looks like a card number (13-19 digits, Luhn-valid)."""
        return self._cards and 10**12 <= value < 10**19 and luhn_valid(str(value))

    # -- replacement helpers ----------------------------------------------------------------
    def _sub(self, rx: re.Pattern[str], s: str, tally: Tally, reason: str) -> str:
        n = 0
        mask = self._mask

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return mask(m.group(0))

        out = rx.sub(repl, s)
        if n:
            tally[reason] = tally.get(reason, 0) + n
            return out
        return s

    def _sub_group3(self, rx: re.Pattern[str], s: str, tally: Tally, reason: str,
                    check: Callable[[str], bool] | None) -> str:
        n = 0
        mask = self._mask

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            cred = m.group(3)
            if check is not None and not check(cred):
                return m.group(0)
            n += 1
            return m.group(1) + m.group(2) + mask(cred)

        out = rx.sub(repl, s)
        if n:
            tally[reason] = tally.get(reason, 0) + n
            return out
        return s

    def _sub_secret_text(self, s: str, tally: Tally) -> str:
        n = 0
        mask = self._mask

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            value = m.group(2)
            if value == "****" or value == "?":
                return m.group(0)
            n += 1
            return m.group(1) + mask(value)

        out = _SECRET_TEXT.sub(repl, s)
        if n:
            tally["password"] = tally.get("password", 0) + n
            return out
        return s

    def _sub_cards(self, s: str, tally: Tally) -> str:
        n = 0
        mask = self._mask

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            text = m.group(0)
            start, end = m.span()
            if (start and s[start - 1].isdigit()) or (end < len(s) and s[end].isdigit()):
                return text
            digits = text.replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and luhn_valid(digits) and "  " not in text and "--" not in text:
                n += 1
                return mask(text)
            return text

        out = _CARD_EXACT.sub(repl, s)
        if n:
            tally["credit_card"] = tally.get("credit_card", 0) + n
            return out
        return s

    def sanitize_url(self, url: str, tally: Tally, *, query_only: bool = False) -> str:
        """Mask the userinfo password and secret query parameter values of a URL (or a bare query)."""
        out = url
        n = 0
        mask = self._mask
        if not query_only and "@" in out:
            def user(m: re.Match[str]) -> str:
                nonlocal n
                if not m.group(2):
                    return m.group(0)
                n += 1
                return m.group(1) + mask(m.group(2)) + m.group(3)
            out = _URL_USERINFO.sub(user, out)
        if "=" in out:
            head, sep, query = out.partition("?") if not query_only else ("", "", out)
            if sep or query_only:
                fragment = ""
                if "#" in query:
                    query, _, frag = query.partition("#")
                    fragment = "#" + frag

                def param(m: re.Match[str]) -> str:
                    nonlocal n
                    name = m.group(2)
                    value = m.group(3)
                    if value and _is_secret_param(name):
                        n += 1
                        return f"{m.group(1)}{name}={mask(value)}"
                    return m.group(0)
                query = _URL_PARAM.sub(param, query)
                out = head + sep + query + fragment
        if n:
            tally["url_credentials"] = tally.get("url_credentials", 0) + n
            return out
        return url


def _is_secret_param(name: str) -> bool:
    norm = "".join(key_words(name))
    return norm in URL_SECRET_PARAMS or is_secret_key(name)


def _is_basic_credential(text: str) -> bool:
    """True when ``text`` is base64 of ``user:password``."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ":" in decoded and decoded.isprintable()
