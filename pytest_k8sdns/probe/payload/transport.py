"""DNS over sockets for the payload's two servers (forwarder.py's capture, serve.py): the UDP and TCP
listeners on one address and port, and RFC 1035 4.2.2's length-prefixed TCP messages."""

from __future__ import annotations

import socket
import struct

from .common import ProbeFailure


def listen(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """(udp, tcp) sockets bound to address:port, non-blocking, TCP listening; ProbeFailure with the fix
    when the pod may not bind the port."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.bind((address, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, port))
        tcp.listen(16)
    except OSError as exc:
        udp.close()
        tcp.close()
        raise ProbeFailure(
            f"cannot listen on {address}:{port} ({exc.strerror or exc}); give the pod securityContext sysctl "
            "net.ipv4.ip_unprivileged_port_start=0 or run it as root"
        ) from exc
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Exactly n bytes, or None when the peer closed first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def recv_message(sock: socket.socket) -> bytes | None:
    """One DNS message behind its two-byte length, or None when the peer closed."""
    header = recv_exact(sock, 2)
    return recv_exact(sock, struct.unpack("!H", header)[0]) if header else None


def framed(wire: bytes) -> bytes:
    """A DNS message with its two-byte length, as TCP carries it."""
    return struct.pack("!H", len(wire)) + wire
