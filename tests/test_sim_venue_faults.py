"""Every simulator fault on the Binance USD-M, Bybit and OKX dialects: accepted where the venue
has the feature (REST faults need a REST snapshot), refused with a reason where it has not, and
the server keeps serving afterwards (hftfeed/tools/sim/faultexec.py with each dialect's hooks)."""

import asyncio
import json

import pytest

from hftfeed.errors import HftfeedError
from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.faults import FAULT_PARAMS, VENUE_FAULTS
from hftfeed.tools.sim.server import start_sim

HOST = "127.0.0.1"
REST_FAULTS = ("stale_snapshot", "rest_status", "rest_slow", "rest_truncated")
OWN = {"binance-usdm": (), "bybit": ("bybit_restart",), "okx": ("okx_seq_reset", "bad_checksum")}
SYMBOL = {"binance-usdm": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}


async def open_client(srv, venue):
    sym = SYMBOL[venue]
    if venue == "binance-usdm":
        return await rawclient.ws_connect(HOST, srv.port,
                                          "/public/stream?streams=btcusdt@depth@100ms")
    if venue == "bybit":
        ws = await rawclient.ws_connect(HOST, srv.port, "/v5/public/linear")
        ws.send_json({"op": "subscribe", "args": ["orderbook.50." + sym]})
        return ws
    ws = await rawclient.ws_connect(HOST, srv.port, "/ws/v5/public")
    ws.send_json({"op": "subscribe", "args": [{"channel": "books", "instId": sym}]})
    return ws


def spec_for(name, venue, conn_id):
    spec = {"fault": name}
    params = FAULT_PARAMS[name]
    if "conn" in params:
        spec["conn"] = conn_id
    if "symbol" in params:
        spec["symbol"] = SYMBOL[venue]
    if name in ("half_open", "server_shutdown"):
        spec["duration_s" if name == "half_open" else "after_s"] = 0.1
    if name == "lifetime":
        spec["seconds"] = 0.2
    if name == "oversized_frame":
        spec["bytes"] = 1000
    return spec


@pytest.mark.parametrize("venue", sorted(OWN))
def test_each_fault_is_accepted_or_refused_and_the_server_keeps_serving(venue):
    async def body():
        srv = await start_sim(venue=venue, symbols=[SYMBOL[venue]], rate=400)
        answers = {}
        try:
            for name in sorted(FAULT_PARAMS):
                ws = await open_client(srv, venue)
                await ws.recv_message()
                conn_id = max(c["id"] for c in srv.status()["connections"])
                status, reply = await rawclient.post_fault(HOST, srv.port,
                                                           spec_for(name, venue, conn_id))
                answers[name] = status, reply
                for _ in range(5):      # whatever the fault did, the reader copes
                    try:
                        await ws.recv(timeout_s=0.3)
                    except (asyncio.TimeoutError, ConnectionError, HftfeedError):
                        break           # silence, a close, or a frame broken on purpose
                ws.writer.close()
            fresh = await open_client(srv, venue)
            texts = [await fresh.recv_message() for _ in range(3)]
            await fresh.close()
        finally:
            await srv.close()
        return answers, texts

    answers, texts = asyncio.run(asyncio.wait_for(body(), 60))
    for name, (status, reply) in answers.items():
        refused = (name in VENUE_FAULTS and name not in OWN[venue]) or (
            venue != "binance-usdm" and name in REST_FAULTS)
        assert status == (400 if refused else 200), (name, reply)
        assert reply["ok"] is (not refused)
    for text in texts:
        json.loads(text)
