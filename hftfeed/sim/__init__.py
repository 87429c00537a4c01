"""hftfeed.sim: an exchange simulator that speaks a real venue's protocol (Binance spot first).

It is the ground truth for the end-to-end tests, the demo and the benchmark: a deterministic
random-walk book engine per symbol (``market``), a venue dialect that turns engine events into the
venue's exact JSON, paths and keepalive rules (``binance``), an asyncio server for REST and
WebSocket on one port (``server``), a JSON-lines journal of everything generated (``journal``),
and fault injection driven from the command line or a control endpoint (``faults``).

Entry points: ``hftfeed.sim.cli.main(argv)`` and ``await hftfeed.sim.server.start_sim(config)``.
"""
