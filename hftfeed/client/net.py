"""Where a receiver (client, monitor, recorder) listens: ``HOST:PORT`` parsing (IPv4, ``[v6]``), the receive socket with
its buffer read back, and multicast group membership (IPv4 ``ip_mreqn`` by interface address,
IPv6 ``ipv6_mreq`` by interface index)."""

import ipaddress
import logging
import socket
import struct
import sys

from hftfeed.errors import ConfigError

log = logging.getLogger("hftfeed.client")

DEFAULT_RCVBUF_BYTES = 4 * 2 ** 20  # DESIGN.md: 4 MiB socket buffers

def parse_listen(text):
    """"ADDR:PORT" or "[IPv6]:PORT" -> (host, port). Raises ConfigError naming the problem.

    Only IP literals: a name could resolve to another family than the publisher sends to.
    Port 0 asks the kernel for a free port (the start report says which).
    """
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ConfigError("--listen %r: expected [IPv6]:PORT" % (text,))
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError("--listen %r: expected ADDR:PORT (IPv4) or [ADDR]:PORT (IPv6)"
                              % (text,))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("--listen %r: %r is not an IP address" % (text, host)) from None
    if address.version == 6 and not text.startswith("["):
        raise ConfigError("--listen %r: write IPv6 addresses as [ADDR]:PORT" % (text,))
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError("--listen %r: port must be an integer in 0..65535" % (text,))
    return str(address), int(port_text)


def _read_rmem_max():
    """net.core.rmem_max in bytes, or None where /proc does not say (not Linux)."""
    try:
        with open("/proc/sys/net/core/rmem_max") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError) as exc:
        log.debug("cannot read net.core.rmem_max: %s", exc)
        return None


def _set_rcvbuf(sock, rcvbuf_bytes):
    """Ask for SO_RCVBUF, read it back, warn once if the kernel capped it. Returns (actual, capped).

    Linux doubles the requested value for its bookkeeping (socket(7)) and reports the doubled
    size, capped at 2 x net.core.rmem_max; other systems report what they granted.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    expected = 2 * rcvbuf_bytes if sys.platform.startswith("linux") else rcvbuf_bytes
    capped = actual < expected
    if capped:
        rmem_max = _read_rmem_max()
        log.warning("SO_RCVBUF: asked for %d bytes, the kernel granted %d (capped by "
                    "net.core.rmem_max = %s); bursts may be dropped. Raise it with: "
                    "sudo sysctl -w net.core.rmem_max=%d", rcvbuf_bytes, actual,
                    rmem_max if rmem_max is not None else "?", rcvbuf_bytes)
    return actual, capped


def _interface_index(interface):
    """An interface name ("eth0") or index ("2") -> index; None -> 0 (the kernel picks)."""
    if interface is None:
        return 0
    if interface.isdigit():
        return int(interface)
    name_to_index = getattr(socket, "if_nametoindex", None)   # absent on PyPy 7.3.11
    try:
        if name_to_index is not None:
            return name_to_index(interface)
        if "/" in interface or interface in (".", ".."):
            raise OSError("not an interface name")
        with open("/sys/class/net/%s/ifindex" % interface) as handle:   # Linux sysfs
            return int(handle.read().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError("--interface %r: no such network interface (%s)"
                          % (interface, exc)) from None


def _join_group(sock, group, interface):
    """Join multicast ``group`` on ``interface`` (IP literal, name or index; None = any).

    IPv4: IP_ADD_MEMBERSHIP with ``struct ip_mreq`` (group, local address) for an address, or
    ``struct ip_mreqn`` (group, any, ifindex) for a name (ip(7)). IPv6: IPV6_JOIN_GROUP with
    ``struct ipv6_mreq`` (group, ifindex) (ipv6(7)): it needs an interface name or index.
    """
    if group.version == 4:
        local = None
        if interface is not None:
            try:
                local = ipaddress.ip_address(interface)
            except ValueError:
                local = None
        if interface is None or local is not None:
            if local is not None and local.version != 4:
                raise ConfigError("--interface %r: an IPv4 group needs an IPv4 interface address"
                                  % (interface,))
            local_packed = local.packed if local is not None else bytes(4)   # INADDR_ANY
            mreq = struct.pack("=4s4s", group.packed, local_packed)
        else:
            mreq = struct.pack("=4s4si", group.packed, bytes(4), _interface_index(interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    else:
        if interface is not None and ":" in interface:
            raise ConfigError("--interface %r: for an IPv6 group give the interface name or "
                              "index (e.g. eth0), not an address" % (interface,))
        mreq = struct.pack("=16sI", group.packed, _interface_index(interface))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)


def open_udp_socket(host, port, interface=None, rcvbuf_bytes=DEFAULT_RCVBUF_BYTES):
    """Bind a non-blocking UDP socket to ``host:port`` (joining the group if multicast).

    Returns ``(sock, rcvbuf_actual, rcvbuf_capped)``. For a group, the socket is bound to the
    group address itself on Linux (so it does not also receive other groups' traffic on the
    same port) and to the wildcard elsewhere, with SO_REUSEADDR so several monitors can listen.
    """
    address = ipaddress.ip_address(host)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        rcvbuf_actual, rcvbuf_capped = _set_rcvbuf(sock, rcvbuf_bytes)
        if address.is_multicast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if sys.platform.startswith("linux"):
                bind_host = host
            else:
                bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((bind_host, port))
            _join_group(sock, address, interface)
        else:
            sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, rcvbuf_actual, rcvbuf_capped

