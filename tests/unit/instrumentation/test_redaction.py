"""Redaction presets: what each one catches, switching presets off, idempotence, structured values."""

from __future__ import annotations

import pytest

from instrumentation.redaction import PRESETS, REDACTED, Redactor, luhn_valid

SENTINEL = "Sentinel-Pa55word!"


@pytest.mark.parametrize(
    ("preset", "text", "secret"),
    [
        ("secrets", f"login password={SENTINEL} user=bob", SENTINEL),
        ("secrets", f"{{'email': 'x', 'password': '{SENTINEL}'}}", SENTINEL),
        ("secrets", f'{{"client_secret": "{SENTINEL}"}}', SENTINEL),
        ("secrets", "GET /cb?access_token=abc123def&state=1", "abc123def"),
        ("secrets", "connect postgresql+psycopg://app:s3cr3tpw@db:5432/app", "s3cr3tpw"),
        ("bearer", "Authorization: Bearer abcdef123456", "abcdef123456"),
        ("bearer", "sent Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl done", "eyJhbGciOiJIUzI1NiJ9"),
        ("api_keys", "stripe sk_live_51HxYzAbCdEfGhIjKl", "sk_live_51HxYzAbCdEfGhIjKl"),
        ("api_keys", "gh ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
        ("api_keys", "aws AKIAIOSFODNN7EXAMPLE key", "AKIAIOSFODNN7EXAMPLE"),
        ("api_keys", "slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        ("cards", "paid with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
        ("cards", "amex 378282246310005", "378282246310005"),
        ("emails", "welcome alice.smith+tag@example.co.uk!", "alice.smith+tag@example.co.uk"),
    ],
)
def test_preset_redacts_its_pattern(preset: str, text: str, secret: str) -> None:
    assert secret not in Redactor().redact_text(text)
    # ...and only that preset is needed
    assert secret not in Redactor(presets=frozenset({preset})).redact_text(text)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_can_be_switched_off_by_env(preset: str) -> None:
    redactor = Redactor.from_env({f"OTEL_SIDECAR_REDACT_{preset.upper()}": "false"})
    assert preset not in redactor.presets
    assert redactor.presets == frozenset(PRESETS) - {preset}


def test_master_switch_disables_everything() -> None:
    redactor = Redactor.from_env({"OTEL_SIDECAR_REDACT": "false"})
    assert not redactor.enabled
    assert redactor.redact_text(f"password={SENTINEL}") == f"password={SENTINEL}"
    assert redactor.redact_value("password", SENTINEL) == SENTINEL


def test_emails_kept_when_preset_off() -> None:
    redactor = Redactor.from_env({"OTEL_SIDECAR_REDACT_EMAILS": "0"})
    assert redactor.redact_text("mail bob@example.com") == "mail bob@example.com"


def test_non_secrets_are_untouched() -> None:
    text = (
        "GET /users/42/cached 200 in 12.5 ms trace 4bf92f3577b34da6a3ce929d0e0e4736 "
        "ts 1732700000000 order 4111111111111112 phone +1 555-123-4567 auth.outcome=failure"
    )
    assert Redactor().redact_text(text) == text


def test_card_numbers_need_luhn_and_network_prefix() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    redactor = Redactor()
    assert redactor.redact_text("4111111111111111") == "[REDACTED_CARD]"
    assert redactor.redact_text("1234567812345670") == "1234567812345670"  # Luhn-valid, no network prefix


def test_redaction_is_idempotent() -> None:
    redactor = Redactor()
    text = (
        f"password={SENTINEL} Authorization: Bearer abc.def 4111-1111-1111-1111 "
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig bob@example.com postgresql://u:p@h/db"
    )
    once = redactor.redact_text(text)
    assert redactor.redact_text(once) == once
    assert SENTINEL not in once


def test_structured_values_are_redacted_by_key_and_value() -> None:
    redactor = Redactor()
    value = {
        "email": "alice@example.com",
        "password": SENTINEL,
        "nested": {"api_key": 12345, "items": [{"Set-Cookie": "sid=1"}, "note bob@example.com"]},
        "card": 4111111111111111,
        "count": 3,
        "ok": True,
    }
    assert redactor.redact_value("payload", value) == {
        "email": "[REDACTED_EMAIL]",
        "password": REDACTED,
        "nested": {"api_key": REDACTED, "items": [{"Set-Cookie": REDACTED}, "note [REDACTED_EMAIL]"]},
        "card": "[REDACTED_CARD]",
        "count": 3,
        "ok": True,
    }


def test_objects_are_redacted_through_their_text() -> None:
    class Model:
        def __repr__(self) -> str:
            return f"Model(email='a@b.io', password='{SENTINEL}')"

    assert SENTINEL not in str(Redactor().redact_value("body", Model()))


@pytest.mark.parametrize(
    "key", ["password", "new_password", "X-Api-Key", "client.secret", "Authorization", "csrf_token"]
)
def test_sensitive_keys(key: str) -> None:
    assert Redactor().is_sensitive_key(key)


@pytest.mark.parametrize("key", ["email", "user_id", "request.id", "auth.outcome", "author", "status"])
def test_ordinary_keys(key: str) -> None:
    assert not Redactor().is_sensitive_key(key)


def test_extra_keys_from_env() -> None:
    redactor = Redactor.from_env({"OTEL_SIDECAR_REDACT_EXTRA_KEYS": "ssn, national-id"})
    assert redactor.is_sensitive_key("customer_ssn")
    assert redactor.is_sensitive_key("national_id")
    assert "national_id=[REDACTED]" in redactor.redact_text("national_id=12345 ok")


def test_unknown_preset_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown redaction presets"):
        Redactor(presets=frozenset({"passwords"}))
