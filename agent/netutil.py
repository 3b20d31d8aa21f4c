"""Small networking helpers shared by the HTTP servers of the sidecar."""

from __future__ import annotations

import errno

from aiohttp import web

__all__ = ["HTTPServer", "parse_endpoint"]


def parse_endpoint(endpoint: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6, ``:port`` for all interfaces).

    Raises:
        ValueError: not a valid endpoint.
    """
    text = endpoint.strip()
    if "://" in text:
        raise ValueError(f"endpoint {endpoint!r} must be host:port, without a scheme")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, ""
    if not port:
        if default_port is None:
            raise ValueError(f"endpoint {endpoint!r} has no port")
        return host or "0.0.0.0", default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"endpoint {endpoint!r} has an invalid port")
    return host or "0.0.0.0", int(port)


class HTTPServer:
    """An aiohttp application bound to one endpoint, with clear bind errors."""

    def __init__(self, app: web.Application, endpoint: str, *, name: str) -> None:
        self.app = app
        self.endpoint = endpoint
        self.name = name
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, ssl_context: object = None) -> None:
        host, port = parse_endpoint(self.endpoint)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)  # type: ignore[arg-type]
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise RuntimeError(f"{self.name}: cannot listen on {self.endpoint}: {why}") from None
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
