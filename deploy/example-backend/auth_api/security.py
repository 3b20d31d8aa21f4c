"""Password hashing (scrypt) and signed access tokens (HMAC-SHA256), standard library only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_LENGTH = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, log2_n: int = 14) -> str:
    """Hash a password with scrypt and a random salt.

    Args:
        password: The plain-text password.
        log2_n: The scrypt cost parameter as a power of two.

    Returns:
        ``scrypt$<log2_n>$<r>$<p>$<salt>$<hash>`` (base64url without padding).
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_KEY_LENGTH
    )
    return f"scrypt${log2_n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a hash made by :func:`hash_password`, in constant time.

    Args:
        password: The plain-text password to check.
        stored: The stored hash.

    Returns:
        Whether the password matches (``False`` for a malformed hash).
    """
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"), salt=_unb64(salt), n=2 ** int(log2_n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def issue_token(user_id: int, secret: str, ttl_seconds: int, *, now: float | None = None) -> str:
    """Issue an access token for a user.

    Args:
        user_id: The user's id.
        secret: The HMAC key.
        ttl_seconds: How long the token is valid.
        now: The current time (seconds since the epoch); ``time.time()`` when ``None``.

    Returns:
        ``<base64url(user_id.expiry)>.<base64url(hmac)>``.
    """
    expires = int((time.time() if now is None else now) + ttl_seconds)
    payload = f"{user_id}.{expires}".encode("ascii")
    signature = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def verify_token(token: str, secret: str, *, now: float | None = None) -> int | None:
    """Return the user id of a valid, unexpired token, else ``None``.

    Args:
        token: The token from the ``Authorization: Bearer`` header.
        secret: The HMAC key.
        now: The current time; ``time.time()`` when ``None``.
    """
    try:
        payload_b64, signature_b64 = token.split(".")
        payload = _unb64(payload_b64)
        expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature_b64)):
            return None
        user_id, expires = payload.decode("ascii").split(".")
        if int(expires) < (time.time() if now is None else now):
            return None
        return int(user_id)
    except (ValueError, UnicodeDecodeError):
        return None
