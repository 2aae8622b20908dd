"""Picking a free TCP port on the loopback for a new sandbox server."""

from __future__ import annotations

import socket


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def first_free_port(start: int, tries: int = 100) -> int:
    """A new sandbox takes the first free port from ``start``.

    Two checkouts on one machine (a developer's and CI's clone) then get
    separate clusters instead of the second failing to start; the port chosen
    is written into the cluster's config and kept from then on.
    """
    for port in range(start, start + tries):
        if port_free(port):
            return port
    return start
