"""``hftfeed.py export FILE.pcap --format csv [--out FILE.csv]``: recordings as CSV rows.

One row per book, trade and quote, decoded through the same client as live data
(``Subscriber.from_pcap``: sequencing, A/B duplicates dropped, symbols from ``I``), prices and
quantities as exact decimals. Columns: see ``COLUMNS``; ``bids``/``asks`` hold every level of a
book as ``price@qty`` separated by ``;``. Symbols are sanitised (a forged one cannot inject a
formula or a control character: a leading ``=``, ``+``, ``-`` or ``@`` is prefixed with ``'``).
"""

import csv
import sys

from hftfeed.app.cli import OneLineParser
from hftfeed.client import Subscriber
from hftfeed.client.events import to_decimal
from hftfeed.client.pcap import PcapError

COLUMNS = ("type", "capture_ns", "channel", "venue", "instrument", "symbol", "update_id",
           "exch_ns", "recv_ns", "send_ns", "price", "qty", "side", "bid_px", "bid_qty",
           "ask_px", "ask_qty", "trusted", "bids", "asks")


def build_parser():
    parser = OneLineParser(prog="hftfeed.py export",
                           description="Books, trades and quotes of a pcap recording as CSV.")
    parser.add_argument("file", metavar="FILE.pcap")
    parser.add_argument("--format", choices=("csv",), default="csv")
    parser.add_argument("--out", default="-", metavar="FILE.csv", help="default: stdout")
    parser.add_argument("--port", type=int, default=None, help="only datagrams sent to PORT")
    return parser


def _cell(symbol):
    if symbol and symbol[0] in "=+-@":
        return "'" + symbol
    return symbol or ""


def _levels(levels, price_exp, qty_exp):
    return ";".join("%s@%s" % (to_decimal(p, price_exp), to_decimal(q, qty_exp))
                    for p, q in levels)


def rows(subscriber):
    """Yield one dict per book, trade and quote event of ``subscriber`` (until exhausted)."""
    for event in subscriber:
        row = {"type": event.kind, "capture_ns": event.local_ns, "channel": event.channel,
               "venue": event.venue_name, "instrument": event.instrument,
               "symbol": _cell(event.symbol), "exch_ns": event.exch_ns,
               "recv_ns": event.recv_ns, "send_ns": event.send_ns}
        if event.kind == "book":
            bid, ask = event.best_bid, event.best_ask
            row.update(update_id=event.update_id, trusted=int(event.trusted),
                       bids=_levels(event.bids, event.price_exp, event.qty_exp),
                       asks=_levels(event.asks, event.price_exp, event.qty_exp))
            if bid:
                row.update(bid_px=event.price(bid[0]), bid_qty=event.qty(bid[1]))
            if ask:
                row.update(ask_px=event.price(ask[0]), ask_qty=event.qty(ask[1]))
        elif event.kind == "trade":
            row.update(update_id=event.trade_id, price=event.price_decimal,
                       qty=event.qty_decimal, side=event.side)
        elif event.kind == "quote":
            row.update(update_id=event.update_id,
                       bid_px=to_decimal(event.bid_px, event.price_exp),
                       bid_qty=to_decimal(event.bid_qty, event.qty_exp),
                       ask_px=to_decimal(event.ask_px, event.price_exp),
                       ask_qty=to_decimal(event.ask_qty, event.qty_exp))
        else:
            continue
        yield row


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        subscriber = Subscriber.from_pcap(args.file, port=args.port)
    except (OSError, PcapError) as exc:
        sys.stderr.write("hftfeed.py export: error: %s\n" % (exc,))
        return 1
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    try:
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        count = 0
        for row in rows(subscriber):
            writer.writerow(row)
            count += 1
    except PcapError as exc:
        sys.stderr.write("hftfeed.py export: error: %s\n" % (exc,))
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
        subscriber.close()
    sys.stderr.write("exported %d rows\n" % count)
    return 0
