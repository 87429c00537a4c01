"""One rooted exception hierarchy for hftfeed, and the one place that maps an error to a recovery.

Pure modules raise the most specific class below; the asyncio drivers never decide on their own
whether an error means "drop the message", "resync the instrument", "reconnect" or "exit":
they call :func:`recovery_for` and act on its answer.
"""


class HftfeedError(Exception):
    """Root of every error hftfeed raises on purpose.

    Messages often quote what a venue sent (a JSON decoder's complaint about a NUL byte, a
    field value), and they end up in log lines: ``str()`` escapes control characters so a
    hostile or corrupted message can neither forge log lines nor put raw bytes in the journal."""

    def __str__(self):
        text = super().__str__()
        if text.isprintable():
            return text
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)


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
