"""hftfeed.tools.sim: an exchange simulator that speaks a real venue's protocol.

It is the ground truth for the end-to-end tests, the demo and the benchmark: a deterministic
random-walk book engine per symbol (``market``), a venue dialect that turns engine events into the
venue's exact JSON, paths, limits and keepalive rules (``binance`` for spot, ``binance_usdm``
for USD-M and COIN-M, ``bybit`` for linear, inverse and spot, ``okx``, ``deribit``, ``bitget``), an asyncio server for REST and WebSocket on one port (``server``,
``protocol``, ``wsconn``, ``rest``), a JSON-lines journal of everything generated (``journal``;
read it back with ``tests/simtruth.py``), replays of a journal or of a real capture
(``sources``), and fault injection (``faults``, ``faultexec``). ``mirror`` keeps a per-event copy
of each book for the venues that need one (OKX checksums, Bybit's restart snapshot);
``decimals`` prints prices the way each venue does.

Run it::

    python3 hftfeed.py sim --venue okx --symbols BTC-USDT-SWAP --rate 400 --record /tmp/j.jsonl
    -> SIM READY ws=ws://127.0.0.1:PORT rest=http://127.0.0.1:PORT   (the only stdout line)

or in-process: ``srv = await hftfeed.tools.sim.server.start_sim(venue=..., symbols=[...], rate=...)``;
``srv.port``, ``srv.status()``, ``srv.apply_fault(faults.normalize({...}))``, ``await srv.close()``.
Every limit defaults to the chosen venue's own value (``config.VENUE_DEFAULTS``).

Venue surfaces (details in each dialect's docstring):

* ``binance`` (spot): ``/stream?streams=a/b`` and ``/ws/<stream>``; ``@depth@100ms``, ``@depth``,
  ``@trade``, ``@aggTrade``, ``@bookTicker``; live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS /
  SET_PROPERTY / GET_PROPERTY; a ping every 20 s answered within 60 s; 5 incoming messages a
  second; 24 h lifetime with a ``serverShutdown`` notice; ``GET /api/v3/depth`` with Binance's
  limits, weights, ``X-MBX-USED-WEIGHT-1M``, 429 then 418.
* ``binance-usdm``: the same under ``/public`` (``@depth*``, ``@bookTicker``) and ``/market``
  (``@aggTrade``) or the unsplit paths; ``T`` and ``pu`` in depth events; pings every 3 minutes,
  pong within 10 (unsolicited pongs count); ``GET /fapi/v1/depth``, 2400 weight a minute.
* ``bybit`` (``/v5/public/linear``): ``op`` subscribe / unsubscribe / ping with answers;
  ``orderbook.50`` snapshot then ``u + 1`` deltas, ``orderbook.1``, ``publicTrade``; idle
  clients dropped; fault ``bybit_restart`` (a ``u == 1`` snapshot).
* ``okx`` (``/ws/v5/public``): per-arg subscribe answers and errors; ``books`` snapshot then
  ``prevSeqId``-chained updates with CRC32 checksums (or 0), empty keepalive updates, ``trades``,
  ``bbo-tbt``; text ``ping`` -> ``pong``; closed after 30 s without pushes or subscriptions;
  faults ``okx_seq_reset`` (seqId goes down) and ``bad_checksum``.
* ``binance-coinm``: USD-M's dialect without the URL split, ``ps`` in depth and bookTicker,
  ``GET /dapi/v1/depth``. ``bybit-spot`` / ``bybit-inverse``: Bybit's dialect on
  ``/v5/public/spot`` (pong ``"op":"pong"``, decimal trade ids) and ``/v5/public/inverse``.
* ``deribit`` (``/ws/api/v2``): JSON-RPC subscribe / unsubscribe / set_heartbeat / test;
  ``book.X.100ms`` snapshot then ``prev_change_id``-chained changes, ``trades.X.100ms``,
  ``quote.X``; ``test_request`` every heartbeat interval, unanswered -> closed.
* ``bitget`` / ``bitget-futures`` (``/v2/ws/public``, instType SPOT / USDT-FUTURES): per-arg
  answers; ``books`` snapshot then ``seq``/``pseq`` updates with CRC32 checksums, ``trade``,
  ``ticker``; text ``ping`` -> ``pong``; closed after 2 minutes without a ping.
* ``coinbase`` (the root path): one request per channel (``level2``, ``market_trades``,
  ``ticker``, ``heartbeats``), each answered by ``subscriptions``; ``sequence_num`` counted per
  connection across channels; ``drop_diff`` loses a message in transit (every receiver skips a
  number).
* ``kraken`` (``/v2``): per-symbol answers, ``ping`` -> ``pong``, ``heartbeat``; ``instrument``
  precisions; ``book`` at depths 10-1000 with the top-10 CRC32 and no deletion for levels pushed
  out of the depth; ``trade``, ``ticker``; fault ``bad_checksum``.

Control: ``POST /_sim/fault`` with ``{"fault": NAME, ...}`` -> ``{"ok":true}`` (400 with a reason
otherwise); ``GET /_sim/status``. Fault names and parameters: ``faults.FAULT_PARAMS``. Measure
throughput with ``python3 -m hftfeed.tools.sim.bench --venue NAME``.
"""
