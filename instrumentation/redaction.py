"""In-process redaction of secrets and personal data in log records.

Redaction runs in the application process, before a log record is written to stdout or handed
to the OpenTelemetry SDK, so a secret never leaves the process (the sidecar, Loki and every
intermediate hop only ever see ``[REDACTED]``).

Presets (each on by default; ``OTEL_SIDECAR_REDACT_<PRESET>=false`` turns one off and
``OTEL_SIDECAR_REDACT=false`` turns all of them off):

``secrets``
    Values whose *key* names a secret (``password``, ``passwd``, ``pwd``, ``secret``, ``token``,
    ``api_key``, ``authorization``, ``cookie``, ``credential``, ``private_key``, ``session_id``...)
    in structured data (``extra=`` fields, dict arguments, OTLP attributes) and in text
    (``password=hunter2``, ``"token": "abc"``, ``'secret': 'x'``), plus the password in URLs
    (``postgresql://user:pw@host``). ``OTEL_SIDECAR_REDACT_EXTRA_KEYS`` adds key names.
``bearer``
    ``Bearer <token>`` and ``Basic <credentials>`` authorization values.
``jwt``
    JSON Web Tokens (``eyJ...``.``eyJ...``.``...``).
``api_keys``
    Well-known API key formats: Stripe (``sk_live_``, ``rk_live_``, ``whsec_``), GitHub
    (``ghp_``, ``gho_``, ``ghs_``, ``github_pat_``...), GitLab (``glpat-``), Slack (``xoxb-``...),
    AWS access key ids (``AKIA``/``ASIA``...), Google (``AIza``), OpenAI/Anthropic style
    (``sk-...``), SendGrid (``SG.``), npm (``npm_``).
``cards``
    Payment card numbers: 13-19 digits (spaces or dashes allowed), Luhn-valid, with a major
    network prefix (Visa, Mastercard, Amex, Discover, JCB, Diners).
``emails``
    E-mail addresses.

Redaction is idempotent: redacting redacted text changes nothing. The replacement markers are
``[REDACTED]``, ``[REDACTED_JWT]``, ``[REDACTED_API_KEY]``, ``[REDACTED_CARD]`` and
``[REDACTED_EMAIL]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from instrumentation import settings

__all__ = [
    "PRESETS",
    "REDACTED",
    "Redactor",
    "default_redactor",
    "luhn_valid",
    "reset_default_redactor",
]

REDACTED: Final = "[REDACTED]"
REDACTED_JWT: Final = "[REDACTED_JWT]"
REDACTED_API_KEY: Final = "[REDACTED_API_KEY]"
REDACTED_CARD: Final = "[REDACTED_CARD]"
REDACTED_EMAIL: Final = "[REDACTED_EMAIL]"

#: Every preset name, in the order they are applied to text.
PRESETS: Final = ("bearer", "jwt", "api_keys", "secrets", "cards", "emails")

#: Substrings of a normalised key (lower case, ``-``/``.``/space -> ``_``) that make it sensitive.
SENSITIVE_KEY_PARTS: Final = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "access_key",
    "private_key",
    "authorization",
    "credential",
    "cookie",
    "session_id",
    "sessionid",
    "card_number",
    "cardnumber",
    "cvv",
    "cvc",
)

_MAX_DEPTH: Final = 8

_BEARER_RE: Final = re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED)[A-Za-z0-9\-._~+/]+=*")
_BASIC_RE: Final = re.compile(r"(?i)\b(basic)\s+(?!\[REDACTED)[A-Za-z0-9+/]{8,}={0,2}")
_JWT_RE: Final = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_API_KEY_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}"
    r"|whsec_[0-9A-Za-z]{10,}"
    r"|gh[pousr]_[0-9A-Za-z]{20,}"
    r"|github_pat_[0-9A-Za-z_]{20,}"
    r"|glpat-[0-9A-Za-z_-]{20,}"
    r"|xox[abposr]-[0-9A-Za-z-]{10,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|sk-(?:proj-|ant-)?[0-9A-Za-z_-]{20,}"
    r"|SG\.[0-9A-Za-z_-]{16,}\.[0-9A-Za-z_-]{16,}"
    r"|npm_[0-9A-Za-z]{36}"
    r")(?![A-Za-z0-9])"
)
_URL_PASSWORD_RE: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)(?!\[REDACTED\]@)([^@\s/]+)(@)")
_CARD_CANDIDATE_RE: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_CARD_PREFIX_RE: Final = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|6011|65|64[4-9]|35|30[0-5]|36|38)")
_EMAIL_RE: Final = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_NORMALISE_KEY_RE: Final = re.compile(r"[\s.\-]+")


def luhn_valid(digits: str) -> bool:
    """Check a string of digits with the Luhn (mod 10) algorithm.

    Args:
        digits: Only the digits ``0-9``.

    Returns:
        Whether the checksum is valid.
    """
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _CARD_PREFIX_RE.match(digits) is not None and luhn_valid(digits)


def _redact_card(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = candidate.replace(" ", "").replace("-", "")
    return REDACTED_CARD if _is_card_number(digits) else candidate


def _key_value_pattern(key_parts: Iterable[str]) -> re.Pattern[str]:
    """Build the regex that finds ``key=value`` / ``"key": "value"`` pairs with a sensitive key in text."""
    alternatives = "|".join(
        sorted({re.escape(part).replace("_", "[_.\\- ]?") for part in key_parts}, key=len, reverse=True)
    )
    return re.compile(
        r"(?i)(?P<key>[\"']?[\w.\-]*(?:" + alternatives + r")[\w.\-]*[\"']?\s*[:=]\s*)"
        r"(?P<value>\"[^\"]*\"|'[^']*'|(?:bearer|basic)\s+\S+|[^\s,;&}\]\)]+)"
    )


@dataclass(frozen=True)
class Redactor:
    """Redacts secrets and personal data from text and structured values.

    A ``Redactor`` is immutable and thread-safe; build one with :meth:`from_env` or directly.

    Args:
        presets: The enabled presets, a subset of :data:`PRESETS`.
        extra_keys: Additional sensitive key-name parts (matched like :data:`SENSITIVE_KEY_PARTS`).
    """

    presets: frozenset[str] = frozenset(PRESETS)
    extra_keys: tuple[str, ...] = ()
    _key_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _key_value_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.presets) - set(PRESETS)
        if unknown:
            raise ValueError(f"unknown redaction presets: {sorted(unknown)}; known: {list(PRESETS)}")
        parts = tuple(dict.fromkeys((*SENSITIVE_KEY_PARTS, *(_normalise_key(k) for k in self.extra_keys if k))))
        object.__setattr__(self, "_key_parts", parts)
        object.__setattr__(self, "_key_value_re", _key_value_pattern(parts))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """Build a redactor from ``OTEL_SIDECAR_REDACT*`` environment variables.

        Args:
            environ: The environment to read; ``os.environ`` when ``None``.

        Returns:
            A redactor with the presets that are not switched off.
        """
        env = os.environ if environ is None else environ
        if not settings.env_flag(env, settings.REDACT, True):
            return cls(presets=frozenset())
        enabled = frozenset(
            preset for preset in PRESETS if settings.env_flag(env, settings.REDACT_PREFIX + preset.upper(), True)
        )
        return cls(presets=enabled, extra_keys=tuple(settings.env_list(env, settings.REDACT_EXTRA_KEYS)))

    @property
    def enabled(self) -> bool:
        """Whether any preset is enabled."""
        return bool(self.presets)

    def is_sensitive_key(self, key: object) -> bool:
        """Tell whether a key (dict key, attribute name, ``extra`` field) names a secret.

        Only meaningful with the ``secrets`` preset; always ``False`` without it.

        Args:
            key: The key; non-strings are never sensitive.

        Returns:
            Whether values under this key must be replaced as a whole.
        """
        if "secrets" not in self.presets or not isinstance(key, str) or not key:
            return False
        normalised = _normalise_key(key)
        return any(part in normalised for part in self._key_parts)

    def redact_text(self, text: str) -> str:
        """Redact every enabled pattern in a piece of text.

        Args:
            text: Any text: a log message, an exception message, an attribute value.

        Returns:
            The text with secrets replaced by markers (the same object when nothing matched).
        """
        if not self.presets or not text:
            return text
        presets = self.presets
        if "bearer" in presets:
            text = _BEARER_RE.sub(r"\1 " + REDACTED, text)
            text = _BASIC_RE.sub(r"\1 " + REDACTED, text)
        if "jwt" in presets:
            text = _JWT_RE.sub(REDACTED_JWT, text)
        if "api_keys" in presets:
            text = _API_KEY_RE.sub(REDACTED_API_KEY, text)
        if "secrets" in presets:
            text = _URL_PASSWORD_RE.sub(r"\1" + REDACTED + r"\3", text)
            text = self._key_value_re.sub(_replace_key_value, text)
        if "cards" in presets:
            text = _CARD_CANDIDATE_RE.sub(_redact_card, text)
        if "emails" in presets:
            text = _EMAIL_RE.sub(REDACTED_EMAIL, text)
        return text

    def redact_value(self, key: object, value: object, _depth: int = 0) -> object:
        """Redact a structured value found under ``key``.

        Mappings are redacted key by key, sequences item by item, strings with
        :meth:`redact_text`; integers that are card numbers are replaced; other objects are
        converted with ``str()`` and redacted as text (so a model's ``repr`` cannot leak a field).

        Args:
            key: The key the value was found under (``None`` for none).
            value: The value.

        Returns:
            A redacted copy made of ``dict``, ``list``, ``str``, numbers, ``bool`` and ``None``
            (the same object when it needs no change).
        """
        if not self.presets or value is None or isinstance(value, bool | float):
            return value
        if self.is_sensitive_key(key):
            return REDACTED
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, int):
            if "cards" in self.presets and _is_card_number(str(abs(value))):
                return REDACTED_CARD
            return value
        if _depth >= _MAX_DEPTH:
            return "[TRUNCATED]"
        if isinstance(value, Mapping):
            return {str(k): self.redact_value(k, v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_value(None, item, _depth + 1) for item in value]
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"))
        return self.redact_text(str(value))

    def redact_mapping(self, mapping: Mapping[str, object]) -> dict[str, object]:
        """Redact every value of a mapping by its key.

        Args:
            mapping: For example a log record's ``extra`` fields.

        Returns:
            A new ``dict`` with redacted values.
        """
        return {key: self.redact_value(key, value) for key, value in mapping.items()}


def _normalise_key(key: str) -> str:
    return _NORMALISE_KEY_RE.sub("_", key.strip().lower())


def _replace_key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if "[REDACTED" in value:
        return match.group(0)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{match.group('key')}{value[0]}{REDACTED}{value[0]}"
    return f"{match.group('key')}{REDACTED}"


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """Return the process-wide redactor, built from the environment on first use.

    Returns:
        The shared :class:`Redactor`.
    """
    global _default
    if _default is None:
        _default = Redactor.from_env()
    return _default


def reset_default_redactor(redactor: Redactor | None = None) -> None:
    """Replace the process-wide redactor (``None``: rebuild it from the environment on next use).

    Args:
        redactor: The new redactor, or ``None``.
    """
    global _default
    _default = redactor
