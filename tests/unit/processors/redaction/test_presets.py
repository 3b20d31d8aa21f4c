"""The presets' detectors: what they catch and, as much, what they leave alone."""

from __future__ import annotations

import pytest

from agent.processors.redaction.config import PresetsConfig
from agent.processors.redaction.presets import (
    Tally,
    ValueScanner,
    is_secret_key,
    key_words,
    luhn_valid,
    sanitize_sql,
)

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def scan(text: str, **enabled: bool) -> tuple[str, Tally]:
    tally: Tally = {}
    return ValueScanner(PresetsConfig(**enabled), lambda _: "****").scan(text, tally), tally


@pytest.mark.parametrize("key", [
    "password", "db.password", "user.password_hash", "http.request.header.authorization", "Authorization",
    "http.request.header.cookie", "set-cookie", "api_key", "apiKey", "x-api-key", "clientSecret",
    "aws.secret_access_key", "private_key", "session.id", "sessionId", "auth_token", "refresh-token", "pwd",
    "card.number", "ssn", "connection_string",
])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "gen_ai.usage.input_tokens", "http.route", "user.id", "keyboard.layout", "db.system", "passenger",
    "compass", "service.name", "pinned", "authority", "session.count",
])
def test_not_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_extra_secret_words_and_word_split() -> None:
    assert key_words("myAPIKey.value-x") == ["my", "apikey", "value", "x"]
    assert is_secret_key("tenant.pass_phrase_x", frozenset({"phrase"}))


def test_luhn() -> None:
    assert luhn_valid(VISA) and luhn_valid(MASTERCARD) and luhn_valid(AMEX)
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(("text", "expected", "reason"), [
    (f"card {VISA} ok", "card **** ok", "credit_card"),
    ("card 4111 1111 1111 1111.", "card ****.", "credit_card"),
    (f"mc {MASTERCARD[:4]}-{MASTERCARD[4:8]}-{MASTERCARD[8:12]}-{MASTERCARD[12:]}", "mc ****", "credit_card"),
    (f"amex {AMEX}", "amex ****", "credit_card"),
    ("mail bob.smith+tag@example.co.uk now", "mail **** now", "email"),
    (f"auth {JWT}", "auth ****", "jwt"),
    ("Authorization: Bearer abc.DEF-123_xyz~", "Authorization: Bearer ****", "bearer_token"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ****", "bearer_token"),
    ("key AKIAIOSFODNN7EXAMPLE in env", "key **** in env", "api_key"),
    ("ghp_" + "a" * 36, "****", "api_key"),
    ("xoxb-123456789012-abcdefABCDEF", "****", "api_key"),
    ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "****", "api_key"),
    ("AIza" + "S" * 35, "****", "api_key"),
    ("login failed password=hunter2 for bob", "login failed password=**** for bob", "password"),
    ('{"user": "bob", "password": "hunter2"}', '{"user": "bob", "password": "****"}', "password"),
    ("api_key: abc123, retry", "api_key: ****, retry", "password"),
    ("?token=abc&page=2", "?token=****&page=2", "password"),
])
def test_detectors(text: str, expected: str, reason: str) -> None:
    out, tally = scan(text)
    assert out == expected
    assert tally == {reason: 1}


@pytest.mark.parametrize("text", [
    "order 4111111111111112 shipped",          # not Luhn-valid
    "id 12345678901234567890123 long run",     # 23 digits: no 13-19 digit card
    "phone 555-1234",                          # too short
    "Basic authentication failed",             # not a base64 user:password
    "the tokens: 5",                           # 'tokens' is no secret word
    "user@localhost",                          # no domain suffix
    "User login succeeded for account 48213 from 10.0.3.17",
    "eyJ alone",
])
def test_clean_text_is_returned_unchanged(text: str) -> None:
    out, tally = scan(text)
    assert out is text and tally == {}


def test_each_preset_can_be_turned_off() -> None:
    text = f"p password=x card {VISA} mail a@b.io jwt {JWT} Bearer abcdefghij key AKIAIOSFODNN7EXAMPLE"
    out, _ = scan(text, passwords=False, credit_cards=False, emails=False, jwt=False, bearer_tokens=False,
                  api_keys=False)
    assert out is text
    out, tally = scan(text, credit_cards=False)
    assert VISA in out and "a@b.io" not in out and set(tally) == {"password", "email", "jwt", "bearer_token",
                                                                  "api_key"}


def test_card_ints() -> None:
    s = ValueScanner(PresetsConfig(), lambda _: "****")
    assert s.card_int(int(VISA)) and not s.card_int(4111111111111112) and not s.card_int(42)


def test_sql_literals() -> None:
    assert sanitize_sql("UPDATE users SET password = 'S3CR3T', n = 42 WHERE id = -7 AND x = 1.5e3") == \
        "UPDATE users SET password = ?, n = ? WHERE id = ? AND x = ?"
    assert sanitize_sql("SELECT t1.a FROM t1 WHERE name = 'O''Brien' AND b = X'ff' AND c = 0x1F") == \
        "SELECT t1.a FROM t1 WHERE name = ? AND b = ? AND c = ?"
    plain = "SELECT users.id FROM users WHERE users.id = %(id)s"
    assert sanitize_sql(plain) is plain


def test_url_credentials() -> None:
    s = ValueScanner(PresetsConfig(), lambda _: "****")
    tally: Tally = {}
    assert s.sanitize_url("https://bob:pw@host:8443/p?q=1&access_token=abc&X-Amz-Signature=f#frag", tally) == \
        "https://bob:****@host:8443/p?q=1&access_token=****&X-Amz-Signature=****#frag"
    assert tally == {"url_credentials": 3}
    assert s.sanitize_url("api_key=k&page=2", {}, query_only=True) == "api_key=****&page=2"
    clean = "https://host/p?page=2"
    assert s.sanitize_url(clean, {}) is clean
