"""Ports handed to children are reserved until the child binds them, not merely seen
free: no other process's port-0 bind takes them in between."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from scenarios.processes import free_ports


def test_a_reserved_port_refuses_a_plain_bind_but_takes_a_server_binding_it_with_reuse():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as plain, pytest.raises(OSError) as caught:
            plain.bind(("127.0.0.1", port))
        assert caught.value.errno == errno.EADDRINUSE

    async def serve_all() -> list[int]:
        servers = [await asyncio.start_server(lambda r, w: None, "127.0.0.1", p) for p in ports]
        bound = [s.sockets[0].getsockname()[1] for s in servers]
        for s in servers:
            s.close()
            await s.wait_closed()
        return bound

    assert asyncio.run(serve_all()) == ports


def test_port_zero_binds_and_outgoing_connections_do_not_get_a_reserved_port():
    reserved = set(free_ports(8))
    held: list[socket.socket] = []
    try:
        for i in range(400):
            s = socket.socket()
            held.append(s)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            assert s.getsockname()[1] not in reserved
        server = held[0]
        server.listen(128)
        for _ in range(100):
            c = socket.create_connection(server.getsockname())
            held.append(c)
            assert c.getsockname()[1] not in reserved
            held.append(server.accept()[0])
    finally:
        for s in held:
            s.close()


def test_nothing_listens_on_a_reserved_port_until_a_child_binds_it():
    (port,) = free_ports(1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
