"""Client side of the publisher's TCP retransmission service (PROTOCOL.md "Retransmission").

Blocking and bounded on purpose: the subscriber calls :meth:`RetransmitClient.fetch` when it
sees a gap, before it applies the packet that revealed it, so the fetched datagrams go through
the ordinary in-order path. Every wait has a deadline (``timeout_s`` for the whole request); a
failure returns what arrived so far and closes the connection (the next gap reconnects).
"""

import socket
import time

from hftfeed.codecs import wire
from hftfeed.errors import WireError

MAX_DATAGRAM_BYTES = 65507


class RetransmitClient(object):
    def __init__(self, host, port, timeout_s=1.0):
        self.address = (host, port)
        self.timeout_s = timeout_s
        self._sock = None
        self.requests = 0
        self.failures = 0
        self.last_error = None

    def _connect(self, deadline):
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def _read_exact(self, sock, n, deadline):
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("retransmission reply deadline passed")
            sock.settimeout(remaining)
            chunk = sock.recv(n)
            if not chunk:
                raise ConnectionError("retransmission server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def fetch(self, channel, session, first_seq, count):
        """Ask for messages ``first_seq .. first_seq+count-1``; return ``(datagrams, code)``:
        the original datagrams received, and the final reply code (RETRANS_DONE when all of
        them came, a reject code, or -1 when the connection failed or timed out)."""
        self.requests += 1
        deadline = time.monotonic() + self.timeout_s
        datagrams = []
        try:
            sock = self._connect(deadline)
            sock.sendall(wire.pack_retrans_request(channel, session, first_seq, count))
            while True:
                code, length = wire.unpack_retrans_frame(
                    self._read_exact(sock, wire.RETRANS_FRAME.size, deadline))
                if code != wire.RETRANS_OK:
                    if code == wire.RETRANS_LIMIT:
                        self.close()
                    return datagrams, code
                if length > MAX_DATAGRAM_BYTES:
                    raise WireError("retransmitted datagram of %d bytes" % length)
                datagrams.append(self._read_exact(sock, length, deadline))
        except (OSError, WireError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            self.close()
            return datagrams, -1

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
