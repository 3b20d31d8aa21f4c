"""The ``otlp`` receiver: lifecycle, and the request core shared by gRPC and HTTP.

Request flow (both transports, one parse per request)::

    accepting? -> signal served? -> decode (protobuf: PData.parse keeps the wire
    bytes; JSON: otlpjson) -> validate (ids; metric points) -> consume_<signal>
    -> Export*ServiceResponse (partial_success when points were dropped)

Invariants:

* A request is handed to the pipeline at most once and only when it has items;
  an empty request is a success without calling the consumer.
* Self-metrics per transport: ``accepted`` on success (items taken), ``refused``
  when the pipeline raised, ``failed`` for undecodable or invalid data (and for
  metric points dropped from an accepted request).
* Unexpected exceptions never escape to the transport: they become a retryable
  UNAVAILABLE/503, and are logged with their traceback (rate limited, no payload).
* After :meth:`OTLPReceiver.stop_accepting`, new requests are refused as
  retryable while requests already past that check finish normally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from agent.component import Host, Settings, Signal
from agent.consumer import consume_fn
from agent.errors import ConsumerError
from agent.pdata import Logs, Metrics, PData, Traces, new_for, otlpjson
from agent.receivers.otlp import status
from agent.receivers.otlp.config import Config
from agent.receivers.otlp.validate import check_logs, check_traces, drop_invalid_points

if TYPE_CHECKING:
    from agent.receivers.otlp.grpc import GRPCServer
    from agent.receivers.otlp.http import HTTPServer
    from agent.telemetry.metrics import ReceiverObs

__all__ = ["ExportCore", "ListenError", "OTLPReceiver"]

#: Longest a stopping receiver waits for in-flight requests (also capped by settings.shutdown_grace / 2).
IN_FLIGHT_GRACE = 5.0
#: While not accepting, a refusal is held up to this long (or until the servers
#: stop) before it is sent, which parks busy clients inside handlers.
HOLD = 0.5
#: On shutdown, with recent traffic: time after stop_accepting for callers'
#: in-flight requests to finish and their next ones to be parked.
CAPTURE = 0.1
#: Between closing the listeners (grpc's GOAWAY) and answering parked refusals.
GOAWAY_DELAY = 0.05
_LOG_EVERY = 60.0


class ListenError(OSError):
    """The receiver could not listen on its endpoint (port taken, bad address, TLS files)."""


class ExportCore:
    """Decodes, validates and forwards export requests; transport independent."""

    def __init__(self, settings: Settings, consumers: Mapping[Signal, object]) -> None:
        self.accepting = True
        #: time.monotonic() of the latest request, set by the servers.
        self.last_request = float("-inf")
        self.parked = 0
        self._closing = asyncio.Event()
        self._refusing_since = 0.0
        self.logger = settings.logger
        self._consume: dict[Signal, Callable[[PData], Awaitable[None]]] = {
            signal: consume_fn(consumer, signal) for signal, consumer in consumers.items()
        }
        self._empty_response = {s: new_for(s).response_class() for s in Signal}
        self._last_log = -_LOG_EVERY
        self._suppressed = 0

    def stop_accepting(self) -> None:
        """From now on :meth:`preflight` refuses (retryable); one way."""
        if self.accepting:
            self.accepting = False
            self._refusing_since = time.monotonic()

    def refusing_for(self) -> float:
        """Seconds since :meth:`stop_accepting` (0 while accepting)."""
        return 0.0 if self.accepting else time.monotonic() - self._refusing_since

    async def hold_refusal(self) -> None:
        """Delay a refusal (not accepting) until the servers stop, at most :data:`HOLD` seconds.

        A client that retries at once is parked here rather than sending a new
        request just when the servers close: at close time its request is in a
        handler and gets a clean UNAVAILABLE/503, and its next one meets a
        closed port. It also slows down clients that ignore retry hints.
        """
        self.parked += 1
        try:
            await asyncio.wait_for(self._closing.wait(), HOLD)
        except TimeoutError:
            pass
        finally:
            self.parked -= 1

    def release_parked(self) -> None:
        """Answer every parked refusal now (the servers are closing)."""
        self._closing.set()

    @property
    def signals(self) -> frozenset[Signal]:
        """The signals with a pipeline."""
        return frozenset(self._consume)

    def preflight(self, signal: Signal) -> None:
        """Refuse before reading the body: shutting down, or no pipeline for the signal."""
        if not self.accepting:
            raise status.unavailable("the collector is shutting down; retry later")
        if signal not in self._consume:
            served = ", ".join(sorted(s.value for s in self._consume)) or "none"
            raise status.unimplemented(
                f"this otlp receiver has no {signal.value} pipeline (it accepts: {served})")

    def decode_protobuf(self, signal: Signal, raw: bytes, obs: ReceiverObs) -> PData:
        """Parse an ``Export*ServiceRequest``, keeping ``raw`` for forwarding.

        Raises:
            ExportFailure: INVALID_ARGUMENT/400 naming the parser's complaint.
        """
        cls = new_for(signal)
        try:
            return cls.parse(raw)
        except (DecodeError, ValueError, RuntimeError) as e:
            obs.failed(signal, 0)
            raise status.bad_data(f"invalid {cls.request_class.DESCRIPTOR.name} protobuf: {_short(e)}")

    def decode_json(self, signal: Signal, body: bytes, obs: ReceiverObs) -> PData:
        """Decode an OTLP/JSON request (see :mod:`agent.pdata.otlpjson`).

        Raises:
            ExportFailure: INVALID_ARGUMENT/400 naming the offending field.
        """
        try:
            return otlpjson.decode(signal, body)
        except otlpjson.OTLPJSONError as e:
            obs.failed(signal, 0)
            raise status.bad_data(f"invalid OTLP/JSON {new_for(signal).request_class.DESCRIPTOR.name}: {e}")

    async def export(self, data: PData, obs: ReceiverObs) -> Any:
        """Validate ``data`` and hand it to the pipeline.

        Returns:
            the ``Export*ServiceResponse`` message (with partial_success when
            metric points were dropped).

        Raises:
            ExportFailure: invalid data, or the pipeline refused it.
        """
        signal = data.signal
        rejected = 0
        reason = ""
        if isinstance(data, Traces):
            problem = check_traces(data)
        elif isinstance(data, Logs):
            problem = check_logs(data)
        else:
            problem = None
            if isinstance(data, Metrics):
                rejected, reason = drop_invalid_points(data)
        if problem is not None:
            obs.failed(signal, data.item_count)
            raise status.bad_data(problem)
        if rejected:
            obs.failed(signal, rejected, count_request=False)
        n = data.item_count
        if n:
            try:
                await self._consume[signal](data)
            except ConsumerError as e:
                obs.refused(signal, n)
                raise status.from_consumer_error(e)
            except asyncio.CancelledError:
                raise
            except Exception:
                obs.refused(signal, n)
                self.log_unexpected(f"the {signal.value} pipeline raised an unexpected exception")
                raise status.internal_error()
        obs.accepted(signal, n)
        if not rejected:
            return self._empty_response[signal]
        response = data.response_class()
        ps = response.partial_success
        if signal is Signal.METRICS:
            ps.rejected_data_points = rejected
        ps.error_message = reason
        return response

    def log_unexpected(self, what: str) -> None:
        """Log the current exception with its traceback, at most once a minute."""
        now = time.monotonic()
        if now - self._last_log < _LOG_EVERY:
            self._suppressed += 1
            return
        suppressed, self._suppressed = self._suppressed, 0
        self._last_log = now
        extra = f" ({suppressed} similar errors suppressed in the last minute)" if suppressed else ""
        self.logger.error("otlp receiver: %s%s", what, extra, exc_info=True)


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class OTLPReceiver:
    """The ``otlp`` receiver: an OTLP/gRPC and/or OTLP/HTTP server feeding consumers.

    Args:
        settings: component settings (id, logger, self-metrics).
        config: the decoded :class:`~agent.receivers.otlp.config.Config`.
        consumers: the next consumer per signal; only these signals are served.
    """

    def __init__(self, settings: Settings, config: Config, consumers: Mapping[Signal, object]) -> None:
        from agent.receivers.otlp.grpc import GRPCServer
        from agent.receivers.otlp.http import HTTPServer

        self.settings = settings
        self.config = config
        self.core = ExportCore(settings, consumers)
        protocols = config.protocols
        grace = min(IN_FLIGHT_GRACE, max(0.0, settings.shutdown_grace / 2))
        self._grpc: GRPCServer | None = None
        self._http: HTTPServer | None = None
        if protocols.grpc is not None:
            self._grpc = GRPCServer(protocols.grpc, self.core, settings.telemetry.receiver(settings.id, "grpc"), grace)
        if protocols.http is not None:
            self._http = HTTPServer(protocols.http, self.core, settings.telemetry.receiver(settings.id, "http"), grace)
        self._started = False
        self._stopped = False

    @property
    def grpc_address(self) -> tuple[str, int] | str | None:
        """Bound (host, port) (or unix path) of the gRPC server, once started."""
        return self._grpc.address if self._grpc is not None else None

    @property
    def http_address(self) -> tuple[str, int] | str | None:
        """Bound (host, port) (or unix path) of the HTTP server, once started."""
        return self._http.address if self._http is not None else None

    async def start(self, host: Host | None = None) -> None:
        """Bind and serve. Raises :class:`ListenError` when an endpoint cannot be used."""
        if self._started:
            return
        self._started = True
        try:
            if self._grpc is not None:
                await self._grpc.start()
            if self._http is not None:
                await self._http.start()
        except BaseException:
            await self._stop_servers()
            raise
        log = self.settings.logger
        if log.isEnabledFor(logging.INFO):
            parts = [f"{name} on {_fmt(addr)}" for name, addr in
                     (("grpc", self.grpc_address), ("http", self.http_address)) if addr is not None]
            log.info("otlp receiver %s serving %s (%s)", self.settings.id, ", ".join(parts),
                     ", ".join(sorted(s.value for s in self.core.signals)) or "no signals")

    async def stop_accepting(self) -> None:
        """New requests get retryable refusals from now on; in-flight ones finish."""
        self.core.stop_accepting()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), close. Idempotent."""
        self.core.stop_accepting()
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        core = self.core
        since = core.refusing_for()
        if since < CAPTURE and time.monotonic() - core.last_request < 1.0:  # clients are active
            await asyncio.sleep(CAPTURE - since)
        stops = [asyncio.ensure_future(s.stop()) for s in (self._grpc, self._http) if s is not None]
        await asyncio.sleep(GOAWAY_DELAY if core.parked else 0)  # listeners close first
        core.release_parked()
        results = await asyncio.gather(*stops, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                self.settings.logger.warning("otlp receiver: error while stopping: %s", r)


def _fmt(addr: tuple[str, int] | str) -> str:
    if isinstance(addr, str):
        return "unix:" + addr
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
