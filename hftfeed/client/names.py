"""Display names for wire codes, and the sanitiser for anything decoded from the wire.

Venue names come from ONE function, :func:`venue_name`, reading the venue registry. Every string that came off the network (a symbol in an ``I`` message) goes
through :func:`sanitize` before it is shown: UDP is unauthenticated, and a forged symbol such
as ``"\\x1b[2J"`` must not clear a terminal or forge a log line.
"""

from hftfeed.codecs import wire
from hftfeed.venues import registry

STATE_NAMES = {wire.STATE_LIVE: "live", wire.STATE_RESYNC: "resync",
               wire.STATE_DISCONNECTED: "disconnected"}

def venue_name(venue_id: int) -> str:
    """Short name of a venue id ("binance", ...), from the venue registry (the one home of venue
    facts; a pure data module). An id this build does not know is shown as the registry
    shows it: a newer publisher may add venues and version 1 consumers must not fail on them."""
    name = registry.wire_name(venue_id)
    return name if name is not None else "venue-%d" % venue_id


def state_name(state: int) -> str:
    """"live", "resync", "disconnected", or ``"state-N"`` for a code this build does not know."""
    name = STATE_NAMES.get(state)
    return name if name is not None else "state-%d" % state


_PRINTABLE = frozenset(range(0x20, 0x7F)) - {0x5C}   # backslash is escaped so output is unambiguous


def sanitize(text, max_chars: int = 64) -> str:
    """``text`` (str or bytes) made safe to print: control bytes, DEL, non-ASCII and backslash
    as ``\\xNN`` escapes, cut to ``max_chars`` with a trailing ``...``."""
    if isinstance(text, str):
        codes = [ord(c) for c in text]
    else:
        codes = list(bytes(text))
    out = []
    for code in codes:
        if code in _PRINTABLE:
            out.append(chr(code))
        elif code < 0x100:
            out.append("\\x%02x" % code)
        else:
            out.append("\\u%04x" % code if code < 0x10000 else "\\U%08x" % code)
    result = "".join(out)
    if len(result) > max_chars:
        result = result[:max_chars] + "..."
    return result
