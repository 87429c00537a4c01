"""What the simulator server needs of a connection whose streams are subscribed by JSON
messages (every dialect but Binance's, whose streams are named in the URL), and of the
dialects that serve them (:class:`MessageDialect`).

The server (``server.py``, ``wsconn.py``) reads a session's ``streams`` (what it is sent),
``combined`` (Binance's stream envelope: never here), ``delivered()``, and asks
``counts_toward_limit(text)`` for the venue's incoming-message limit. Those, the stream limit
and the decoding of a request into a JSON object are the same for every such venue, so they
live here once; what a venue answers (its error shapes, acknowledgements, snapshots) stays in
its dialect, in ``handle_request`` and ``refuse``.
"""

import json

from hftfeed.tools.sim import binance
from hftfeed.venues import registry     # pure data: imports no adapter and nothing of the core

MALFORMED = "malformed"          # the text is not JSON
NOT_AN_OBJECT = "not an object"  # JSON, but not an object


class RequestError(ValueError):
    """A REST request the venue refuses: ``rest.py`` answers it with the dialect's
    ``error_body(code, msg)``."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


class JsonSession(object):
    """One connection's subscriptions. Subclasses define ``handle_request(req, text)`` (a
    decoded JSON object and its text -> texts to send, in order) and ``refuse(text, why)`` (the
    venue's answer to a text that is not a JSON object; ``why`` is MALFORMED, NOT_AN_OBJECT, or
    None for an object that is no request the venue knows); a venue whose keepalive is a bare
    text (OKX, Bitget: ``ping``) sets PING_TEXT / PONG_TEXT."""

    combined = False
    PING_TEXT = None
    PONG_TEXT = None

    def __init__(self, dialect, max_streams):
        self.dialect = dialect
        self.max_streams = max_streams
        self.streams = []

    def delivered(self):
        return self.streams

    def counts_toward_limit(self, text):
        """Every request counts against the venue's incoming-message limit except a bare-text
        keepalive (OKX and Bitget limit requests, not pings)."""
        return self.PING_TEXT is None or text != self.PING_TEXT

    def has_room(self, adding):
        """Whether ``adding`` more streams stay within the connection's limit."""
        return len(self.streams) + adding <= self.max_streams

    def handle_text(self, text):
        """Answer one client text message: a list of texts to send, in order (never raises)."""
        if self.PING_TEXT is not None and text == self.PING_TEXT:
            return [self.PONG_TEXT]
        try:
            req = json.loads(text)
        except (ValueError, RecursionError):    # not JSON, or nested past any real request
            return self.refuse(text, MALFORMED)
        if not isinstance(req, dict):
            return self.refuse(text, NOT_AN_OBJECT)
        return self.handle_request(req, text)

    def handle_request(self, req, text):
        raise NotImplementedError

    def refuse(self, text, why):
        raise NotImplementedError


class MessageDialect(object):
    """The dialect side of the same venues: one WebSocket path, the registry's (the path of
    the venue's production URL, so it is written once), and streams keyed
    ``"<channel>:<instrument>"`` with no combined-stream envelope. ``VENUE`` is the registry
    name (a market's own where one dialect serves several)."""

    VENUE = ""
    # What the server and rest.py ask of every dialect, the same for all of these venues: no
    # REST depth snapshot (the book arrives in-stream), the generic weight limiter and 429
    # body, and the extra fields the unknown_event fault adds to a depth message.
    DEPTH_PATH = None
    CHEAP_PATHS = ()
    MAX_DEPTH_LIMIT = 1000
    RequestError = RequestError
    WeightLimiter = binance.WeightLimiter
    UNKNOWN_DEPTH_FIELDS = binance.UNKNOWN_DEPTH_FIELDS
    rate_limit_body = staticmethod(binance.rate_limit_body)

    def is_ws_path(self, target):
        return target.split("?", 1)[0].rstrip("/") == registry.ws_path(self.VENUE)

    def check_ws_path(self, target):
        """For ``open_session``: ValueError (the server answers 404) on any other path."""
        if not self.is_ws_path(target):
            raise ValueError("unknown WebSocket path %r" % (target,))

    @staticmethod
    def symbol_of_stream(stream):
        return stream.partition(":")[2]

    @staticmethod
    def combined_prefix(stream):
        return ""
