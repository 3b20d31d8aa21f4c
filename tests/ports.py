"""Free loopback ports for test servers.

Ports come from below the kernel's ephemeral range (``ip_local_port_range``),
picked at random and checked bindable: a port from the ephemeral range (what
binding to port 0 returns) can be taken by any outgoing connection between the
check and the server's bind, which made tests flaky under load.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HIGH = max(_LOW + 1000, _ephemeral_low() - 1)
_given: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and was not handed out before in this process."""
    for _ in range(1000):
        port = random.randint(_LOW, _HIGH)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError("no free port found")
