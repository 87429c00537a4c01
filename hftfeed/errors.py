"""One rooted exception hierarchy for hftfeed, and the one place that maps an error to a recovery.

Pure modules raise the most specific class below; the asyncio drivers never decide on their own
whether an error means "drop the message", "resync the instrument", "reconnect" or "exit":
they call :func:`recovery_for` and act on its answer.
"""


MAX_LOGGED_CHARS = 500   # default bound on a venue-supplied string inside one log line


def escape_text(value, max_chars=MAX_LOGGED_CHARS):
    """``value`` made safe to put in a log line or on a terminal: control and other
    non-printable characters (newlines, ESC, NUL, bidi overrides) become visible escapes, and
    the result is cut to about ``max_chars`` characters with a note of how much was left out.

    Why one helper: every string a venue (or any peer) chose -- a close reason, an error
    ``msg``, an excerpt of a bad message, an HTTP body -- can carry a newline that forges a log
    line or an escape sequence that rewrites the operator's terminal, and can be megabytes
    long. Bytes are decoded as UTF-8 with replacement first."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value[:max_chars * 4])          # enough for max_chars UTF-8 characters
        over = len(value) - len(raw)
        value = raw.decode("utf-8", "replace")
        unit = "bytes"
    else:
        value = value if isinstance(value, str) else str(value)
        over = 0
        unit = "chars"
    cut = value[:max_chars]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                      for c in cut)[:max_chars]
    over += len(value) - min(len(value), max_chars)
    if over > 0:
        cut += "...[%d more %s]" % (over, unit)
    return cut


class HftfeedError(Exception):
    """Root of every error hftfeed raises on purpose.

    Messages often quote what a venue sent (a JSON decoder's complaint about a NUL byte, a
    field value), and they end up in log lines: ``str()`` goes through :func:`escape_text`, so
    a hostile or corrupted message can neither forge log lines, put raw bytes in the journal,
    nor make one line megabytes long."""

    def __str__(self):
        return escape_text(super().__str__(), MAX_LOGGED_CHARS * 2)


class ConfigError(HftfeedError):
    """Bad configuration or command line: the CLI prints one line and exits with code 2."""


class FixedPointError(HftfeedError):
    """A decimal string that is not a number, or a value that does not fit a signed int64."""


class BookError(HftfeedError):
    """An operation the book cannot perform (a level that makes no sense, e.g. a negative qty)."""


class WireError(HftfeedError):
    """A datagram that does not follow PROTOCOL.md (decoder side)."""


class WebSocketError(HftfeedError):
    """Base for everything RFC 6455 related."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455. ``close_code`` is the status we answer with (RFC 6455 §7.4.1)."""

    def __init__(self, message, close_code=1002):
        super().__init__(message)
        self.close_code = close_code


class MessageTooBig(ProtocolError):
    """A frame or a reassembled message above the configured maximum (close code 1009)."""

    def __init__(self, message):
        super().__init__(message, close_code=1009)


class InvalidHandshake(WebSocketError):
    """The HTTP upgrade failed: wrong status, missing headers, or a bad Sec-WebSocket-Accept."""


class ConnectionClosed(WebSocketError):
    """The connection is gone (close frame received, or the TCP stream ended)."""

    def __init__(self, message, code=1006, reason=""):
        super().__init__(message)
        self.code = code
        self.reason = reason


class HttpError(HftfeedError):
    """A malformed HTTP/1.1 response (REST snapshot client)."""


class HttpStatusError(HttpError):
    """A well-formed HTTP response with a non-2xx status; ``retry_after_s`` from Retry-After."""

    def __init__(self, message, status, retry_after_s=None, body=b""):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s
        self.body = body


class VenueError(HftfeedError):
    """A venue message that cannot be understood (malformed JSON, missing or absurd fields)."""


class SyncError(HftfeedError):
    """An instrument's update-id chain broke, or a checksum did not match: its book is stale."""


class TransportError(HftfeedError):
    """Timeouts, silent or half-open connections, refused connects."""


# Recovery actions, decided here and nowhere else.
DROP = "drop"            # count it, log it, keep going (one bad message on a healthy connection)
RESYNC = "resync"        # this instrument only: status 2, fresh snapshot, replay, status 1
RECONNECT = "reconnect"  # the connection is unusable: close, back off, reconnect, resync all
RETRY = "retry"          # a request failed (REST): retry later with backoff
EXIT = "exit"            # configuration or programming error: stop with a clear message


def recovery_for(exc):
    """Return the recovery action for ``exc`` (one of DROP, RESYNC, RECONNECT, RETRY, EXIT).

    Why a table and not ``except`` clauses spread around: the same error must get the same
    treatment whichever venue or task meets it, and an operator reads the policy in one place.
    """
    if isinstance(exc, (VenueError, FixedPointError)):
        return DROP
    if isinstance(exc, (SyncError, BookError)):
        return RESYNC
    if isinstance(exc, (WebSocketError, TransportError, ConnectionError, OSError, EOFError)):
        return RECONNECT
    if isinstance(exc, HttpError):
        return RETRY
    if isinstance(exc, ConfigError):
        return EXIT
    return RECONNECT
