"""Free loopback ports for the servers StreamLake's tests and benchmarks start (never fixed ports)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now. The OS may hand it out again once this returns, so the
    server that takes it must fail loudly if it is taken by then (the local broker does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
