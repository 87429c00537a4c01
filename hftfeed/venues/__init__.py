"""Exchange adapters: one module per venue, each only a translator.

An adapter turns the venue's messages into the shared update types (``hftfeed/core/updates.py``) and
supplies the venue's continuity rule (a ``hftfeed.core.sync.SyncRule``) and its connection facts (URLs,
limits, subscribe messages). Connecting, reconnecting, snapshots, resync and publishing live in
``hftfeed/pipeline/feed.py`` and are shared by every venue.
"""

from hftfeed.venues import binance, binance_usdm, bybit, okx

#: config "venue" value -> adapter class
VENUES = {
    binance.BinanceSpot.NAME: binance.BinanceSpot,
    binance_usdm.BinanceUsdm.NAME: binance_usdm.BinanceUsdm,
    bybit.Bybit.NAME: bybit.Bybit,
    okx.Okx.NAME: okx.Okx,
}
