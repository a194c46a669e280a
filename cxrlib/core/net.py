"""The local services the project starts (the app, a model server, Orthanc) listen on free
loopback ports."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on now on the loopback interface (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
