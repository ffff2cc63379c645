"""The kit's port picker: distinct ports, each free to listen on."""

from __future__ import annotations

import socket

from fakedocker.kit.hub import free_ports


def test_ports_are_distinct_and_free():
    ports = free_ports(64)
    assert len(set(ports)) == 64
    listeners = []
    try:
        for port in ports:
            s = socket.socket()
            listeners.append(s)
            s.bind(("127.0.0.1", port))
    finally:
        for s in listeners:
            s.close()
