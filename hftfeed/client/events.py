"""What a :class:`~hftfeed.client.Subscriber` hands to a strategy: one class per event type.

Prices and quantities stay the wire's exact integers (value x 10**-exp; exponent -8 today, given
by the instrument's ``I`` message); :func:`to_decimal` / :func:`to_float` and the ``*_decimal``
helpers convert when a strategy wants to. Every event carries its ``key``
``(channel, venue, instrument)``: instrument ids are unique only within a channel, so two shards
publishing to one group never mix.
"""

from decimal import Decimal

from hftfeed.client.names import sanitize, state_name, venue_name
from hftfeed.codecs import wire

DEFAULT_EXP = -8


def to_decimal(value: int, exp: int = DEFAULT_EXP) -> Decimal:
    """Exact decimal of a wire fixed-point integer (``value`` x 10**exp)."""
    return Decimal(value).scaleb(exp)


def to_float(value: int, exp: int = DEFAULT_EXP) -> float:
    """Nearest float of a wire fixed-point integer (for maths where exactness does not matter)."""
    return value * 10.0 ** exp


class Event(object):
    """Common fields: where it came from and when."""

    __slots__ = ("channel", "session", "venue", "instrument", "symbol", "exch_ns", "recv_ns",
                 "send_ns", "local_ns")
    kind = "event"

    @property
    def key(self):
        """``(channel, venue, instrument)``: the identity of an instrument on the wire."""
        return (self.channel, self.venue, self.instrument)

    @property
    def venue_name(self) -> str:
        return venue_name(self.venue)

    def _base(self, channel, session, msg, symbol, send_ns, local_ns):
        self.channel = channel
        self.session = session
        self.venue = msg.venue
        self.instrument = msg.instrument
        self.symbol = symbol
        self.exch_ns = msg.exch_ns
        self.recv_ns = msg.recv_ns
        self.send_ns = send_ns
        self.local_ns = local_ns

    def _label(self):
        return "%s/%s#%d" % (self.venue_name, self.symbol or "?", self.instrument)


class Book(Event):
    """Top-N levels after an update (``B``). ``bids``/``asks``: lists of (price, qty) ints, best
    first. ``trusted`` is False while the instrument is not live or while a gap on its channel
    could have touched it (cleared by its next ``B``); the :class:`Books` view flips it on the
    book it holds, so a strategy reading ``books[...]`` sees the current verdict."""

    __slots__ = ("update_id", "flags", "bids", "asks", "price_exp", "qty_exp", "trusted")
    kind = "book"

    def __init__(self, channel, session, msg, symbol, send_ns, local_ns, price_exp, qty_exp,
                 trusted):
        self._base(channel, session, msg, symbol, send_ns, local_ns)
        self.update_id = msg.update_id
        self.flags = msg.flags
        self.bids = msg.bids
        self.asks = msg.asks
        self.price_exp = price_exp
        self.qty_exp = qty_exp
        self.trusted = trusted

    @property
    def is_snapshot(self) -> bool:
        """First book after a (re)synchronisation from a snapshot."""
        return bool(self.flags & wire.BOOK_FLAG_SNAPSHOT)

    @property
    def is_refresh(self) -> bool:
        """Re-sent by the publisher's refresh cycle: the same book as its last ``B``."""
        return bool(self.flags & wire.BOOK_FLAG_REFRESH)

    @property
    def best_bid(self):
        """(price, qty) ints of the best bid, or None for an empty side."""
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self):
        return self.asks[0] if self.asks else None

    @property
    def spread(self):
        """Best ask minus best bid, as a wire integer (None if a side is empty)."""
        if not self.bids or not self.asks:
            return None
        return self.asks[0][0] - self.bids[0][0]

    @property
    def mid(self):
        """Exact mid price as a Decimal (None if a side is empty)."""
        if not self.bids or not self.asks:
            return None
        return to_decimal(self.bids[0][0] + self.asks[0][0], self.price_exp) / 2

    def price(self, value: int) -> Decimal:
        """A price integer of this book as an exact Decimal."""
        return to_decimal(value, self.price_exp)

    def qty(self, value: int) -> Decimal:
        return to_decimal(value, self.qty_exp)

    def levels_decimal(self, side: str = "bids", depth: int = None):
        """[(Decimal price, Decimal qty)] of ``side`` ("bids"/"asks"), top ``depth`` levels."""
        levels = self.bids if side == "bids" else self.asks
        if depth is not None:
            levels = levels[:depth]
        return [(to_decimal(p, self.price_exp), to_decimal(q, self.qty_exp)) for p, q in levels]

    def levels_float(self, side: str = "bids", depth: int = None):
        levels = self.bids if side == "bids" else self.asks
        if depth is not None:
            levels = levels[:depth]
        return [(to_float(p, self.price_exp), to_float(q, self.qty_exp)) for p, q in levels]

    def __repr__(self):
        bid = self.best_bid
        ask = self.best_ask
        return "Book(%s uid=%d bid=%s ask=%s%s)" % (
            self._label(), self.update_id,
            "%s x %s" % (self.price(bid[0]), self.qty(bid[1])) if bid else "-",
            "%s x %s" % (self.price(ask[0]), self.qty(ask[1])) if ask else "-",
            "" if self.trusted else " UNTRUSTED")


class Trade(Event):
    """A trade (``T``): ``side`` 1 = buyer aggressor, 2 = seller, 0 = unknown."""

    __slots__ = ("trade_id", "price", "qty", "side", "price_exp", "qty_exp")
    kind = "trade"

    def __init__(self, channel, session, msg, symbol, send_ns, local_ns, price_exp, qty_exp):
        self._base(channel, session, msg, symbol, send_ns, local_ns)
        self.trade_id = msg.update_id
        self.price = msg.price
        self.qty = msg.qty
        self.side = msg.side
        self.price_exp = price_exp
        self.qty_exp = qty_exp

    @property
    def price_decimal(self) -> Decimal:
        return to_decimal(self.price, self.price_exp)

    @property
    def qty_decimal(self) -> Decimal:
        return to_decimal(self.qty, self.qty_exp)

    def __repr__(self):
        return "Trade(%s id=%d %s x %s side=%d)" % (self._label(), self.trade_id,
                                                    self.price_decimal, self.qty_decimal,
                                                    self.side)


class Quote(Event):
    """Best bid/offer (``Q``)."""

    __slots__ = ("update_id", "bid_px", "bid_qty", "ask_px", "ask_qty", "price_exp", "qty_exp")
    kind = "quote"

    def __init__(self, channel, session, msg, symbol, send_ns, local_ns, price_exp, qty_exp):
        self._base(channel, session, msg, symbol, send_ns, local_ns)
        self.update_id = msg.update_id
        self.bid_px = msg.bid_px
        self.bid_qty = msg.bid_qty
        self.ask_px = msg.ask_px
        self.ask_qty = msg.ask_qty
        self.price_exp = price_exp
        self.qty_exp = qty_exp

    def __repr__(self):
        return "Quote(%s uid=%d %s x %s / %s x %s)" % (
            self._label(), self.update_id, to_decimal(self.bid_px, self.price_exp),
            to_decimal(self.bid_qty, self.qty_exp), to_decimal(self.ask_px, self.price_exp),
            to_decimal(self.ask_qty, self.qty_exp))


class Status(Event):
    """Instrument state (``S``): 1 live, 2 resynchronising, 3 disconnected."""

    __slots__ = ("state",)
    kind = "status"

    def __init__(self, channel, session, msg, symbol, send_ns, local_ns):
        self._base(channel, session, msg, symbol, send_ns, local_ns)
        self.state = msg.state

    @property
    def live(self) -> bool:
        return self.state == wire.STATE_LIVE

    @property
    def state_name(self) -> str:
        return state_name(self.state)

    def __repr__(self):
        return "Status(%s %s)" % (self._label(), self.state_name)


class Instrument(Event):
    """Instrument definition (``I``). ``symbol`` is sanitised (printable ASCII; anything else
    as ``\\xNN``); ``raw_symbol`` is exactly what the wire carried."""

    __slots__ = ("raw_symbol", "price_exp", "qty_exp")
    kind = "instrument"

    def __init__(self, channel, session, msg, send_ns, local_ns):
        self._base(channel, session, msg, sanitize(msg.symbol, 32), send_ns, local_ns)
        self.raw_symbol = msg.symbol
        self.price_exp = msg.price_exp
        self.qty_exp = msg.qty_exp

    def __repr__(self):
        return "Instrument(%s exp=%d/%d)" % (self._label(), self.price_exp, self.qty_exp)


class Details(Event):
    """Instrument details (``D``): ``tick_size``, ``lot_size``, ``min_qty``, ``contract_size``
    (exact ints at the instrument's exponents; ``min_qty``/``contract_size`` 0 when the venue
    states none), ``trading`` (0 unknown, 1 open, 2 restricted, 3 closed) and the same as
    ``Decimal``s. ``recv_ns`` is when the daemon read the venue's instrument list."""

    __slots__ = ("tick_size", "lot_size", "min_qty", "contract_size", "trading", "price_exp",
                 "qty_exp")
    kind = "details"
    TRADING_NAMES = {wire.TRADING_UNKNOWN: "unknown", wire.TRADING_OPEN: "open",
                     wire.TRADING_RESTRICTED: "restricted", wire.TRADING_CLOSED: "closed"}

    def __init__(self, channel, session, msg, symbol, send_ns, local_ns, price_exp=DEFAULT_EXP,
                 qty_exp=DEFAULT_EXP):
        self._base(channel, session, msg, symbol, send_ns, local_ns)
        self.tick_size = msg.tick_size
        self.lot_size = msg.lot_size
        self.min_qty = msg.min_qty
        self.contract_size = msg.contract_size
        self.trading = msg.trading
        self.price_exp = price_exp
        self.qty_exp = qty_exp

    @property
    def tick_size_decimal(self) -> Decimal:
        return to_decimal(self.tick_size, self.price_exp)

    @property
    def lot_size_decimal(self) -> Decimal:
        return to_decimal(self.lot_size, self.qty_exp)

    @property
    def min_qty_decimal(self) -> Decimal:
        return to_decimal(self.min_qty, self.qty_exp)

    @property
    def contract_size_decimal(self) -> Decimal:
        """Contract size or multiplier as the venue states it (its own unit: base currency for
        OKX, USD for Binance COIN-M and Deribit futures); 0 when it states none."""
        return to_decimal(self.contract_size, DEFAULT_EXP)

    @property
    def trading_name(self) -> str:
        return self.TRADING_NAMES.get(self.trading, "unknown")

    def __repr__(self):
        return "Details(%s tick=%s lot=%s min=%s contract=%s %s)" % (
            self._label(), self.tick_size_decimal, self.lot_size_decimal, self.min_qty_decimal,
            self.contract_size_decimal, self.trading_name)


class Notice(Event):
    """Something about the stream rather than the market: ``what`` is one of "gap",
    "recovered", "lost", "restart", "collision", "redefined", "end_of_session"; ``text`` is a
    sanitised one-line description; ``first_seq``/``count`` give the range for gaps."""

    __slots__ = ("what", "text", "first_seq", "count")
    kind = "notice"

    def __init__(self, what, channel, session, text, first_seq=0, count=0, local_ns=0):
        self.what = what
        self.channel = channel
        self.session = session
        self.text = text
        self.first_seq = first_seq
        self.count = count
        self.venue = 0
        self.instrument = 0
        self.symbol = None
        self.exch_ns = 0
        self.recv_ns = 0
        self.send_ns = 0
        self.local_ns = local_ns

    def __repr__(self):
        return "Notice(%s channel=%d session=%d: %s)" % (self.what, self.channel, self.session,
                                                          self.text)


class Books(object):
    """The latest :class:`Book` of every instrument, keyed by ``(channel, venue, instrument)``.

    ``books.get_symbol("BTCUSDT")`` finds a book by symbol (``venue=``/``channel=`` narrow it
    when two shards or venues carry the same symbol; several matches raise ``KeyError``).
    """

    def __init__(self):
        self._books = {}

    def __getitem__(self, key):
        return self._books[key]

    def get(self, key, default=None):
        return self._books.get(key, default)

    def __contains__(self, key):
        return key in self._books

    def __iter__(self):
        return iter(self._books)

    def __len__(self):
        return len(self._books)

    def items(self):
        return self._books.items()

    def values(self):
        return self._books.values()

    def get_symbol(self, symbol, venue=None, channel=None):
        """The latest book whose symbol is ``symbol`` (None if there is none)."""
        found = [b for b in self._books.values() if b.symbol == symbol
                 and (venue is None or b.venue == venue or b.venue_name == venue)
                 and (channel is None or b.channel == channel)]
        if len(found) > 1:
            raise KeyError("%d books are called %r: pass venue= or channel=" % (len(found),
                                                                               symbol))
        return found[0] if found else None

    def _put(self, book):
        self._books[book.key] = book

    def _untrust_channel(self, channel):
        for key, book in self._books.items():
            if key[0] == channel:
                book.trusted = False

    def _untrust(self, key):
        book = self._books.get(key)
        if book is not None:
            book.trusted = False

    def _drop_channel(self, channel):
        for key in [k for k in self._books if k[0] == channel]:
            del self._books[key]
