"""The example authentication API.

Endpoints:

=================================  =============================================================
``POST /register``                 create a user (201; 409 for a taken e-mail; 422 invalid input)
``POST /login``                    exchange e-mail and password for a bearer token (401 on failure)
``GET /users/me``                  the authenticated user (bearer token)
``GET /users/{user_id}/cached``    a user's public profile through a TTL cache (404 unknown id)
``GET /users/posts-n-plus-one``    users and their post counts, with one query per user (N+1)
``GET /slow``                      sleeps ``SLOW_SECONDS`` (1.2 s by default)
``GET /healthz``                   liveness; not traced (excluded by the sidecar distro)
=================================  =============================================================

Observability comes from ``opentelemetry-instrument`` with the otel-sidecar distro; the code only
logs with the standard :mod:`logging` module and calls :mod:`instrumentation`'s ``set_user_id``
and business-metric helpers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth_api.cache import TTLCache
from auth_api.db import Post, User, init_database, make_engine, make_session_factory
from auth_api.security import hash_password, issue_token, verify_password, verify_token
from auth_api.settings import Settings
from instrumentation import record_login_attempt, record_registration, set_user_id

logger = logging.getLogger("auth_api")

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class RegisterRequest(BaseModel):
    """Body of ``POST /register``."""

    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    password: str = Field(min_length=8, max_length=256)
    full_name: str | None = Field(default=None, max_length=200)


class LoginRequest(BaseModel):
    """Body of ``POST /login``."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class UserOut(BaseModel):
    """A user as returned to its owner."""

    id: int
    email: str
    full_name: str | None
    created_at: datetime


class PublicUserOut(BaseModel):
    """A user's public profile."""

    id: int
    full_name: str | None
    created_at: datetime


class TokenOut(BaseModel):
    """Body of a successful ``POST /login``."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


def get_session(request: Request) -> Iterator[Session]:
    """Yield a database session for one request."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
bearer = HTTPBearer(auto_error=False)


def current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """Return the user of the request's bearer token (401 when missing or invalid) and record it."""
    settings: Settings = request.app.state.settings
    user_id = verify_token(credentials.credentials, settings.token_secret) if credentials else None
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        logger.info("Rejected request with a missing or invalid token")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or missing token", {"WWW-Authenticate": "Bearer"})
    set_user_id(user.id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application.

    Args:
        settings: The settings; read from the environment when ``None``.
    """
    settings = Settings.from_env() if settings is None else settings
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    user_cache: TTLCache[int, PublicUserOut] = TTLCache("users", settings.cache_ttl_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(init_database, engine, settings)
        logger.info("auth_api started", extra={"database": settings.database_url})
        yield
        engine.dispose()

    app = FastAPI(title="auth_api", version="1.0.0", lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    app.state.user_cache = user_cache
    app.state.sessions = sessions

    @app.post("/register", status_code=status.HTTP_201_CREATED)
    def register(body: RegisterRequest, session: SessionDep) -> UserOut:
        # Deliberately naive: the whole payload, password included, goes to the log. The
        # sidecar distro redacts it before it is written or exported.
        logger.info("Registration request received", extra={"payload": body.model_dump()})
        user = User(
            email=body.email.lower(),
            full_name=body.full_name,
            password_hash=hash_password(body.password, log2_n=settings.password_hash_log2_n),
        )
        user.posts = [Post(title="Hello", body=f"{body.full_name or 'A new user'} joined.")]
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            record_registration("failure")
            logger.warning("Registration refused: %s is already registered", body.email)
            raise HTTPException(status.HTTP_409_CONFLICT, "email already registered") from None
        record_registration("success")
        logger.info("User %s registered", user.id)
        return UserOut.model_validate(user, from_attributes=True)

    @app.post("/login")
    def login(body: LoginRequest, session: SessionDep) -> TokenOut:
        user = session.scalar(select(User).where(User.email == body.email.lower()))
        if user is None or not verify_password(body.password, user.password_hash):
            record_login_attempt("failure", "password")
            logger.warning("Login failed for %s: %s", body.email, "unknown user" if user is None else "wrong password")
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid credentials")
        set_user_id(user.id)
        record_login_attempt("success", "password")
        logger.info("Login succeeded")
        token = issue_token(user.id, settings.token_secret, settings.token_ttl_seconds)
        return TokenOut(access_token=token, expires_in=settings.token_ttl_seconds)

    @app.get("/users/me")
    def me(user: CurrentUser) -> UserOut:
        logger.info("Profile requested")
        return UserOut.model_validate(user, from_attributes=True)

    @app.get("/users/posts-n-plus-one")
    def posts_n_plus_one(session: SessionDep, limit: int = 20) -> list[dict[str, Any]]:
        users = session.scalars(select(User).order_by(User.id).limit(max(1, min(limit, 100)))).all()
        result = []
        for user in users:  # one query per user: the N+1 pattern this endpoint exists to show
            posts = session.scalars(select(Post).where(Post.user_id == user.id)).all()
            result.append({"user_id": user.id, "posts": len(posts)})
        logger.info("Listed %d users with one posts query each", len(users))
        return result

    @app.get("/users/{user_id}/cached")
    def cached_user(user_id: int, session: SessionDep) -> PublicUserOut:
        cached = user_cache.get(user_id)
        if cached is not None:
            return cached
        user = session.get(User, user_id)
        if user is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
        profile = PublicUserOut.model_validate(user, from_attributes=True)
        user_cache.put(user_id, profile)
        return profile

    @app.get("/slow")
    async def slow() -> dict[str, float]:
        await asyncio.sleep(settings.slow_seconds)
        return {"slept_seconds": settings.slow_seconds}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
