"""Database models and engine set-up (SQLAlchemy 2.0 ORM; SQLite by default, PostgreSQL via psycopg 3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, Text, create_engine, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from auth_api.security import hash_password
from auth_api.settings import Settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the example's models."""


class User(Base):
    """A registered user."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Base):
    """A post written by a user (used by the N+1 query endpoint)."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    author: Mapped[User] = relationship(back_populates="posts")


def make_engine(settings: Settings) -> Engine:
    """Create the engine for ``settings.database_url``.

    SQLite files use a thread-safe ``QueuePool`` (SQLAlchemy's default for files); PostgreSQL
    (``postgresql+psycopg://``) gets ``pool_size``/``max_overflow`` and pre-ping.

    Args:
        settings: The service settings.
    """
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
        if url.database and url.database != ":memory:":
            kwargs.update(pool_size=settings.pool_size, max_overflow=settings.max_overflow)
    else:
        kwargs.update(pool_size=settings.pool_size, max_overflow=settings.max_overflow, pool_pre_ping=True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory bound to ``engine``."""
    return sessionmaker(bind=engine, expire_on_commit=False)


DEMO_USERS = (
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("alan@example.com", "Alan Turing"),
)


def init_database(engine: Engine, settings: Settings) -> None:
    """Create the tables and, when enabled and the database is empty, demo users with posts.

    Demo users have random passwords nobody knows; they exist for the read endpoints.

    Args:
        engine: The engine.
        settings: The service settings.
    """
    Base.metadata.create_all(engine)
    if not settings.seed_demo_data:
        return
    with make_session_factory(engine)() as session, session.begin():
        if session.scalar(select(func.count()).select_from(User)):
            return
        import secrets  # only needed here

        for email, name in DEMO_USERS:
            user = User(
                email=email,
                full_name=name,
                password_hash=hash_password(secrets.token_urlsafe(16), log2_n=settings.password_hash_log2_n),
            )
            user.posts = [Post(title=f"{name}'s post #{n}", body="Hello.") for n in (1, 2)]
            session.add(user)
