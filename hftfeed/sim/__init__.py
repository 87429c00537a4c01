"""hftfeed.sim: an exchange simulator that speaks a real venue's protocol (Binance spot first).

It is the ground truth for the end-to-end tests, the demo and the benchmark: a deterministic
random-walk book engine per symbol (``market``), a venue dialect that turns engine events into the
venue's exact JSON, paths, limits and keepalive rules (``binance``), an asyncio server for REST
and WebSocket on one port (``server``, ``protocol``, ``wsconn``, ``rest``), a JSON-lines journal of
everything generated (``journal``; read it back with ``tests/simtruth.py``), replays of a journal
or of a real capture (``sources``), and fault injection (``faults``, ``faultexec``).

Run it::

    python3 hftfeed.py sim --symbols BTCUSDT,ETHUSDT --rate 400 --record /tmp/j.jsonl
    -> SIM READY ws=ws://127.0.0.1:PORT rest=http://127.0.0.1:PORT   (the only stdout line)

or in-process: ``srv = await hftfeed.sim.server.start_sim(symbols=[...], rate=...)``;
``srv.port``, ``srv.status()``, ``srv.apply_fault(faults.normalize({...}))``, ``await srv.close()``.

Venue surface: ``/stream?streams=a/b`` and ``/ws/<stream>`` with ``<symbol>@depth@100ms``,
``@depth``, ``@trade``, ``@aggTrade``, ``@bookTicker``; live SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY; a ping every ``--ping-interval-s`` (20 s) that
must be answered with the same payload within ``--pong-timeout-s`` (60 s); more than
``--max-incoming-per-s`` (5) incoming frames a second closes with 1008; ``--lifetime-s`` (24 h)
with a ``{"e":"serverShutdown","E":ms}`` notice first (sent unwrapped on combined streams, too);
``GET /api/v3/depth`` with Binance's limits, weights, ``X-MBX-USED-WEIGHT-1M``, 429 then 418.

Control: ``POST /_sim/fault`` with ``{"fault": NAME, ...}`` -> ``{"ok":true}`` (400 with a reason
otherwise); ``GET /_sim/status``. Fault names and parameters: ``faults.FAULT_PARAMS``. Measure
throughput with ``python3 -m hftfeed.sim.bench``.
"""
