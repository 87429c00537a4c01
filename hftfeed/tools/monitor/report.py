"""Human rendering of the monitor's interval reports: latency lines, one top-of-book line per
instrument, exact decimal prices."""

import time

from hftfeed.codecs.fixed import format_fixed
from hftfeed.runtime.stats import format_ns

def format_price(value):
    """Scaled int (10**8) -> exact decimal text (fixed.format_fixed)."""
    return format_fixed(value)


def format_scaled(value):
    """Exact int scaled by 10**8 -> shortest decimal string ("37000.01", "0.5", "-0.00000001")."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 100000000)
    if frac == 0:
        return "%s%d" % (sign, whole)
    return "%s%d.%s" % (sign, whole, ("%08d" % frac).rstrip("0"))




def _latency_line(label, snap):
    if not snap["count"]:
        return "%-14s (no samples)" % label
    text = "%-14s p50 %-8s p99 %-8s p99.9 %-8s max %-8s n=%d" % (
        label, format_ns(snap["p50_ns"]), format_ns(snap["p99_ns"]),
        format_ns(snap["p99.9_ns"]), format_ns(snap["max_ns"]), snap["count"])
    if snap["negative"]:
        text += "  negative=%d (clock skew)" % snap["negative"]
    return text


def _instrument_lines(row, depth, rate_key):
    name = row["symbol"] or "#%d" % row["instrument"]
    venue = row["venue_name"] or ("venue%d" % row["venue"] if row["venue"] is not None else "-")
    state = row["state_name"] or ("state%d" % row["state"] if row["state"] is not None else "-")
    update = "-" if row["update_id"] is None else str(row["update_id"])
    if rate_key == "books_per_s":
        rate = "%.1f books/s" % row["books_per_s"]
    else:
        rate = "%d books" % row["books"]
    bids, asks = row["bids"], row["asks"]
    extra = _quote_and_trade(row)
    if row.get("tick_size") is not None:
        extra += "  tick %s lot %s" % (format_scaled(row["tick_size"]),
                                       format_scaled(row["lot_size"]))
    if depth <= 1:
        bid = "%s@%s" % (format_price(bids[0][1]), format_price(bids[0][0])) if bids else "-"
        ask = "%s@%s" % (format_price(asks[0][0]), format_price(asks[0][1])) if asks else "-"
        return ["  %-14s %-12s %-12s %s / %s  upd %s  %s%s"
                % (name, venue, state, bid, ask, update, rate, extra)]
    lines = ["  %-14s %-12s %-12s upd %s  %s%s" % (name, venue, state, update, rate, extra)]
    for level in range(min(depth, max(len(bids), len(asks)))):
        bid = bids[level] if level < len(bids) else None
        ask = asks[level] if level < len(asks) else None
        lines.append("    %18s %18s | %-18s %-18s" % (
            format_price(bid[1]) if bid else "", format_price(bid[0]) if bid else "",
            format_price(ask[0]) if ask else "", format_price(ask[1]) if ask else ""))
    return lines


_SIDE_NAMES = {1: "buy", 2: "sell"}


def _quote_and_trade(row):
    """"  bbo QTY@PX / PX@QTY  last PX xQTY side" from the latest Q and T, when seen."""
    text = ""
    quote = row.get("quote")
    if quote is not None:
        text += "  bbo %s@%s / %s@%s" % (format_price(quote["bid_qty"]), format_price(quote["bid_px"]),
                                         format_price(quote["ask_px"]), format_price(quote["ask_qty"]))
    trade = row.get("last_trade")
    if trade is not None:
        text += "  last %s x%s %s" % (format_price(trade["price"]), format_price(trade["qty"]),
                                      _SIDE_NAMES.get(trade["side"], "?"))
    return text


def render_report(report, depth=1):
    """Human lines for an interval report or a summary (same keys, see FeedMonitor)."""
    by_type = " ".join("%s %d" % item for item in sorted(report["by_type"].items())) or "-"
    if report["type"] == "interval":
        stamp = time.strftime("%H:%M:%S", time.localtime(report["time_ns"] / 1e9))
        head = "%s  %.0f pkt/s  %.0f msg/s  [%s]" % (stamp, report["packets_per_s"],
                                                     report["messages_per_s"], by_type)
        rate_key = "books_per_s"
    else:
        head = "summary after %.1fs: %d packets, %d messages, %d bytes  [%s]" % (
            report["elapsed_s"], report["packets"], report["messages"], report["bytes"], by_type)
        rate_key = "books"
    lines = [
        head,
        "  heartbeats %d  end-of-session %d  restarts %d  gaps %d (missing %d)  duplicates %d  "
        "out-of-order %d (recovered %d)  stale-session %d  decode-errors %d  filtered %d" % (
            report["heartbeats"], report["end_of_session"], report["restarts"], report["gaps"],
            report["missing_messages"], report["duplicates"], report["out_of_order"],
            report["recovered_messages"], report["stale_session_packets"],
            report["decode_errors"], report["filtered_packets"]),
        "  " + _latency_line("net (pub->mon)", report["latency_net"]),
        "  " + _latency_line("daemon", report["latency_daemon"]),
    ]
    for row in report.get("instruments", ()):
        lines.extend(_instrument_lines(row, depth, rate_key))
    return lines

