"""Request-context middleware: X-Request-ID / X-Correlation-ID, ids on spans, logs and baggage."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Annotated

import fastapi
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from opentelemetry import baggage, propagate
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import SpanKind

from instrumentation import instrument_app, set_user_id
from instrumentation.context import RequestContextPropagator, get_request_context
from instrumentation.middleware import install_fastapi_hook, uninstall_fastapi_hook
from tests.unit.instrumentation.conftest import Otel, app_logger

LOGGER = "tests.instrumentation.app"


def authenticated() -> str:
    """A *sync* dependency (FastAPI runs it in a thread pool) that authenticates the user."""
    set_user_id("user-42")
    return "user-42"


def add_routes(app: FastAPI) -> None:
    log = logging.getLogger(LOGGER)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, object]:
        log.info("item %s requested", item_id)
        return {"baggage": dict(baggage.get_all()), "outgoing": _outgoing_headers()}

    @app.get("/me")
    def me(user: Annotated[str, Depends(authenticated)]) -> dict[str, object]:
        log.info("profile of %s", user)
        return {"outgoing": _outgoing_headers()}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}


def _outgoing_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@pytest.fixture
def app_logs(otel: Otel, clean_logging: None) -> Iterator[io.StringIO]:
    """JSON lines (buffer) and OTLP records (otel.logs()) of the test app's logger."""
    with app_logger(otel, LOGGER) as buffer:
        yield buffer


@pytest.fixture
def client(otel: Otel, app_logs: io.StringIO) -> Iterator[TestClient]:
    app = FastAPI()
    add_routes(app)
    instrument_app(app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def server_span(otel: Otel, route: str) -> object:
    spans = [s for s in otel.spans() if s.kind is SpanKind.SERVER and (s.attributes or {}).get("http.route") == route]
    assert len(spans) == 1, [s.name for s in otel.spans()]
    return spans[0]


def test_generates_and_echoes_request_id(client: TestClient, otel: Otel) -> None:
    response = client.get("/items/1")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert response.headers["x-correlation-id"] == request_id
    span = server_span(otel, "/items/{item_id}")
    assert span.attributes["request.id"] == request_id  # type: ignore[attr-defined]
    assert span.attributes["correlation.id"] == request_id  # type: ignore[attr-defined]


def test_incoming_ids_are_kept(client: TestClient, otel: Otel) -> None:
    response = client.get("/items/2", headers={"X-Request-ID": "gw-123.abc", "X-Correlation-ID": "order-77"})
    assert response.headers["x-request-id"] == "gw-123.abc"
    assert response.headers["x-correlation-id"] == "order-77"
    span = server_span(otel, "/items/{item_id}")
    assert span.attributes["request.id"] == "gw-123.abc"  # type: ignore[attr-defined]
    assert span.attributes["correlation.id"] == "order-77"  # type: ignore[attr-defined]


def test_unsafe_incoming_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/items/3", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert response.headers["x-request-id"] != "bad id"
    assert len(response.headers["x-request-id"]) == 32


def test_correlation_id_from_incoming_baggage(client: TestClient) -> None:
    response = client.get("/items/4", headers={"baggage": "correlation.id=upstream-9,other=1"})
    assert response.headers["x-correlation-id"] == "upstream-9"


def test_ids_in_baggage_of_outgoing_calls(client: TestClient) -> None:
    body = client.get("/items/5", headers={"X-Request-ID": "r-5", "X-Correlation-ID": "c-5"}).json()
    assert body["baggage"] == {"request.id": "r-5", "correlation.id": "c-5"}
    outgoing = body["outgoing"]
    assert "traceparent" in outgoing
    assert "request.id=r-5" in outgoing["baggage"] and "correlation.id=c-5" in outgoing["baggage"]


def test_user_id_from_a_sync_dependency_reaches_span_logs_and_baggage(
    client: TestClient, otel: Otel, app_logs: io.StringIO
) -> None:
    body = client.get("/me", headers={"X-Request-ID": "r-me"}).json()
    assert "enduser.id=user-42" in body["outgoing"]["baggage"]
    span = server_span(otel, "/me")
    assert span.attributes["enduser.id"] == "user-42"  # type: ignore[attr-defined]
    [json_line] = [json.loads(line) for line in app_logs.getvalue().splitlines()]
    assert json_line["user_id"] == "user-42"
    assert json_line["request_id"] == "r-me"
    assert json_line["trace_id"] == format(span.context.trace_id, "032x")  # type: ignore[attr-defined]
    [record] = otel.logs()
    attrs = dict(record.log_record.attributes or {})
    assert attrs["enduser.id"] == "user-42" and attrs["request.id"] == "r-me"
    assert record.log_record.trace_id == span.context.trace_id  # type: ignore[attr-defined]


def test_ids_on_every_log_record_of_the_request(client: TestClient, otel: Otel, app_logs: io.StringIO) -> None:
    client.get("/items/6", headers={"X-Request-ID": "r-6"})
    client.get("/items/7", headers={"X-Request-ID": "r-7"})
    json_ids = [json.loads(line)["request_id"] for line in app_logs.getvalue().splitlines()]
    assert json_ids == ["r-6", "r-7"]
    assert [dict(r.log_record.attributes or {})["request.id"] for r in otel.logs()] == ["r-6", "r-7"]
    assert get_request_context() is None  # nothing leaks out of the requests


def test_500_responses_still_carry_the_ids(client: TestClient, otel: Otel) -> None:
    response = client.get("/boom", headers={"X-Request-ID": "r-boom"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r-boom"
    span = server_span(otel, "/boom")
    assert span.attributes["request.id"] == "r-boom"  # type: ignore[attr-defined]


def test_health_checks_are_not_traced_but_get_ids(client: TestClient, otel: Otel) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and "x-request-id" in response.headers
    assert not [s for s in otel.spans() if s.kind is SpanKind.SERVER]


def test_instrument_app_wraps_the_global_propagator_once(client: TestClient) -> None:
    assert isinstance(propagate.get_global_textmap(), RequestContextPropagator)
    app = FastAPI()
    instrument_app(app)
    assert not isinstance(propagate.get_global_textmap().inner, RequestContextPropagator)  # type: ignore[attr-defined]


def test_auto_hook_adds_the_middleware_to_apps_created_afterwards(otel: Otel) -> None:
    instrumentor = FastAPIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        assert install_fastapi_hook()
        assert not install_fastapi_hook()  # idempotent
        app = fastapi.FastAPI()  # what `from fastapi import FastAPI` gives application code from now on
        assert isinstance(app, FastAPI)
        add_routes(app)
        with TestClient(app) as test_client:
            response = test_client.get("/items/8", headers={"X-Request-ID": "r-auto"})
        assert response.headers["x-request-id"] == "r-auto"
        span = server_span(otel, "/items/{item_id}")
        assert span.attributes["request.id"] == "r-auto"  # type: ignore[attr-defined]
    finally:
        uninstall_fastapi_hook()
        instrumentor.uninstrument()
    assert fastapi.FastAPI is FastAPI
