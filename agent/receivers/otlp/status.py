"""Outcome of an export request as OTLP status codes, for gRPC and HTTP alike.

Role: the request core raises :class:`ExportFailure`; the gRPC server turns it
into a status with details, the HTTP server into a status code, headers and a
``google.rpc.Status`` body.

Mapping (``protocols.md`` 1.5 and the collector's ``internal/errors``):

=====================================  ================  =========================
cause                                  gRPC              HTTP
=====================================  ================  =========================
undecodable or invalid data            INVALID_ARGUMENT  400
``PermanentError`` from the pipeline   INVALID_ARGUMENT  400
``ThrottleError`` (queue full, memory  UNAVAILABLE +     503 + ``Retry-After``
limit) and other ``ConsumerError``     RetryInfo
unexpected exception, shutting down    UNAVAILABLE +     503 + ``Retry-After``
                                       RetryInfo
signal without a pipeline              UNIMPLEMENTED     404
body over the size limit               RESOURCE_EXHAUSTED  413
unsupported Content-Encoding           (HTTP only)       415
body not received in time              (HTTP only)       408
=====================================  ================  =========================

Invariants: every retryable refusal carries a retry hint (the error's
``retry_after``, else :data:`DEFAULT_RETRY_AFTER`); ``Retry-After`` is whole
seconds, at least 1; messages are capped at :data:`MAX_MESSAGE` characters and
never contain payload data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from grpc_status import rpc_status

from agent.errors import ConsumerError, PermanentError, ThrottleError, retry_after_of
from agent.pdata import proto

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "ExportFailure",
    "bad_data",
    "body_timeout",
    "from_consumer_error",
    "http_status_of",
    "internal_error",
    "too_large",
    "unavailable",
    "unimplemented",
    "unsupported_encoding",
]

#: Retry hint (seconds) sent with refusals whose error carries none.
DEFAULT_RETRY_AFTER = 1.0
MAX_MESSAGE = 512

_HTTP_BY_CODE = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.ABORTED: 503,
    grpc.StatusCode.OUT_OF_RANGE: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 503,
}


def http_status_of(code: grpc.StatusCode) -> int:
    """The collector's gRPC -> HTTP status mapping (500 for anything else)."""
    return _HTTP_BY_CODE.get(code, 500)


def _cap(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


@dataclass(eq=False)
class ExportFailure(Exception):
    """A request that is not (fully) accepted.

    Attributes:
        code: the gRPC status code.
        message: human-readable reason, safe to send to the client.
        retry_after: seconds the client should wait, for retryable refusals; None otherwise.
        http_status: overrides the code's HTTP mapping (413 for oversized bodies).
    """

    code: grpc.StatusCode
    message: str
    retry_after: float | None = None
    http_status: int | None = None

    def __post_init__(self) -> None:
        self.message = _cap(self.message)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.http_status or http_status_of(self.code)

    @property
    def retry_after_header(self) -> str | None:
        """``Retry-After`` value (whole seconds, >= 1) for retryable refusals."""
        if self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))

    def rpc_status(self) -> Any:
        """The ``google.rpc.Status`` message, with ``RetryInfo`` when retryable."""
        st = proto.RpcStatus(code=self.code.value[0], message=self.message)
        if self.retry_after is not None:
            seconds = max(self.retry_after, 0.0)
            whole = math.floor(seconds)
            info = proto.RetryInfo(retry_delay=duration_pb2.Duration(
                seconds=int(whole), nanos=round((seconds - whole) * 1e9)))
            detail = any_pb2.Any()
            detail.Pack(info)
            st.details.append(detail)
        return st

    def grpc_status(self) -> grpc.Status:
        """A ``grpc.Status`` whose trailers carry ``grpc-status-details-bin``."""
        return rpc_status.to_status(self.rpc_status())


def bad_data(message: str) -> ExportFailure:
    """Undecodable or invalid data: INVALID_ARGUMENT / 400, never retried."""
    return ExportFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


def too_large(message: str) -> ExportFailure:
    """Over the size limit: RESOURCE_EXHAUSTED without RetryInfo / 413, never retried."""
    return ExportFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, message, http_status=413)


def unsupported_encoding(message: str) -> ExportFailure:
    """A Content-Encoding the server does not decode: 415, never retried."""
    return ExportFailure(grpc.StatusCode.INVALID_ARGUMENT, message, http_status=415)


def body_timeout(message: str) -> ExportFailure:
    """The request body did not arrive in time: 408, and the connection is closed."""
    return ExportFailure(grpc.StatusCode.DEADLINE_EXCEEDED, message, http_status=408)


def unimplemented(message: str) -> ExportFailure:
    return ExportFailure(grpc.StatusCode.UNIMPLEMENTED, message)


def unavailable(message: str, retry_after: float = DEFAULT_RETRY_AFTER) -> ExportFailure:
    """A retryable refusal: UNAVAILABLE + RetryInfo / 503 + Retry-After."""
    return ExportFailure(grpc.StatusCode.UNAVAILABLE, message, retry_after=retry_after)


def internal_error() -> ExportFailure:
    """An unexpected exception in the pipeline: retryable, without details."""
    return unavailable("internal error in the collector pipeline; retry later")


def from_consumer_error(err: ConsumerError) -> ExportFailure:
    """Map a pipeline error (``agent.errors``) to the client-visible failure."""
    text = str(err) or type(err).__name__
    if isinstance(err, PermanentError):
        return bad_data(text)
    hint = retry_after_of(err) if isinstance(err, ThrottleError) else 0.0
    return unavailable(text, hint if hint > 0 else DEFAULT_RETRY_AFTER)
