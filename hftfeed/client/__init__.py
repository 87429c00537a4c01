"""hftfeed's consumer library: what a strategy imports (standard library only).

    from hftfeed.client import Subscriber
    with Subscriber("239.1.1.1:5000", interface="eth0") as feed:
        for event in feed:
            if event.kind == "book" and event.trusted:
                print(event.symbol, event.best_bid, event.best_ask)

See docs/client.md. Modules: :mod:`.subscriber` (sockets, recordings, events out),
:mod:`.sequencer` (gaps, duplicates, restarts, forged-datagram guard; sans-I/O),
:mod:`.events` (Book, Trade, Quote, Status, Instrument, Details, Notice, Books), :mod:`.pcap`
(pcap read/write), :mod:`.net` (listen addresses, multicast), :mod:`.names` (display names
and the sanitiser), :mod:`.retransmit` (TCP gap fill).
"""

from hftfeed.client.events import (Book, Books, Details, Event, Instrument, Notice, Quote, Status,
                                   Trade, to_decimal, to_float)
from hftfeed.client.names import sanitize, state_name, venue_name
from hftfeed.client.subscriber import Subscriber

__all__ = ["Book", "Books", "Details", "Event", "Instrument", "Notice", "Quote", "Status",
           "Subscriber", "Trade", "sanitize", "state_name", "to_decimal", "to_float", "venue_name"]
