"""OKX v5 public: ``books`` snapshots/updates with seqId chains and CRC32 checksums, ``trades``,
``bbo-tbt`` (venue id 4).

Facts from OKX's v5 docs ("WebSocket: Connect", "Order book channel", "Trades channel",
checksum section) and OKX's 2026-05-21 notice on the checksum field:
- endpoint ``wss://ws.okx.com:8443/ws/v5/public``; subscribe with
  ``{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}, ...]}``; every arg is
  acknowledged separately with ``{"event":"subscribe","arg":{..},"connId":..}`` (as the 2022
  capture shows); failures come as ``{"event":"error","code":..,"msg":..}``;
  ``{"event":"notice","code":"64008",..}`` warns that the server will close the connection for
  an upgrade;
- keepalive: when nothing arrived for a while the client sends the text ``ping`` and the server
  answers with the text ``pong`` (not JSON); 25 s of silence before pinging, under OKX's 30 s
  idle cut-off, is the issue's figure (OKX's connect page was not available to re-check);
- ``books`` (400 levels): ``action`` ``snapshot`` then ``update``; levels are
  ``[price, size, liquidated orders (deprecated "0"), orders]``; size "0" deletes the level;
  ``seqId`` / ``prevSeqId`` chain the messages of one instrument (a snapshot has
  ``prevSeqId = -1``; an update whose ``prevSeqId == seqId`` changed nothing and only keeps the
  chain alive; after maintenance ``seqId`` may restart lower while the chain still holds, so
  continuity is decided by identity, never by comparing magnitudes);
- ``checksum``: a signed 32-bit CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:bid2px:...`` over the
  best 25 levels a side (a side with fewer levels simply contributes fewer pairs), built from the
  venue's own decimal strings; since 23 June 2026 (production) the field is always 0 and must
  not be used: it is verified only when non-zero;
- ``trades``: ``side`` is the taker's side, ``tradeId`` a decimal string, ``ts`` ms as a string;
- ``bbo-tbt``: tick-by-tick best bid/offer (public, no checksum): the ``bookTicker`` channel.

Checksum strings. This adapter stores books as scaled ints and rebuilds the decimal strings
with :func:`decimal_text` (the shortest exact form, as :func:`hftfeed.codecs.fixed.format_fixed`
writes it: "30316", "0.059"), which is exactly what OKX sent in every capture we have. Should an
instrument's strings ever differ from that form ("30316.0", "0.0590"), the rebuilt string could
not reproduce OKX's CRC: the first such level is logged once and the checksum of that instrument
is no longer verified (the seqId chain still is).
"""

import json
import logging
import zlib

from hftfeed.errors import VenueError
from hftfeed.codecs.fixed import SCALE
from hftfeed.core.sync import SyncRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SERVER_SHUTDOWN, CTRL_SUBSCRIBED,
                       Control, DepthUpdate, Quote, Trade)
from hftfeed.venues import registry
from hftfeed.venues.base import (Venue, data_items, decimal_id, levels_flat, loads, ms_text_ns,
                                 req_int_at_least, req_price, req_str, split_stream, taker_side,
                                 to_price, to_qty, to_trade_qty)

log = logging.getLogger("hftfeed.exchanges.okx")

CHECKSUM_LEVELS = 25                    # OKX: the best 25 bids and 25 asks
MAX_ARGS_PER_REQUEST = 40               # a few KB per request: far from any size limit
SHUTDOWN_NOTICE_CODE = "64008"          # "the connection will soon be closed for an upgrade"
_JSON_COMPACT = (",", ":")
# Scaled int -> decimal text for checksums. The best 25 levels change little between updates,
# so almost every lookup hits: a checksum costs ~4 us on PyPy instead of ~65 us formatting 100
# numbers each time (measured on the dev VM).
_TEXT_CACHE = {}
_TEXT_CACHE_MAX = 8192


class OkxRule(SyncRule):
    """OKX continuity by identity: an update continues the book when its ``prevSeqId`` is the
    ``seqId`` the book ended on. Magnitudes are never compared (seqId can go down after
    maintenance). A message whose ``seqId`` is the book's own id is a keepalive
    (``prevSeqId == seqId``) or a repeat of the last one: nothing to apply."""

    snapshot_in_stream = True

    def snapshot_too_old(self, snapshot_id, first_buffered):
        return False        # no REST snapshots on OKX, and ids must not be compared by size

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id == snapshot_id

    def bridges(self, snapshot_id, upd):
        return upd.prev_id == snapshot_id

    def stale_live(self, book_id, upd):
        return upd.last_id == book_id

    def continues(self, book_id, upd):
        return upd.prev_id == book_id               # prevSeqId == the seqId we applied last

    def verify(self, book, upd):
        """The book after ``upd`` against OKX's CRC32 (called only for a non-zero checksum)."""
        return book_checksum(book) == upd.checksum


def checksum_string(bids, asks):
    """The text OKX hashes: best-first ``(price, qty)`` scaled-int pairs of each side (at most
    25 used), interleaved bid, ask, bid, ask ... as ``price:qty`` joined by ``:``."""
    parts = []
    text_of = _TEXT_CACHE.get       # bound once: called 100 times per checksum
    if len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
        _TEXT_CACHE.clear()         # bounded memory; the top of a book refills it at once
    nbids = min(len(bids), CHECKSUM_LEVELS)
    nasks = min(len(asks), CHECKSUM_LEVELS)
    for i in range(max(nbids, nasks)):
        if i < nbids:
            for value in bids[i]:
                text = text_of(value)
                if text is None:
                    text = _TEXT_CACHE[value] = decimal_text(value)
                parts.append(text)
        if i < nasks:
            for value in asks[i]:
                text = text_of(value)
                if text is None:
                    text = _TEXT_CACHE[value] = decimal_text(value)
                parts.append(text)
    return ":".join(parts)


def decimal_text(value):
    """A non-negative scaled int -> its shortest exact decimal text (format_fixed's output for
    values >= 0), built from str() calls: ~2.5x faster than %-formatting on PyPy."""
    units, fraction = divmod(value, SCALE)
    if not fraction:
        return str(units)
    return str(units) + "." + str(fraction + SCALE)[1:].rstrip("0")


def crc32_signed(text):
    """CRC32 of the ASCII text as OKX sends it: a signed 32-bit int."""
    value = zlib.crc32(text.encode("ascii"))
    return value - 0x100000000 if value >= 0x80000000 else value


def book_checksum(book):
    bids, asks = book.top(CHECKSUM_LEVELS)
    return crc32_signed(checksum_string(bids, asks))


class ChecksumGate(object):
    """Which of a message's checksums can be verified, for the venues using OKX's construction
    (OKX, Bitget): the CRC32 is over the venue's own decimal strings, and the book keeps scaled
    ints, so a checksum can be rebuilt only while those strings are what decimal_text writes
    (shortest form). The first level that is not (``"0.10"``) is logged once and that
    instrument's checksum is not verified again; the venue's id chain still guards it."""

    def __init__(self, venue_name, chain_name, logger):
        self.venue_name = venue_name
        self.log = logger                   # the venue's own logger
        self.chain_name = chain_name        # for the log line: what still guards the book
        self.untrusted = set()

    def checksum(self, inst, item, raw_bids, raw_asks):
        """The message's ``checksum`` to verify, or None: absent or 0 (OKX has sent 0 since
        mid-2026), or not rebuildable for this instrument. VenueError if it is no int32."""
        value = item.get("checksum")
        if value is not None and (type(value) is not int
                                  or not -0x80000000 <= value <= 0x7FFFFFFF):
            raise VenueError("books %s: checksum must be a signed 32-bit int" % inst)
        if not value or inst in self.untrusted or not self._canonical(inst, raw_bids) \
                or not self._canonical(inst, raw_asks):
            return None
        return value

    def _canonical(self, inst, levels):
        for level in levels:
            qty = level[1]
            scaled_qty = to_qty(qty, "books")
            if not scaled_qty:
                continue            # deleted: never part of the book, never hashed
            price = level[0]
            if decimal_text(scaled_qty) != qty or decimal_text(to_price(price, "books")) != price:
                self.untrusted.add(inst)
                self.log.warning("%s %s: level [%s, %s] is not in shortest decimal form (not "
                                 "canonical); its CRC32 checksum cannot be rebuilt from scaled "
                                 "ints and is no longer verified (the %s chain still is)",
                                 self.venue_name, inst, price, qty, self.chain_name)
                return False
        return True


class Okx(Venue):
    SPEC = registry.spec("okx")   # NAME, VENUE_ID, DEFAULT_*_URL come from it (base.py)
    MAX_STREAMS_PER_CONNECTION = 240        # our choice: OKX publishes no per-connection cap
    MAX_OUT_MSGS_PER_S = 3.0
    APP_PING_TEXT = "ping"
    APP_PING_INTERVAL_S = 25.0
    APP_PING_ALWAYS = False                 # only after 25 s of silence (OKX: N < 30 s)
    SUBSCRIBE_ACKS = True
    STREAM_CHANNELS = (("depth", "books"), ("trade", "trades"), ("bookTicker", "bbo-tbt"))
    rule = OkxRule()

    def __init__(self, symbols, channels, depth_speed="100ms"):
        Venue.__init__(self, symbols, channels, depth_speed)
        # (channel, instId) of the last arg of each subscribe request: OKX acknowledges every
        # arg, the supervisor counts one answer per request, so only these acks count.
        self._ack_keys = set()
        self._checksums = ChecksumGate("okx", "seqId", log)

    @classmethod
    def venue_symbol(cls, symbol):
        """OKX instrument ids are upper-case with dashes (``BTC-USDT``, ``BTC-USDT-SWAP``)."""
        return symbol.upper()

    def subscribe_messages(self, streams):
        out = []
        for i in range(0, len(streams), MAX_ARGS_PER_REQUEST):
            args = [_arg(s) for s in streams[i:i + MAX_ARGS_PER_REQUEST]]
            self._ack_keys.add((args[-1]["channel"], args[-1]["instId"]))
            out.append(_request("subscribe", args))
        return out

    def resubscribe_messages(self, symbol):
        """Unsubscribe + subscribe ``books``: OKX answers a subscription with a new snapshot."""
        if "depth" not in self.channels:
            return []
        arg = {"channel": "books", "instId": self.venue_symbol(symbol)}
        self._ack_keys.add(("books", arg["instId"]))
        return [_request("unsubscribe", [arg]), _request("subscribe", [arg])]

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        if text == "pong":                  # the keepalive answer is bare text, not JSON
            return [Control(CTRL_PONG, "pong")]
        msg = loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        event = msg.get("event")
        if event is not None:
            return [self._event(msg, event)]
        arg = msg.get("arg")
        if type(arg) is not dict:
            raise VenueError("push message without an 'arg' object")
        channel = arg.get("channel")
        if channel == "books":
            return self._books(msg, arg)
        if channel == "trades":
            return _trades(msg)
        if channel == "bbo-tbt":
            return _bbo(msg, arg)
        return [Control(CTRL_IGNORED, str(channel))]

    def _event(self, msg, event):
        if event == "subscribe":
            arg = msg.get("arg")
            key = (arg.get("channel"), arg.get("instId")) if type(arg) is dict else None
            if key in self._ack_keys:
                return Control(CTRL_SUBSCRIBED, "%s:%s" % key)
            return Control(CTRL_IGNORED, "subscribe ack")
        if event == "error":
            return Control(CTRL_ERROR, "%s %s" % (msg.get("code"), msg.get("msg")))
        if event == "notice" and str(msg.get("code")) == SHUTDOWN_NOTICE_CODE:
            return Control(CTRL_SERVER_SHUTDOWN, str(msg.get("msg", "")))
        return Control(CTRL_IGNORED, str(event))        # unsubscribe, channel-conn-count, ...

    def _books(self, msg, arg):
        what = "books"
        inst = req_str(arg, "instId", what)
        action = msg.get("action")
        if action != "snapshot" and action != "update":
            raise VenueError("books %s: action must be snapshot or update, got %r" % (inst, action))
        out = []
        for item in data_items(msg, "books " + inst, non_empty=True):
            raw_bids = item.get("bids")
            raw_asks = item.get("asks")
            bids = levels_flat(raw_bids, what)
            asks = levels_flat(raw_asks, what)
            seq_id = req_int_at_least(item, "seqId", what, 0)
            prev_id = req_int_at_least(item, "prevSeqId", what, -1)
            checksum = self._checksums.checksum(inst, item, raw_bids, raw_asks)
            out.append(DepthUpdate(inst, seq_id, seq_id, prev_id, ms_text_ns(item.get("ts"), what),
                                   bids, asks, action == "snapshot", checksum))
        return out


def _arg(stream):
    channel, inst = split_stream(stream)
    return {"channel": channel, "instId": inst}


def _request(op, args):
    return json.dumps({"op": op, "args": args}, separators=_JSON_COMPACT)


def _trades(msg):
    what = "trades"
    out = []
    for item in data_items(msg, what):
        aggressor = taker_side(item.get("side"), "buy", "sell", what)   # the taker's side
        out.append(Trade(req_str(item, "instId", what), decimal_id(item, "tradeId", what),
                         req_price(item, "px", what), to_trade_qty(req_str(item, "sz", what), what),
                         aggressor, ms_text_ns(item.get("ts"), what)))
    return out


def _bbo(msg, arg):
    """bbo-tbt -> Quote. Quote ids are 0 (none): the supervisor drops quotes whose id does not
    grow, and OKX's seqId may restart lower after maintenance."""
    what = "bbo-tbt"
    inst = req_str(arg, "instId", what)
    out = []
    for item in data_items(msg, what):
        bid_px, bid_qty = _best(item.get("bids"), what)
        ask_px, ask_qty = _best(item.get("asks"), what)
        out.append(Quote(inst, 0, bid_px, bid_qty, ask_px, ask_qty,
                         ms_text_ns(item.get("ts"), what)))
    return out


def _best(levels, what):
    if type(levels) is not list:
        raise VenueError("%s: a side must be a list" % what)
    if not levels:
        return 0, 0
    flat = levels_flat(levels[:1], what)
    return flat[0], flat[1]
