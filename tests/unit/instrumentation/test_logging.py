"""JSON log format, record redaction, the OTLP log processor and the logging-config protections."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from instrumentation import logging as sidecar_logging
from instrumentation.context import request_context, set_user_id
from instrumentation.logging import JsonFormatter, RedactingFilter, install_json_logging, install_otlp_log_handler
from instrumentation.redaction import Redactor
from tests.unit.instrumentation.conftest import Otel

SENTINEL = "Sentinel-Pa55word!"
FIELDS = ("timestamp", "level", "logger", "message", "trace_id", "span_id", "request_id", "correlation_id", "user_id")


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger with a JSON handler writing to a buffer."""
    logger = logging.getLogger("tests.instrumentation.json")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter(Redactor()))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_has_all_fields_outside_requests(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_logger
    logger.info("hello %s", "world")
    [line] = lines(buffer)
    assert list(line)[: len(FIELDS)] == list(FIELDS)
    assert line["message"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.instrumentation.json"
    assert str(line["timestamp"]).endswith("Z") and "T" in str(line["timestamp"])
    assert line["trace_id"] is None and line["span_id"] is None and line["request_id"] is None


def test_json_line_carries_trace_and_request_ids(otel: Otel, json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_logger
    tracer = otel.tracer_provider.get_tracer("test")
    with request_context("req-1", "corr-9"), tracer.start_as_current_span("work") as span:
        set_user_id(42)
        logger.warning("inside", extra={"order_id": 7, "password": SENTINEL})
    [line] = lines(buffer)
    ctx = span.get_span_context()
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")
    assert (line["request_id"], line["correlation_id"], line["user_id"]) == ("req-1", "corr-9", "42")
    assert line["order_id"] == 7
    assert line["password"] == "[REDACTED]"


def test_json_line_redacts_message_args_and_exception(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_logger
    logger.info("body %s", {"email": "a@b.io", "password": SENTINEL})
    logger.info("mapping %(password)s and %(user)s", {"password": SENTINEL, "user": "bob"})
    try:
        raise ValueError(f"bad token=abc123 for password={SENTINEL}")
    except ValueError:
        logger.exception("failed")
    text = buffer.getvalue()
    assert SENTINEL not in text
    assert "a@b.io" not in text
    _first, second, third = lines(buffer)
    assert second["message"] == "mapping [REDACTED] and bob"
    assert "ValueError" in str(third["exception"]) and "[REDACTED]" in str(third["exception"])


def test_extra_field_named_like_a_standard_field_is_kept_aside(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_logger
    logger.info("x", extra={"user_id": "from-extra", "color_message": "\x1b[32mx"})
    [line] = lines(buffer)
    assert line["user_id"] is None
    assert line["extra_user_id"] == "from-extra"
    assert "color_message" not in line


def test_redacting_filter_redacts_in_place_once_and_excludes_loggers() -> None:
    filt = RedactingFilter(Redactor(), exclude_loggers=("opentelemetry",))
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "password=%s", (SENTINEL,), None)
    record.secret_token = SENTINEL
    assert filt.filter(record)
    assert record.getMessage() == "password=[REDACTED]" and record.args is None
    assert record.secret_token == "[REDACTED]"
    assert filt.filter(record)  # second pass: unchanged
    assert record.getMessage() == "password=[REDACTED]"
    assert not filt.filter(logging.LogRecord("opentelemetry.sdk", logging.WARNING, __file__, 1, "x", None, None))


def test_otlp_records_carry_ids_trace_context_and_are_redacted(otel: Otel, clean_logging: None) -> None:
    logger = logging.getLogger("tests.instrumentation.otlp")
    logger.setLevel(logging.INFO)
    install_otlp_log_handler(otel.logger_provider, redactor=Redactor(), logger=logger)
    tracer = otel.tracer_provider.get_tracer("test")
    with request_context("req-7") as holder, tracer.start_as_current_span("op") as span:
        holder.user_id = "u-1"
        logger.info("login %s", {"password": SENTINEL}, extra={"api_key": SENTINEL, "attempt": 2})
    logging.getLogger("opentelemetry.sdk.test").warning("not exported")
    [record] = otel.logs()
    lr = record.log_record
    assert lr.body == "login {'password': '[REDACTED]'}"
    assert lr.trace_id == span.get_span_context().trace_id
    assert lr.span_id == span.get_span_context().span_id
    attrs = dict(lr.attributes or {})
    assert attrs["request.id"] == "req-7" and attrs["correlation.id"] == "req-7" and attrs["enduser.id"] == "u-1"
    assert attrs["api_key"] == "[REDACTED]" and attrs["attempt"] == 2
    assert SENTINEL not in repr(record.to_json())


def test_processor_redacts_records_from_the_logs_api(otel: Otel) -> None:
    otel.logger_provider.get_logger("direct").emit(
        body={"msg": "hi", "password": SENTINEL}, attributes={"token": SENTINEL, "note": "mail bob@example.com"}
    )
    [record] = otel.logs()
    assert record.log_record.body == {"msg": "hi", "password": "[REDACTED]"}
    assert dict(record.log_record.attributes or {}) == {"token": "[REDACTED]", "note": "mail [REDACTED_EMAIL]"}


def test_basic_config_keeps_json_and_applies_level(clean_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    root.handlers[:] = []
    handler = install_json_logging(redactor=Redactor())
    logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    assert root.handlers == [handler]
    assert root.level == logging.DEBUG
    logging.getLogger("tests.basic").debug("debug line")
    assert json.loads(capsys.readouterr().out)["message"] == "debug line"


def test_basic_config_force_gives_the_console_to_the_app_but_keeps_otlp(otel: Otel, clean_logging: None) -> None:
    root = logging.getLogger()
    root.handlers[:] = []
    install_json_logging(redactor=Redactor())
    otlp = install_otlp_log_handler(otel.logger_provider, redactor=Redactor())
    logging.basicConfig(force=True, stream=io.StringIO())
    assert sidecar_logging.json_handler() not in root.handlers
    assert otlp in root.handlers
    assert len(root.handlers) == 2


def test_dict_config_adopts_console_only_loggers(clean_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.INFO)
    install_json_logging(redactor=Redactor())
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
        "loggers": {"tests.server": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    server = logging.getLogger("tests.server")
    try:
        assert server.propagate and not server.handlers
        server.info("Started server process")
        assert json.loads(capsys.readouterr().out)["logger"] == "tests.server"
    finally:
        server.handlers[:] = []
        server.propagate = True
        server.setLevel(logging.NOTSET)


def test_json_stdout_handler_follows_sys_stdout(clean_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().handlers[:] = []
    install_json_logging(redactor=Redactor())
    logging.getLogger("tests.stdout").warning("to stdout")
    assert json.loads(capsys.readouterr().out)["message"] == "to stdout"


def test_trace_ids_null_without_a_valid_span(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_logger
    with trace.use_span(trace.INVALID_SPAN):
        logger.info("no span")
    assert lines(buffer)[0]["trace_id"] is None
