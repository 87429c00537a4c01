"""RFC 6455 WebSocket protocol, sans-I/O, for both roles.

Why sans-I/O: the same framing and close-handshake rules serve the asyncio client (``ws.py``),
the exchange simulator's server and the tests; none of them has to re-implement RFC 6455, and
this module can be fed bytes whole, byte by byte or in odd splits without any socket.

Layers:
- :func:`encode_frame` / :class:`FrameParser`: frames on the wire (RFC 6455 §5.2). Deliberately
  low level: the simulator uses ``encode_frame`` to send broken frames on purpose.
- :class:`Connection`: the state machine after the opening handshake (masking rules §5.1/§5.3,
  fragmentation §5.4, control frames §5.5, UTF-8 §8.1, closing handshake §5.5.1/§7).
- Handshake helpers (§4): pure functions that build and check the HTTP/1.1 upgrade.

Nothing here imports asyncio or socket. Errors are :class:`ProtocolError` (with the close code
we answer with, a :class:`CloseCode`), :class:`MessageTooBig` (1009) and :class:`InvalidHandshake`.

Limits on one message (a hostile peer must not make us buffer without bound): its payload is at
most ``max_message_bytes``; the bytes it occupies on the wire, frame headers included, are
counted against the same limit; and it may be split into at most ``max_message_frames`` frames
(default :func:`default_max_message_frames`: one frame per KiB of ``max_message_bytes``, at
least 1024). Any of them exceeded fails the connection with close code 1009. Without the frame
and header accounting, a message started with ``01 01 5b`` and continued by endless empty
``00 00`` frames never completes, never trips the size limit, and grows a list per frame.
"""

import base64
import hashlib
import os
import struct
from enum import IntEnum

from hftfeed import __version__
from hftfeed.errors import ConnectionClosed, InvalidHandshake, MessageTooBig, ProtocolError

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class CloseCode(IntEnum):
    """Close status codes (RFC 6455 §7.4.1, IANA registry for 1012-1015). IntEnum, so a code
    compares and packs as the int it is on the wire."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005            # reported when a close frame had no code; never sent
    ABNORMAL = 1006             # reported when the stream ended without a close frame; never sent
    INVALID_DATA = 1007         # e.g. a text message that is not UTF-8
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015        # reported only; never sent


MIN_MAX_MESSAGE_FRAMES = 1024


def default_max_message_frames(max_message_bytes: int) -> int:
    """Frames one message may span: one per KiB of the size limit, at least 1024. Real venues
    send a message in one frame (or a few); this bound only stops a peer that fragments
    without end."""
    return max(MIN_MAX_MESSAGE_FRAMES, int(max_message_bytes) // 1024)

CLIENT, SERVER = "client", "server"

STATE_OPEN, STATE_CLOSING, STATE_CLOSED = "open", "closing", "closed"

# RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key before hashing.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CONTROL_PAYLOAD_BYTES = 125          # §5.5
MAX_HEAD_BYTES = 16384                   # bound on an HTTP upgrade head we are willing to buffer

_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
_KNOWN_OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))

# Precompiled structs: the 2/8-byte extended lengths are read on every frame of the hot path.
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_HDR_7 = struct.Struct("!BB")
_HDR_16 = struct.Struct("!BBH")
_HDR_64 = struct.Struct("!BBQ")


# --------------------------------------------------------------------------- frames (§5.2)

class Frame:
    """One wire frame with its payload already unmasked."""

    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload

    def __repr__(self):
        return "Frame(fin=%r, rsv=%r, opcode=%r, payload=%d bytes)" % (
            self.fin, self.rsv, self.opcode, len(self.payload))


def _xor_mask(payload, mask_key):
    """Apply (or remove) a 4-byte mask (§5.3) with one big-int XOR: fast enough off the hot path."""
    n = len(payload)
    if n == 0:
        return b""
    repeated = (bytes(mask_key) * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(n, "big")


def encode_frame(opcode: int, payload, mask_key: bytes = None, fin: bool = True,
                 rsv: int = 0) -> bytes:
    """Encode one frame (§5.2). ``mask_key`` (4 bytes) masks it, as a client must (§5.3).

    No validation beyond what encoding needs: oversized control frames, reserved bits or
    fragments are encoded as asked (the simulator relies on it for fault injection).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload)
    mask_bit = 0x80 if mask_key is not None else 0
    if n < 126:
        header = _HDR_7.pack(b0, mask_bit | n)
    elif n < 65536:
        header = _HDR_16.pack(b0, mask_bit | 126, n)
    else:
        header = _HDR_64.pack(b0, mask_bit | 127, n)
    if mask_key is None:
        return header + bytes(payload)
    if len(mask_key) != 4:
        raise ValueError("mask_key must be 4 bytes")
    return header + bytes(mask_key) + _xor_mask(payload, mask_key)


class FrameParser:
    """Incremental frame decoder.

    Buffering: an immutable ``bytes`` buffer plus a read offset. The common case (the previous
    read was fully consumed) adopts the new read without copying; a partial frame collects the
    following reads in a list and joins them once, when enough bytes are there, so a large
    frame arriving in many reads costs O(n), not O(n^2). Each payload is copied exactly once
    (one slice).
    """

    def __init__(self, expect_masked: bool, max_frame_bytes: int) -> None:
        self.expect_masked = bool(expect_masked)
        self.max_frame_bytes = int(max_frame_bytes)
        self._buf = b""
        self._pos = 0
        self._chunks = []          # reads not yet merged into _buf
        self._chunk_bytes = 0
        self._need = 2             # bytes (from _pos) required before next_frame can progress
        self.last_frame_wire_bytes = 0   # header + payload of the frame next_frame returned last

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if not data:
            return
        if self._pos >= len(self._buf) and not self._chunks:
            self._buf = bytes(data)          # no copy when data is already bytes
            self._pos = 0
            return
        self._chunks.append(bytes(data))
        self._chunk_bytes += len(data)
        if len(self._buf) - self._pos + self._chunk_bytes >= self._need:
            self._merge()

    def _merge(self):
        self._chunks.insert(0, self._buf[self._pos:])
        self._buf = b"".join(self._chunks)
        self._pos = 0
        self._chunks = []
        self._chunk_bytes = 0

    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos + self._chunk_bytes

    def next_frame(self) -> "Frame":
        """Return the next complete :class:`Frame`, or None when more data is needed.

        Header checks run as soon as the header bytes are there (before the payload arrives),
        so an oversized or invalid frame is refused without buffering it.
        """
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail < 2:
            self._need = 2
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        length = b1 & 0x7F
        masked = b1 & 0x80
        # §5.2: RSV1-3 MUST be 0 unless an extension was negotiated (we negotiate none).
        if b0 & 0x70:
            raise ProtocolError("reserved bits set without an extension", CloseCode.PROTOCOL_ERROR)
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolError("unknown opcode %d" % opcode, CloseCode.PROTOCOL_ERROR)
        # §5.1: client-to-server frames are masked, server-to-client frames are not.
        if masked:
            if not self.expect_masked:
                raise ProtocolError("masked frame from a server", CloseCode.PROTOCOL_ERROR)
        elif self.expect_masked:
            raise ProtocolError("unmasked frame from a client", CloseCode.PROTOCOL_ERROR)
        if opcode >= 8:
            # §5.5: control frames are never fragmented and carry at most 125 bytes.
            if not b0 & 0x80:
                raise ProtocolError("fragmented control frame", CloseCode.PROTOCOL_ERROR)
            if length > MAX_CONTROL_PAYLOAD_BYTES:
                raise ProtocolError("control frame payload over 125 bytes", CloseCode.PROTOCOL_ERROR)
        header_bytes = 2
        if length == 126:
            if avail < 4:
                self._need = 4
                return None
            length = _U16.unpack_from(buf, pos + 2)[0]
            header_bytes = 4
        elif length == 127:
            if avail < 10:
                self._need = 10
                return None
            length = _U64.unpack_from(buf, pos + 2)[0]
            # §5.2: the most significant bit of the 64-bit length MUST be 0.
            if length >> 63:
                raise ProtocolError("64-bit payload length with the high bit set", CloseCode.PROTOCOL_ERROR)
            header_bytes = 10
        if length > self.max_frame_bytes:
            raise MessageTooBig("frame of %d bytes over the %d-byte limit" % (length, self.max_frame_bytes))
        if masked:
            header_bytes += 4
        end = pos + header_bytes + length
        if end > len(buf):
            self._need = header_bytes + length
            return None
        start = pos + header_bytes
        payload = buf[start:end]              # the one copy of the payload
        if masked:
            payload = _xor_mask(payload, buf[start - 4:start])
        self.last_frame_wire_bytes = end - pos
        self._pos = end
        self._need = 2
        return Frame(b0 >> 7 == 1, 0, opcode, payload)


# --------------------------------------------------------------------------- events

class Message:
    """A complete data message. ``text`` is the decoded str for text messages, else None."""

    __slots__ = ("opcode", "payload", "text")

    def __init__(self, opcode, payload, text=None):
        self.opcode = opcode
        self.payload = payload
        self.text = text

    def __repr__(self):
        return "Message(opcode=%r, %d bytes)" % (self.opcode, len(self.payload))


class Ping:
    """A ping from the peer (the pong is already queued unless auto_pong is off)."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload

    def __repr__(self):
        return "Ping(%r)" % (self.payload,)


class Pong:
    """A pong from the peer."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload

    def __repr__(self):
        return "Pong(%r)" % (self.payload,)


class Close:
    """The peer closed (close frame), or the stream ended without one (code 1006)."""

    __slots__ = ("code", "reason")

    def __init__(self, code, reason=""):
        self.code = code
        self.reason = reason

    def __repr__(self):
        return "Close(%r, %r)" % (self.code, self.reason)


# --------------------------------------------------------------------------- close codes (§7.4)

def is_valid_close_code(code: int) -> bool:
    """True when ``code`` may appear in a close frame on the wire (§7.4.1, §7.4.2).

    1005, 1006 and 1015 are reserved for reporting and MUST NOT be sent; 1004 is reserved;
    1016-2999 are reserved for future RFCs; 3000-4999 belong to libraries and applications.
    1012-1014 are IANA-registered (service restart, try again later, bad gateway).
    """
    if CloseCode.NORMAL <= code <= CloseCode.UNSUPPORTED_DATA \
            or CloseCode.INVALID_DATA <= code <= CloseCode.BAD_GATEWAY:
        return True
    return 3000 <= code <= 4999


def encode_close_payload(code: int, reason: str = "") -> bytes:
    """Close frame payload (§5.5.1): 2-byte code + UTF-8 reason; code None -> empty payload."""
    if code is None:
        return b""
    reason_bytes = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
    if len(reason_bytes) > MAX_CONTROL_PAYLOAD_BYTES - 2:
        raise ValueError("close reason longer than 123 bytes")
    return _U16.pack(code) + reason_bytes


def parse_close_payload(payload: bytes) -> tuple:
    """Return (code, reason) from a close frame payload, validating it (§5.5.1, §7.4, §8.1)."""
    if not payload:
        return CloseCode.NO_STATUS, ""        # §7.1.5: no status code present
    if len(payload) == 1:
        raise ProtocolError("close payload of 1 byte", CloseCode.PROTOCOL_ERROR)
    code = _U16.unpack_from(payload, 0)[0]
    if not is_valid_close_code(code):
        raise ProtocolError("invalid close code %d" % code, CloseCode.PROTOCOL_ERROR)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8", CloseCode.INVALID_DATA) from None
    return code, reason


# --------------------------------------------------------------------------- connection

class Connection:
    """RFC 6455 state machine after the opening handshake, for one role.

    ``receive_data(bytes)`` returns events (:class:`Message`, :class:`Ping`, :class:`Pong`,
    :class:`Close`); ``data_to_send()`` drains the bytes to write. On a protocol violation the
    matching close frame is queued before the :class:`ProtocolError` is raised (fail the
    connection, §7.1.7); events decoded earlier in the same call are attached as ``exc.events``.

    ``auto_pong`` (default True) queues the pong for every ping (§5.5.2). A driver that must
    rate-limit its outgoing frames (ws.py) turns it off and calls :meth:`send_pong` itself.
    """

    def __init__(self, role: str, max_message_bytes: int = 16 * 2**20,
                 mask_key_source=os.urandom, auto_pong: bool = True,
                 max_message_frames: int = None) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError("role must be CLIENT or SERVER")
        self.role = role
        self.max_message_bytes = int(max_message_bytes)
        self.max_message_frames = int(max_message_frames) if max_message_frames is not None \
            else default_max_message_frames(max_message_bytes)
        self.auto_pong = auto_pong
        self._mask_key_source = mask_key_source
        self._is_client = role == CLIENT
        # §5.1: a server expects masked frames, a client unmasked ones.
        self._parser = FrameParser(expect_masked=not self._is_client, max_frame_bytes=max_message_bytes)
        self._out = []
        self.state = STATE_OPEN
        self.close_code = None
        self.close_reason = ""
        self.close_sent = False
        self.close_received = False
        self._frag_opcode = None        # opcode of the fragmented message in progress, or None
        self._frag_parts = []
        self._frag_bytes = 0            # payload bytes of that message so far
        self._frag_wire_bytes = 0       # ... and what its frames took on the wire, headers included
        self._frag_frames = 0
        self.frames_in = 0
        self.messages_in = 0
        self.pings_in = 0
        self.pongs_in = 0
        self.pongs_out = 0
        self.bytes_in = 0

    # ---- receiving

    def receive_data(self, data: bytes) -> list:
        """Feed received bytes; ``data == b""`` means EOF. Returns a list of events.

        EOF before a close frame yields ``Close(1006, "")`` (§7.1.5: abnormal closure).
        """
        events = []
        if not data:
            if self.state != STATE_CLOSED:
                self.state = STATE_CLOSED
                self.close_code = CloseCode.ABNORMAL
                self.close_reason = ""
                events.append(Close(CloseCode.ABNORMAL, ""))
            return events
        if self.close_received or self.state == STATE_CLOSED:
            return events                     # §5.5.1: nothing follows a close frame
        self.bytes_in += len(data)
        parser = self._parser
        parser.feed(data)
        try:
            while True:
                frame = parser.next_frame()
                if frame is None:
                    break
                self.frames_in += 1
                opcode = frame.opcode
                if opcode == OP_TEXT and frame.fin and self._frag_opcode is None:
                    # Hot path: a whole text message in one frame; decode once (§8.1).
                    try:
                        text = frame.payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("text message is not valid UTF-8", CloseCode.INVALID_DATA) from None
                    self.messages_in += 1
                    events.append(Message(OP_TEXT, frame.payload, text))
                    continue
                event = self._handle_frame(frame)
                if event is not None:
                    events.append(event)
                    if self.close_received:
                        break
        except ProtocolError as exc:
            self._fail(exc)
            exc.events = events
            raise
        return events

    def _handle_frame(self, frame):
        opcode = frame.opcode
        if opcode == OP_PING:
            self.pings_in += 1
            if self.auto_pong and not self.close_sent:
                self.send_pong(frame.payload)     # §5.5.2: same application data
            return Ping(frame.payload)
        if opcode == OP_PONG:
            self.pongs_in += 1
            return Pong(frame.payload)
        if opcode == OP_CLOSE:
            return self._on_close_frame(frame.payload)
        return self._on_data_frame(frame)

    def _on_data_frame(self, frame):
        """Fragmentation rules (§5.4): CONT continues, TEXT/BINARY start, fin ends."""
        opcode = frame.opcode
        if opcode == OP_CONT:
            if self._frag_opcode is None:
                raise ProtocolError("continuation frame without a message start", CloseCode.PROTOCOL_ERROR)
        elif self._frag_opcode is not None:
            raise ProtocolError("new data frame inside a fragmented message", CloseCode.PROTOCOL_ERROR)
        else:
            if frame.fin:
                return self._message(opcode, frame.payload)
            self._frag_opcode = opcode
            self._frag_parts = []
            self._frag_bytes = 0
            self._frag_wire_bytes = 0
            self._frag_frames = 0
        self._frag_frames += 1
        self._frag_bytes += len(frame.payload)
        self._frag_wire_bytes += self._parser.last_frame_wire_bytes
        if self._frag_bytes > self.max_message_bytes \
                or self._frag_wire_bytes > self.max_message_bytes:
            raise MessageTooBig("message of over %d bytes (%d frames so far)"
                                % (self.max_message_bytes, self._frag_frames))
        if self._frag_frames > self.max_message_frames:
            raise MessageTooBig("message in over %d frames (%d payload bytes so far)"
                                % (self.max_message_frames, self._frag_bytes))
        if frame.payload:
            self._frag_parts.append(frame.payload)
        if not frame.fin:
            return None
        payload = b"".join(self._frag_parts)
        opcode = self._frag_opcode
        self._frag_opcode = None
        self._frag_parts = []
        self._frag_bytes = 0
        self._frag_wire_bytes = 0
        self._frag_frames = 0
        return self._message(opcode, payload)

    def _message(self, opcode, payload):
        text = None
        if opcode == OP_TEXT:
            try:
                text = payload.decode("utf-8")        # §8.1: invalid UTF-8 fails the connection
            except UnicodeDecodeError:
                raise ProtocolError("text message is not valid UTF-8", CloseCode.INVALID_DATA) from None
        self.messages_in += 1
        return Message(opcode, payload, text)

    def _on_close_frame(self, payload):
        code, reason = parse_close_payload(payload)
        self.close_received = True
        self.close_code = code
        self.close_reason = reason
        if not self.close_sent:
            # §5.5.1: answer with a close frame, echoing the status code (none if none was sent).
            self._queue_close(None if code == CloseCode.NO_STATUS else code, "")
        self.state = STATE_CLOSED
        return Close(code, reason)

    def _fail(self, exc):
        """§7.1.7 Fail the WebSocket Connection: send our close frame (if not yet sent), stop."""
        if not self.close_sent:
            self._queue_close(exc.close_code, "")
        self.close_code = exc.close_code
        self.close_reason = str(exc)[:100]
        self.state = STATE_CLOSED

    # ---- sending

    def data_to_send(self) -> bytes:
        """Drain and return the bytes queued for the peer (b"" when nothing is pending)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def _frame(self, opcode, payload):
        # §5.3: a client masks every frame with a fresh, unpredictable 4-byte key.
        if self._is_client:
            return encode_frame(opcode, payload, self._mask_key_source(4))
        return encode_frame(opcode, payload)

    def _check_can_send(self):
        if self.close_sent or self.state == STATE_CLOSED:
            raise ConnectionClosed("cannot send after the close handshake started",
                                   code=self.close_code or CloseCode.ABNORMAL, reason=self.close_reason)

    def send_text(self, text) -> None:
        """Queue a text message. ``text`` is a str, or bytes the caller guarantees are UTF-8."""
        self._check_can_send()
        payload = text.encode("utf-8") if isinstance(text, str) else text
        self._out.append(self._frame(OP_TEXT, payload))

    def send_binary(self, data: bytes) -> None:
        """Queue a binary message."""
        self._check_can_send()
        self._out.append(self._frame(OP_BINARY, data))

    def send_ping(self, payload: bytes = b"") -> None:
        """Queue a ping (at most 125 bytes, §5.5)."""
        self._check_can_send()
        if len(payload) > MAX_CONTROL_PAYLOAD_BYTES:
            raise ValueError("ping payload over 125 bytes")
        self._out.append(self._frame(OP_PING, payload))

    def send_pong(self, payload: bytes = b"") -> None:
        """Queue a pong (at most 125 bytes, §5.5)."""
        self._check_can_send()
        if len(payload) > MAX_CONTROL_PAYLOAD_BYTES:
            raise ValueError("pong payload over 125 bytes")
        self.pongs_out += 1
        self._out.append(self._frame(OP_PONG, payload))

    def send_close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (§5.5.1). A second call is a no-op; nothing follows it."""
        if self.close_sent or self.state == STATE_CLOSED:
            return
        if code is not None and not is_valid_close_code(code):
            raise ValueError("close code %r may not be sent (RFC 6455 §7.4)" % (code,))
        self._queue_close(code, reason)
        self.state = STATE_CLOSING

    def _queue_close(self, code, reason):
        self._out.append(self._frame(OP_CLOSE, encode_close_payload(code, reason)))
        self.close_sent = True


# --------------------------------------------------------------------------- handshake (§4)

def make_client_key(rand=os.urandom) -> str:
    """Sec-WebSocket-Key: base64 of 16 random bytes (§4.1, item 7)."""
    return base64.b64encode(rand(16)).decode("ascii")


def accept_key(client_key: str) -> str:
    """Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) (§4.2.2, item 5.4)."""
    digest = hashlib.sha1((client_key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def host_header(host: str, port: int, secure: bool) -> str:
    """Host header value (§4.1 item 4): brackets around IPv6 literals, port only when non-default."""
    if ":" in host and not host.startswith("["):
        host = "[" + host + "]"
    default_port = 443 if secure else 80
    if port is None or port == default_port:
        return host
    return "%s:%d" % (host, port)


def _header_lines(headers):
    lines = []
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in str(value) or "\n" in str(value):
            raise ValueError("header contains CR or LF")
        lines.append("%s: %s\r\n" % (name, value))
    return "".join(lines)


def build_client_request(host: str, path: str, key: str, extra_headers=()) -> bytes:
    """Opening handshake request (§4.1). ``host`` is the Host value, with the port when non-default."""
    if not path.startswith("/"):
        path = "/" + path
    head = (
        "GET %s HTTP/1.1\r\n"
        "Host: %s\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "User-Agent: hftfeed/%s\r\n" % (path, host, key, __version__)
    )
    return (head + _header_lines(extra_headers) + "\r\n").encode("latin-1")


def parse_http_head(buf: bytes, max_head_bytes: int = MAX_HEAD_BYTES) -> tuple:
    """Find the end of an HTTP head (CRLFCRLF). Returns (head_bytes, consumed) or None.

    ``head_bytes`` excludes the blank line; ``consumed`` includes it, so ``buf[consumed:]``
    is the first data after the head (frames may follow a 101 in the same read).
    """
    end = bytes(buf[:max_head_bytes + 4]).find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > max_head_bytes:
            raise InvalidHandshake("HTTP head longer than %d bytes" % max_head_bytes)
        return None
    return bytes(buf[:end]), end + 4


def _parse_head_lines(head_bytes):
    """Split a head into (start_line, headers dict with lowercase names). Repeats join with ", "."""
    try:
        text = bytes(head_bytes).decode("latin-1")
    except (TypeError, ValueError) as exc:
        raise InvalidHandshake("undecodable HTTP head: %s" % exc) from None
    lines = text.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise InvalidHandshake("obsolete header line folding")
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or name != name.strip() or " " in name:
            raise InvalidHandshake("malformed header line %r" % line[:80])
        value = value.strip()
        if name in headers:
            headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value
    return lines[0], headers


def _has_token(value, token):
    return any(part.strip().lower() == token for part in value.split(","))


def check_server_response(head_bytes: bytes, client_key: str) -> None:
    """Validate the server's handshake response (§4.1, the client's checks 1-4); else InvalidHandshake."""
    status_line, headers = _parse_head_lines(head_bytes)
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise InvalidHandshake("malformed status line %r" % status_line[:80])
    if parts[1] != "101":
        raise InvalidHandshake("server answered %s instead of 101" % status_line[:80])
    if headers.get("upgrade", "").lower() != "websocket":
        raise InvalidHandshake("missing or wrong Upgrade header")
    if not _has_token(headers.get("connection", ""), "upgrade"):
        raise InvalidHandshake("Connection header does not contain Upgrade")
    if headers.get("sec-websocket-accept", "") != accept_key(client_key):
        raise InvalidHandshake("wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions"):
        # §4.1 item 5: extensions we did not ask for fail the handshake.
        raise InvalidHandshake("server selected an extension we did not offer")


def parse_client_request(head_bytes: bytes) -> tuple:
    """Validate an opening handshake request (§4.2.1). Returns (path, headers lowercase dict)."""
    request_line, headers = _parse_head_lines(head_bytes)
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise InvalidHandshake("malformed request line %r" % request_line[:80])
    method, path, version = parts
    if method != "GET":
        raise InvalidHandshake("method %s is not GET" % method)
    if version != "HTTP/1.1":
        raise InvalidHandshake("version %s is not HTTP/1.1" % version)
    if "host" not in headers:
        raise InvalidHandshake("missing Host header")
    if not _has_token(headers.get("upgrade", ""), "websocket"):
        raise InvalidHandshake("missing or wrong Upgrade header")
    if not _has_token(headers.get("connection", ""), "upgrade"):
        raise InvalidHandshake("Connection header does not contain Upgrade")
    key = headers.get("sec-websocket-key", "")
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise InvalidHandshake("Sec-WebSocket-Key is not base64 of 16 bytes")
    if headers.get("sec-websocket-version", "") != "13":
        raise InvalidHandshake("unsupported Sec-WebSocket-Version")
    return path, headers


def build_server_response(client_key: str, extra_headers=()) -> bytes:
    """101 Switching Protocols answer to a valid request (§4.2.2 item 5)."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n" % accept_key(client_key)
    )
    return (head + _header_lines(extra_headers) + "\r\n").encode("latin-1")


def build_rejection(status: int, reason: str, body: bytes = b"", extra_headers=()) -> bytes:
    """A plain HTTP error response that refuses the upgrade (e.g. 400, 404, 429), then close."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = (
        "HTTP/1.1 %d %s\r\n"
        "Content-Length: %d\r\n"
        "Connection: close\r\n" % (status, reason, len(body))
    )
    if status == 426:
        head += "Sec-WebSocket-Version: 13\r\n"    # §4.4: tell the client which version we speak
    return (head + _header_lines(extra_headers) + "\r\n").encode("latin-1") + body
