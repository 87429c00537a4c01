"""The simulator serves every registered venue's instruments endpoint (the registry's paths) in
that venue's JSON shape with its own values (tools/sim/instruments.py ``truth``), filters by the
query like the venue, and fails on request (faults ``instruments_status``,
``instruments_malformed``), then serves again."""

import asyncio
import json

import pytest

from hftfeed.errors import HttpStatusError
from hftfeed.tools.sim import faults, instruments
from hftfeed.tools.sim.server import start_sim
from hftfeed.transport.rest import HttpClient
from hftfeed.venues import registry


async def fetch_all(venue, symbols):
    srv = await start_sim(venue=venue, symbols=symbols, rate=10)
    client = HttpClient("http://127.0.0.1:%d" % srv.port, timeout_s=5)
    out = []
    try:
        for path in registry.spec(venue).instruments.paths:
            try:
                out.append((200, (await client.get(path)).body))
            except HttpStatusError as exc:
                out.append((exc.status, exc.body))
    finally:
        await client.close()
        await srv.close()
    return out


@pytest.mark.parametrize("venue", registry.NAMES)
def test_every_venue_lists_its_symbols_with_the_simulators_values(venue):
    symbols = list(registry.spec(venue).demo_symbols)
    answers = asyncio.run(fetch_all(venue, symbols))
    assert all(status == 200 for status, _ in answers)
    text = b" ".join(body for _, body in answers).decode("ascii")
    for body in (b for _, b in answers):
        json.loads(body)                                  # every answer is JSON
    for symbol in symbols:
        listed = symbol.replace("BTC/", "XBT/") if venue == "kraken" else symbol
        assert '"%s"' % listed in text, (venue, symbol)
    assert instruments.truth(venue, symbols[0])[0] > 0


def test_the_query_filters_like_the_venue():
    okx = asyncio.run(fetch_all("okx", ["BTC-USDT", "BTC-USDT-SWAP"]))
    spot, swap, futures = (json.loads(b)["data"] for _, b in okx)
    assert [i["instId"] for i in spot] == ["BTC-USDT", "ZZZ-USDT"]
    assert [i["instId"] for i in swap] == ["BTC-USDT-SWAP"] and futures == []
    assert swap[0]["ctVal"] == "0.01" and spot[0]["ctVal"] == ""
    status, body = instruments.body("bybit", ["BTCUSDT"], "category=spot")
    assert json.loads(body)["retCode"] == 10001          # a linear venue asked for spot


@pytest.mark.parametrize("fault, status", [({"fault": "instruments_status", "code": 503}, 503),
                                           ({"fault": "instruments_malformed"}, 200)])
def test_faults_fail_the_next_request_then_it_serves_again(fault, status):
    paths = registry.spec("binance").instruments.paths

    async def twice():
        srv = await start_sim(venue="binance", symbols=["BTCUSDT"], rate=10)
        client = HttpClient("http://127.0.0.1:%d" % srv.port, timeout_s=5)
        try:
            srv.apply_fault(faults.normalize(fault))
            try:
                first = (200, (await client.get(paths[0])).body)
            except HttpStatusError as exc:
                first = (exc.status, exc.body)
            second = (await client.get(paths[0])).body
        finally:
            await client.close()
            await srv.close()
        return first, second
    first, second = asyncio.run(twice())
    assert first[0] == status
    if status == 200:
        with pytest.raises(ValueError):
            json.loads(first[1])
    assert json.loads(second)["symbols"][0]["symbol"] == "BTCUSDT"


def test_a_bad_fault_code_is_refused():
    with pytest.raises(faults.FaultSpecError):
        faults.normalize({"fault": "instruments_status", "code": 200})
