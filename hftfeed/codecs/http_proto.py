"""HTTP/1.1 client messages, sans-I/O: build a GET, parse responses (RFC 9112 / RFC 9110).

Why hand-written and not ``http.client``: the REST snapshot fetch shares the event loop with
the hot path, so it must never block; and a pure parser is testable byte by byte, like the
WebSocket core. Scope is what a market-data REST client needs: GET, Content-Length,
chunked (with trailers) and read-until-close bodies, keep-alive, Retry-After.
"""

import email.utils
import time

from hftfeed import __version__
from hftfeed.errors import HttpError

MAX_CHUNK_LINE_BYTES = 4096            # a chunk-size line (with extensions) longer than this is hostile
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

# Parser states
_HEAD, _BODY_LENGTH, _BODY_CHUNK_SIZE, _BODY_CHUNK_DATA, _BODY_CHUNK_CRLF, _TRAILERS, _BODY_EOF = range(7)


def build_get_request(host, path_and_query, headers=()):
    """A GET request head (RFC 9112 §3). ``host`` is the Host value (port included when non-default)."""
    if not path_and_query.startswith("/"):
        raise ValueError("request target must start with '/'")
    for ch in " \r\n\t":
        if ch in path_and_query or ch in host:
            raise ValueError("whitespace or CR/LF in request target or host")
    lines = [
        "GET %s HTTP/1.1\r\n" % path_and_query,
        "Host: %s\r\n" % host,
        "User-Agent: hftfeed/%s\r\n" % __version__,
        "Accept-Encoding: identity\r\n",        # we do not decompress: ask for the plain body
        "Connection: keep-alive\r\n",
    ]
    for name, value in headers:
        value = str(value)
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise ValueError("bad header %r" % (name,))
        lines.append("%s: %s\r\n" % (name, value))
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class Response:
    """A complete response. ``headers``: lowercase names -> str (repeated fields joined by ", ")."""

    __slots__ = ("status", "reason", "headers", "body", "keep_alive", "version")

    def __init__(self, status, reason, headers, body, keep_alive, version="HTTP/1.1"):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.version = version

    def __repr__(self):
        return "Response(%d %s, %d bytes)" % (self.status, self.reason, len(self.body))


def _ascii_digits(text):
    """str.isdigit() also accepts '¹' or Arabic-Indic digits, which int() may reject or read;
    HTTP numbers are ASCII digits only (RFC 9110 §5.6.1 DIGIT)."""
    return text.isdigit() and text.isascii()


def _parse_status_line(line):
    """``HTTP/1.x SP 3DIGIT SP [reason]`` (RFC 9112 §4); the reason may be empty."""
    version, sep, rest = line.partition(" ")
    if not sep or version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError("malformed status line %r" % line[:80])
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not _ascii_digits(code) or not "100" <= code <= "599":
        raise HttpError("malformed status code in %r" % line[:80])
    return version, int(code), reason.strip()


def _parse_header_lines(lines, headers):
    """Add header fields to ``headers`` (RFC 9112 §5): no obs-fold, no space before the colon."""
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            raise HttpError("obsolete line folding in header")
        name, sep, value = line.partition(":")
        if not sep or not name or any(c not in _TOKEN_CHARS for c in name):
            raise HttpError("malformed header line %r" % line[:80])
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise HttpError("conflicting Content-Length values")     # RFC 9112 §6.3 item 5
            if name != "content-length":
                headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value


def _has_token(value, token):
    return any(part.strip().lower() == token for part in value.split(","))


class ResponseParser:
    """Incremental response parser for one connection; ``feed(b"")`` signals EOF.

    ``next_response()`` returns a :class:`Response` or None (need more data) and raises
    :class:`HttpError` for anything malformed, too large, or cut short by EOF. Interim 1xx
    responses are skipped. Responses follow each other on a keep-alive connection.
    """

    def __init__(self, max_body_bytes, max_head_bytes=65536):
        self.max_body_bytes = int(max_body_bytes)
        self.max_head_bytes = int(max_head_bytes)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self.bytes_in = 0
        self._reset()

    def _reset(self):
        self._state = _HEAD
        self._status = None
        self._reason = ""
        self._version = ""
        self._headers = {}
        self._remaining = 0               # bytes left in the Content-Length body or current chunk
        self._parts = []
        self._body_bytes = 0
        self._keep_alive = True

    def feed(self, data):
        """Append received bytes; an empty ``data`` means the peer closed the connection."""
        if not data:
            self._eof = True
            return
        self.bytes_in += len(data)
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[:self._pos]     # compact only when at least half is consumed: amortised O(n)
            self._pos = 0
        self._buf += data

    def buffered_bytes(self):
        """Received bytes not part of a returned response yet."""
        return len(self._buf) - self._pos

    def at_response_start(self):
        """True when no byte of the next response has been received."""
        return self._state == _HEAD and self.buffered_bytes() == 0

    def next_response(self):
        """Return the next complete Response, or None when more data is needed."""
        while True:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return self._need_more("response head")
                continue
            if state == _BODY_LENGTH:
                if not self._read_length_body():
                    return self._need_more("body")
            elif state == _BODY_EOF:
                if not self._read_until_close():
                    return None
            elif state == _BODY_CHUNK_SIZE:
                if not self._read_chunk_size():
                    return self._need_more("chunk size")
                continue
            elif state == _BODY_CHUNK_DATA:
                if not self._read_chunk_data():
                    return self._need_more("chunk data")
                continue
            elif state == _BODY_CHUNK_CRLF:
                if not self._read_chunk_crlf():
                    return self._need_more("chunk terminator")
                continue
            elif state == _TRAILERS:
                if not self._read_trailers():
                    return self._need_more("trailers")
            response = self._finish()
            if response is not None:
                return response

    def _need_more(self, what):
        if self._eof:
            if self._state == _HEAD and self.buffered_bytes() == 0:
                raise HttpError("connection closed before a response")
            raise HttpError("connection closed in the middle of the %s" % what)
        return None

    # ---- head

    def _read_head(self):
        buf = self._buf
        end = buf.find(b"\r\n\r\n", self._pos)
        if end < 0:
            if len(buf) - self._pos > self.max_head_bytes:
                raise HttpError("response head over %d bytes" % self.max_head_bytes)
            return False
        if end - self._pos > self.max_head_bytes:
            raise HttpError("response head over %d bytes" % self.max_head_bytes)
        lines = bytes(buf[self._pos:end]).decode("latin-1").split("\r\n")
        self._pos = end + 4
        version, status, reason = _parse_status_line(lines[0])
        headers = {}
        _parse_header_lines(lines[1:], headers)
        self._version, self._status, self._reason, self._headers = version, status, reason, headers
        self._keep_alive = self._decide_keep_alive(version, headers)
        self._choose_body_framing(status, headers)
        return True

    @staticmethod
    def _decide_keep_alive(version, headers):
        # RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        connection = headers.get("connection", "")
        if version == "HTTP/1.1":
            return not _has_token(connection, "close")
        return _has_token(connection, "keep-alive")

    def _choose_body_framing(self, status, headers):
        """RFC 9112 §6.3 message body length rules, in order."""
        if 100 <= status < 200 or status in (204, 304):
            self._state = _BODY_LENGTH        # no body (RFC 9112 §6.3 item 1)
            self._remaining = 0
            return
        te = headers.get("transfer-encoding")
        if te is not None:
            codings = [c.strip().lower() for c in te.split(",") if c.strip()]
            if "content-length" in headers:
                self._keep_alive = False      # §6.3 item 3: TE overrides CL; do not reuse the connection
            if codings and codings[-1] == "chunked":
                self._state = _BODY_CHUNK_SIZE
            else:
                self._state = _BODY_EOF       # §6.3 item 4 (response): read until close
                self._keep_alive = False
            return
        cl = headers.get("content-length")
        if cl is not None:
            if not _ascii_digits(cl):
                raise HttpError("invalid Content-Length %r" % cl[:40])
            length = int(cl)
            if length > self.max_body_bytes:
                raise HttpError("body of %d bytes over the %d-byte limit" % (length, self.max_body_bytes))
            self._state = _BODY_LENGTH
            self._remaining = length
            return
        self._state = _BODY_EOF               # §6.3 item 8: no framing -> until close
        self._keep_alive = False

    # ---- bodies

    def _read_length_body(self):
        n = self._remaining
        if len(self._buf) - self._pos < n:
            return False
        self._parts.append(bytes(self._buf[self._pos:self._pos + n]))
        self._pos += n
        return True

    def _read_until_close(self):
        available = len(self._buf) - self._pos
        if self._body_bytes + available > self.max_body_bytes:
            raise HttpError("body over the %d-byte limit" % self.max_body_bytes)
        if not self._eof:
            return False
        self._parts.append(bytes(self._buf[self._pos:]))
        self._pos = len(self._buf)
        return True

    def _line(self, limit, what):
        """Next CRLF-terminated line (str) or None; bounded so garbage cannot grow the buffer forever."""
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            if len(self._buf) - self._pos > limit:
                raise HttpError("%s line over %d bytes" % (what, limit))
            return None
        if end - self._pos > limit:
            raise HttpError("%s line over %d bytes" % (what, limit))
        line = bytes(self._buf[self._pos:end]).decode("latin-1")
        self._pos = end + 2
        return line

    def _read_chunk_size(self):
        # RFC 9112 §7.1: chunk-size (hex) [ chunk-ext ] CRLF
        line = self._line(MAX_CHUNK_LINE_BYTES, "chunk size")
        if line is None:
            return False
        size_text = line.split(";", 1)[0].strip(" \t")
        if not size_text or any(c not in _HEX_DIGITS for c in size_text):
            raise HttpError("bad chunk size %r" % line[:40])
        size = int(size_text, 16)
        if size == 0:
            self._state = _TRAILERS
            return True
        if self._body_bytes + size > self.max_body_bytes:
            raise HttpError("chunked body over the %d-byte limit" % self.max_body_bytes)
        self._remaining = size
        self._state = _BODY_CHUNK_DATA
        return True

    def _read_chunk_data(self):
        n = self._remaining
        if len(self._buf) - self._pos < n:
            return False
        self._parts.append(bytes(self._buf[self._pos:self._pos + n]))
        self._body_bytes += n
        self._pos += n
        self._state = _BODY_CHUNK_CRLF
        return True

    def _read_chunk_crlf(self):
        if len(self._buf) - self._pos < 2:
            return False
        if self._buf[self._pos:self._pos + 2] != b"\r\n":
            raise HttpError("chunk data not followed by CRLF")
        self._pos += 2
        self._state = _BODY_CHUNK_SIZE
        return True

    def _read_trailers(self):
        """Trailer section after the last chunk (RFC 9112 §7.1.2), ends with an empty line."""
        end = self._buf.find(b"\r\n", self._pos)
        if end == self._pos:                  # no trailers
            self._pos += 2
            return True
        end = self._buf.find(b"\r\n\r\n", self._pos)
        if end < 0:
            if len(self._buf) - self._pos > self.max_head_bytes:
                raise HttpError("trailer section over %d bytes" % self.max_head_bytes)
            return False
        lines = bytes(self._buf[self._pos:end]).decode("latin-1").split("\r\n")
        self._pos = end + 4
        trailers = {}
        _parse_header_lines(lines, trailers)
        for name, value in trailers.items():
            self._headers.setdefault(name, value)   # trailers never override the head's fields
        return True

    def _finish(self):
        status = self._status
        if 100 <= status < 200:
            self._reset()                     # interim response (e.g. 100 Continue): skip it
            return None
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        response = Response(status, self._reason, self._headers, body, self._keep_alive, self._version)
        self._reset()
        return response


MAX_RETRY_AFTER_S = 600.0   # the longest pause a Retry-After can impose (then we ask again)
_MAX_DELTA_DIGITS = 9       # more digits than this is already beyond the cap


def retry_after_seconds(headers, now_s=None):
    """Seconds to wait from a Retry-After field (RFC 9110 §10.2.3), or None if absent/invalid.

    Accepts delta-seconds ("120") and an HTTP-date (relative to ``now_s``, default time.time()).
    The field is venue-supplied, so it is parsed defensively and capped at MAX_RETRY_AFTER_S:
    "99999999999", a 400-digit number or a date in the year 9999 mean "the cap", never "for
    ever" and never an exception; garbage means None (the caller's default pause applies).
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if _ascii_digits(value):
        if len(value.lstrip("0")) > _MAX_DELTA_DIGITS:
            return MAX_RETRY_AFTER_S
        return min(MAX_RETRY_AFTER_S, float(int(value)))
    if len(value) > 64:                         # an IMF-fixdate is 29 characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    if now_s is None:
        now_s = time.time()
    try:
        delta_s = when.timestamp() - now_s
    except (OverflowError, ValueError, OSError):
        return MAX_RETRY_AFTER_S
    return min(MAX_RETRY_AFTER_S, max(0.0, delta_s))
