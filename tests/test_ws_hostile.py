"""The real WebSocket client (transport/ws.py on codecs/ws_proto.py) against a hostile loopback
server: a message that never ends must fail the connection with 1009, with bounded memory."""

import asyncio

import pytest

from hftfeed.codecs import ws_proto as wp
from hftfeed.errors import MessageTooBig
from hftfeed.transport import ws

START = bytes.fromhex("01015b")              # TEXT, not fin, "["
EMPTY_CONTINUATION = bytes.fromhex("0000")   # CONT, not fin, empty
CHUNK = EMPTY_CONTINUATION * 32768           # 64 KiB of frames per write


async def endless_fragments_server(report):
    """Answer the upgrade, start a message, then send empty continuation frames until the
    client's close frame arrives (or 64 MiB went out); record what the client sent back."""
    async def serve(reader, writer):
        head, _ = wp.parse_http_head(await reader.readuntil(b"\r\n\r\n"))
        _path, headers = wp.parse_client_request(head)
        writer.write(wp.build_server_response(headers["sec-websocket-key"]) + START)
        peer = wp.Connection(wp.SERVER)
        sent = 0
        try:
            while sent < 64 * 2 ** 20 and not report["events"]:
                writer.write(CHUNK)
                sent += len(CHUNK)
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.001)
                except asyncio.TimeoutError:
                    continue
                report["events"].extend(peer.receive_data(data))
        except (ConnectionError, OSError):
            pass                      # the client hung up: what it sent first is in the report
        report["sent"] = sent
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_endless_empty_continuations_close_the_client_with_1009():
    async def scenario():
        report = {"events": []}
        server, port = await endless_fragments_server(report)
        messages = []
        client = await ws.connect("ws://127.0.0.1:%d/" % port, lambda m, t: messages.append(m),
                                  max_message_bytes=2 ** 20)
        with pytest.raises(MessageTooBig) as info:
            await asyncio.wait_for(client.closed, 20.0)
        for _ in range(200):
            if report["events"] or "sent" in report:
                break
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return report, messages, info.value

    report, messages, err = asyncio.run(scenario())
    assert messages == []
    assert err.close_code == wp.CloseCode.MESSAGE_TOO_BIG
    assert "over 1024 frames" in str(err)          # 1 MiB limit -> default 1024 frames
    closes = [e for e in report["events"] if isinstance(e, wp.Close)]
    assert closes and closes[0].code == 1009
    # it stopped long before the 64 MiB the server was willing to send
    assert report.get("sent", 0) < 16 * 2 ** 20
