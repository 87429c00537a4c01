"""What the simulator server needs of a connection whose streams are subscribed by JSON
messages (every dialect but Binance's, whose streams are named in the URL).

The server (``server.py``, ``wsconn.py``) reads a session's ``streams`` (what it is sent),
``combined`` (Binance's stream envelope: never here), ``delivered()``, and asks
``counts_toward_limit(text)`` for the venue's incoming-message limit. Those, the stream limit
and the decoding of a request into a JSON object are the same for every such venue, so they
live here once; what a venue answers (its error shapes, acknowledgements, snapshots) stays in
its dialect, in ``handle_request`` and ``refuse``.
"""

import json

MALFORMED = "malformed"          # the text is not JSON
NOT_AN_OBJECT = "not an object"  # JSON, but not an object


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
