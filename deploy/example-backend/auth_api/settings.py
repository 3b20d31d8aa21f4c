"""Settings of the example service, read from environment variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

_logger = logging.getLogger(__name__)

DEV_TOKEN_SECRET = "insecure-development-secret-change-me"  # documented development default


@dataclass(frozen=True)
class Settings:
    """Service settings.

    Attributes:
        database_url: SQLAlchemy URL (``DATABASE_URL``); SQLite file ``./auth_api.db`` by default,
            ``postgresql+psycopg://user:password@host:5432/db`` for PostgreSQL (psycopg 3).
        token_secret: HMAC key for access tokens (``AUTH_TOKEN_SECRET``).
        token_ttl_seconds: Access-token lifetime (``AUTH_TOKEN_TTL_SECONDS``).
        password_hash_log2_n: scrypt cost, log2 of N (``PASSWORD_HASH_LOG2_N``, 10-20).
        cache_ttl_seconds: Lifetime of cached users (``CACHE_TTL_SECONDS``).
        slow_seconds: Sleep of ``GET /slow`` (``SLOW_SECONDS``).
        seed_demo_data: Create demo users and posts on an empty database (``SEED_DEMO_DATA``).
        pool_size: Connection pool size (``DB_POOL_SIZE``).
        max_overflow: Connections allowed beyond the pool size (``DB_MAX_OVERFLOW``).
    """

    database_url: str = "sqlite:///./auth_api.db"
    token_secret: str = DEV_TOKEN_SECRET
    token_ttl_seconds: int = 3600
    password_hash_log2_n: int = 14
    cache_ttl_seconds: float = 30.0
    slow_seconds: float = 1.2
    seed_demo_data: bool = True
    pool_size: int = 5
    max_overflow: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (defaults for unset variables).

        Args:
            environ: The environment; ``os.environ`` when ``None``.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        secret = env.get("AUTH_TOKEN_SECRET", "")
        if not secret:
            _logger.warning("AUTH_TOKEN_SECRET is not set: using an insecure development secret")
        return cls(
            database_url=env.get("DATABASE_URL", defaults.database_url),
            token_secret=secret or DEV_TOKEN_SECRET,
            token_ttl_seconds=int(env.get("AUTH_TOKEN_TTL_SECONDS", defaults.token_ttl_seconds)),
            password_hash_log2_n=min(20, max(10, int(env.get("PASSWORD_HASH_LOG2_N", defaults.password_hash_log2_n)))),
            cache_ttl_seconds=float(env.get("CACHE_TTL_SECONDS", defaults.cache_ttl_seconds)),
            slow_seconds=float(env.get("SLOW_SECONDS", defaults.slow_seconds)),
            seed_demo_data=env.get("SEED_DEMO_DATA", "true").strip().lower() in {"1", "true", "yes", "on"},
            pool_size=int(env.get("DB_POOL_SIZE", defaults.pool_size)),
            max_overflow=int(env.get("DB_MAX_OVERFLOW", defaults.max_overflow)),
        )
