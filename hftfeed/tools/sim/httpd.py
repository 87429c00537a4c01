"""Minimal HTTP/1.1 request parsing and response building for the simulator (pure).

Why not http.server: the simulator serves REST and WebSocket upgrades on the same asyncio port,
so it needs the request head as bytes it can hand to ``ws_proto`` when the path is a stream, and
it needs to misbehave on purpose (slow or truncated bodies), which a framework would hide.
Only what a REST snapshot client sends is supported: a request line, headers, and a body sized by
Content-Length (RFC 9112 §6.3; no chunked requests).
"""

from hftfeed.codecs.ws_proto import parse_http_head

MAX_BODY_BYTES = 1 << 20

REASONS = {
    200: "OK", 101: "Switching Protocols", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 418: "I'm a teapot",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class BadRequest(ValueError):
    """A request the simulator cannot parse: answered 400 and the connection is closed."""


class Request(object):
    __slots__ = ("method", "target", "version", "headers", "body", "head_bytes")

    def __init__(self, method, target, version, headers, body, head_bytes):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.head_bytes = head_bytes

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def is_upgrade(self):
        return "websocket" in self.headers.get("upgrade", "").lower()

    def keep_alive(self):
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def parse_request(buf):
    """Parse one request from the front of ``buf``: ``(Request, consumed)`` or None (need more).

    Raises :class:`BadRequest` for anything malformed.
    """
    try:
        found = parse_http_head(buf)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if found is None:
        return None
    head, consumed = found
    try:
        text = head.decode("latin-1")
    except ValueError as exc:  # latin-1 decodes any byte; kept for safety with odd buffers
        raise BadRequest(str(exc)) from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line %r" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest("malformed header line %r" % line[:80])
        key = name.strip().lower()
        headers[key] = (headers[key] + ", " + value.strip()) if key in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0") or "0")
    except ValueError:
        raise BadRequest("bad Content-Length") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise BadRequest("Content-Length out of range")
    if len(buf) < consumed + length:
        return None
    body = bytes(buf[consumed:consumed + length])
    return Request(parts[0], parts[1], parts[2], headers, body, head), consumed + length


def response_head(status, body_len, headers=(), keep_alive=True):
    """Status line and headers for a JSON response, as bytes."""
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
             "Content-Type: application/json;charset=UTF-8",
             "Content-Length: %d" % body_len]
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
