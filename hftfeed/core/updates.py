"""Venue-neutral update types: what every exchange adapter translates its messages into.

Adapters (``hftfeed/venues/*``) produce these; the shared sync engine (``sync.py``), the
feed supervisor (``feed.py``) and the publisher consume them. Prices and quantities are ints
scaled by 10**8 (``fixed.py``); level lists are *flat* ``[price0, qty0, price1, qty1, ...]``
so that no tuple is allocated per level. Times are ns since the Unix epoch (0 = unknown).
"""

SIDE_UNKNOWN = 0
SIDE_BUY = 1    # the aggressor (taker) bought
SIDE_SELL = 2   # the aggressor (taker) sold


class DepthUpdate(object):
    """One book event: a diff (``is_snapshot`` False) or a full in-stream snapshot.

    ``first_id``/``last_id`` are the venue's first and last update ids covered by the event
    (Binance ``U``/``u``; Bybit and OKX use the same id for both). ``prev_id`` is the venue's
    explicit link to the previous event (Binance futures ``pu``, OKX ``prevSeqId``), or -1
    where the venue gives none. ``checksum`` is the venue's book checksum, or None.
    """

    __slots__ = ("symbol", "first_id", "last_id", "prev_id", "exch_ns", "bids", "asks",
                 "is_snapshot", "checksum")

    def __init__(self, symbol, first_id, last_id, prev_id, exch_ns, bids, asks,
                 is_snapshot=False, checksum=None):
        self.symbol = symbol
        self.first_id = first_id
        self.last_id = last_id
        self.prev_id = prev_id
        self.exch_ns = exch_ns
        self.bids = bids
        self.asks = asks
        self.is_snapshot = is_snapshot
        self.checksum = checksum

    def __repr__(self):
        return ("DepthUpdate(%s, U=%d, u=%d, pu=%d, snapshot=%s, %d bids, %d asks)"
                % (self.symbol, self.first_id, self.last_id, self.prev_id, self.is_snapshot,
                   len(self.bids) // 2, len(self.asks) // 2))


class Trade(object):
    """One public trade. ``side`` is the aggressor: SIDE_BUY, SIDE_SELL or SIDE_UNKNOWN."""

    __slots__ = ("symbol", "trade_id", "price", "qty", "side", "exch_ns")

    def __init__(self, symbol, trade_id, price, qty, side, exch_ns):
        self.symbol = symbol
        self.trade_id = trade_id
        self.price = price
        self.qty = qty
        self.side = side
        self.exch_ns = exch_ns

    def __repr__(self):
        return "Trade(%s, id=%d, %d x %d, side=%d)" % (
            self.symbol, self.trade_id, self.price, self.qty, self.side)


class Quote(object):
    """Best bid and offer as the venue streams it (Binance ``bookTicker``)."""

    __slots__ = ("symbol", "update_id", "bid_px", "bid_qty", "ask_px", "ask_qty", "exch_ns")

    def __init__(self, symbol, update_id, bid_px, bid_qty, ask_px, ask_qty, exch_ns):
        self.symbol = symbol
        self.update_id = update_id
        self.bid_px = bid_px
        self.bid_qty = bid_qty
        self.ask_px = ask_px
        self.ask_qty = ask_qty
        self.exch_ns = exch_ns

    def __repr__(self):
        return "Quote(%s, id=%d, %d x %d / %d x %d)" % (
            self.symbol, self.update_id, self.bid_px, self.bid_qty, self.ask_px, self.ask_qty)


class Snapshot(object):
    """A REST depth snapshot: the book as of ``last_id`` (Binance ``lastUpdateId``)."""

    __slots__ = ("symbol", "last_id", "bids", "asks")

    def __init__(self, symbol, last_id, bids, asks):
        self.symbol = symbol
        self.last_id = last_id
        self.bids = bids
        self.asks = asks

    def __repr__(self):
        return "Snapshot(%s, lastUpdateId=%d, %d bids, %d asks)" % (
            self.symbol, self.last_id, len(self.bids) // 2, len(self.asks) // 2)


class ConnSequence(object):
    """The venue's sequence number of one whole message on its connection (Coinbase
    ``sequence_num``: counted per connection across every channel). An adapter of such a venue
    puts it first in the events of each message; the router checks it before anything else of
    the message is used (``core/sync.py`` ConnectionSequence)."""

    __slots__ = ("seq",)

    def __init__(self, seq):
        self.seq = seq

    def __repr__(self):
        return "ConnSequence(%d)" % self.seq


# Control events: things the connection supervisor acts on, not market data.
CTRL_SERVER_SHUTDOWN = "server_shutdown"   # venue announces a restart: reconnect now
CTRL_SUBSCRIBED = "subscribed"             # a subscription was acknowledged
CTRL_ERROR = "error"                       # the venue reported an error for a request
CTRL_PONG = "pong"                         # an application-level pong (Bybit, OKX)
CTRL_IGNORED = "ignored"                   # a well-formed message we do not use (kline, ...)
CTRL_REPLY = "reply"                       # the venue asked for an answer: send ``detail`` as is
                                           # on the same connection (Deribit's test_request)


class Control(object):
    """A non-market-data event from the venue (see the CTRL_* kinds)."""

    __slots__ = ("kind", "detail")

    def __init__(self, kind, detail=""):
        self.kind = kind
        self.detail = detail

    def __repr__(self):
        return "Control(%s, %r)" % (self.kind, self.detail)
