"""Specification of hftfeed.codecs.ws_proto: RFC 6455 framing, state machine and handshake helpers."""

import pytest

from hftfeed.codecs import ws_proto as wp
from hftfeed.errors import ConnectionClosed, InvalidHandshake, MessageTooBig, ProtocolError

MASK = bytes.fromhex("37fa213d")
HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")             # RFC 6455 §5.7
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")       # RFC 6455 §5.7
HEL_FRAGMENT = bytes.fromhex("010348656c")                   # RFC 6455 §5.7
LO_FRAGMENT = bytes.fromhex("80026c6f")                      # RFC 6455 §5.7
PING_HELLO_UNMASKED = bytes.fromhex("890548656c6c6f")        # RFC 6455 §5.7
PONG_HELLO_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")  # RFC 6455 §5.7


def fixed_keys(*keys):
    """A mask_key_source returning the given keys in turn."""
    it = iter(keys)
    return lambda n: next(it)


def parse_all(parser, data, split):
    """Feed ``data`` to ``parser`` as one read ("whole") or byte by byte, returning all frames."""
    frames = []
    chunks = [data] if split == "whole" else [data[i:i + 1] for i in range(len(data))]
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            frame = parser.next_frame()
            if frame is None:
                break
            frames.append(frame)
    return frames


def feed_conn(conn, data, split):
    events = []
    if split == "whole":
        return conn.receive_data(data)
    for i in range(len(data)):
        events.extend(conn.receive_data(data[i:i + 1]))
    return events


# ------------------------------------------------------------------ encode_frame, RFC examples

def test_encode_unmasked_hello_matches_rfc_example():
    assert wp.encode_frame(wp.OP_TEXT, b"Hello") == HELLO_UNMASKED


def test_encode_masked_hello_matches_rfc_example():
    assert wp.encode_frame(wp.OP_TEXT, b"Hello", mask_key=MASK) == HELLO_MASKED


def test_encode_fragments_and_ping_match_rfc_examples():
    assert wp.encode_frame(wp.OP_TEXT, b"Hel", fin=False) == HEL_FRAGMENT
    assert wp.encode_frame(wp.OP_CONT, b"lo") == LO_FRAGMENT
    assert wp.encode_frame(wp.OP_PING, b"Hello") == PING_HELLO_UNMASKED
    assert wp.encode_frame(wp.OP_PONG, b"Hello", mask_key=MASK) == PONG_HELLO_MASKED


def test_encode_256_byte_binary_uses_16_bit_length():
    frame = wp.encode_frame(wp.OP_BINARY, bytes(256))
    assert frame[:4] == bytes.fromhex("827e0100")
    assert len(frame) == 4 + 256


def test_encode_64_kib_binary_uses_64_bit_length():
    frame = wp.encode_frame(wp.OP_BINARY, bytes(65536))
    assert frame[:10] == bytes.fromhex("827f0000000000010000")
    assert len(frame) == 10 + 65536


def test_encode_boundary_lengths_125_126_65535():
    assert wp.encode_frame(wp.OP_BINARY, bytes(125))[:2] == bytes.fromhex("827d")
    assert wp.encode_frame(wp.OP_BINARY, bytes(126))[:4] == bytes.fromhex("827e007e")
    assert wp.encode_frame(wp.OP_BINARY, bytes(65535))[:4] == bytes.fromhex("827effff")


def test_encode_does_not_validate_so_faults_can_be_injected():
    frame = wp.encode_frame(wp.OP_PING, bytes(200), fin=False, rsv=4)
    assert frame[:4] == bytes.fromhex("49 7e 00 c8".replace(" ", ""))


# ------------------------------------------------------------------ FrameParser

@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_parser_reads_rfc_examples(split):
    client_side = wp.FrameParser(expect_masked=False, max_frame_bytes=1 << 20)
    data = HELLO_UNMASKED + HEL_FRAGMENT + LO_FRAGMENT + PING_HELLO_UNMASKED
    frames = parse_all(client_side, data, split)
    assert [(f.fin, f.opcode, f.payload) for f in frames] == [
        (True, wp.OP_TEXT, b"Hello"), (False, wp.OP_TEXT, b"Hel"),
        (True, wp.OP_CONT, b"lo"), (True, wp.OP_PING, b"Hello")]
    server_side = wp.FrameParser(expect_masked=True, max_frame_bytes=1 << 20)
    frames = parse_all(server_side, HELLO_MASKED + PONG_HELLO_MASKED, split)
    assert [(f.opcode, f.payload) for f in frames] == [(wp.OP_TEXT, b"Hello"), (wp.OP_PONG, b"Hello")]


@pytest.mark.parametrize("size", [0, 125, 126, 256, 65535, 65536, 70000])
def test_parser_reads_every_length_encoding(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    parser = wp.FrameParser(expect_masked=False, max_frame_bytes=1 << 20)
    frames = parse_all(parser, wp.encode_frame(wp.OP_BINARY, payload), "whole")
    assert len(frames) == 1 and frames[0].payload == payload


def test_parser_leaves_trailing_bytes_of_next_frame_for_later():
    parser = wp.FrameParser(expect_masked=False, max_frame_bytes=1 << 20)
    parser.feed(HELLO_UNMASKED + HELLO_UNMASKED[:3])
    assert parser.next_frame().payload == b"Hello"
    assert parser.next_frame() is None
    assert parser.buffered_bytes() == 3
    parser.feed(HELLO_UNMASKED[3:])
    assert parser.next_frame().payload == b"Hello"
    assert parser.next_frame() is None


def test_parser_assembles_large_frame_from_many_small_reads():
    payload = bytes(range(256)) * 1024
    data = wp.encode_frame(wp.OP_BINARY, payload, mask_key=MASK)
    parser = wp.FrameParser(expect_masked=True, max_frame_bytes=1 << 20)
    got = []
    for i in range(0, len(data), 1000):
        parser.feed(data[i:i + 1000])
        frame = parser.next_frame()
        if frame is not None:
            got.append(frame)
    assert len(got) == 1 and got[0].payload == payload


def test_masked_payload_is_unmasked_with_the_frame_key():
    frame_bytes = wp.encode_frame(wp.OP_TEXT, "é€x" * 50, mask_key=b"\x01\x02\x03\x04")
    parser = wp.FrameParser(expect_masked=True, max_frame_bytes=1000)
    parser.feed(frame_bytes)
    assert parser.next_frame().payload == ("é€x" * 50).encode("utf-8")


@pytest.mark.parametrize("expect_masked, data, why", [
    (True, HELLO_UNMASKED, "server receives an unmasked frame (§5.1)"),
    (False, HELLO_MASKED, "client receives a masked frame (§5.1)"),
    (False, bytes.fromhex("c100"), "RSV1 set without extension"),
    (False, bytes.fromhex("a100"), "RSV2 set without extension"),
    (False, bytes.fromhex("9100"), "RSV3 set without extension"),
    (False, bytes.fromhex("8300"), "reserved data opcode 3"),
    (False, bytes.fromhex("8b00"), "reserved control opcode 11"),
    (False, bytes.fromhex("897e007e") + bytes(126), "control frame over 125 bytes"),
    (False, bytes.fromhex("0900"), "fragmented ping"),
    (False, bytes.fromhex("827f8000000000000001"), "64-bit length with MSB set"),
])
def test_parser_rejects_protocol_violations_with_1002(expect_masked, data, why):
    parser = wp.FrameParser(expect_masked=expect_masked, max_frame_bytes=1 << 20)
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        parser.next_frame()
    assert info.value.close_code == 1002, why


def test_parser_rejects_oversized_frame_from_its_header_alone():
    parser = wp.FrameParser(expect_masked=False, max_frame_bytes=100)
    parser.feed(wp.encode_frame(wp.OP_BINARY, bytes(101))[:4])
    with pytest.raises(MessageTooBig) as info:
        parser.next_frame()
    assert info.value.close_code == 1009


# ------------------------------------------------------------------ Connection: receiving

@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_client_delivers_text_binary_and_fragmented_messages(split):
    client = wp.Connection(wp.CLIENT)
    data = (HELLO_UNMASKED + wp.encode_frame(wp.OP_BINARY, b"\x00\xff")
            + HEL_FRAGMENT + LO_FRAGMENT + HELLO_UNMASKED[:2])
    events = feed_conn(client, data, split)
    assert [(type(e), e.opcode, e.payload, e.text) for e in events] == [
        (wp.Message, wp.OP_TEXT, b"Hello", "Hello"),
        (wp.Message, wp.OP_BINARY, b"\x00\xff", None),
        (wp.Message, wp.OP_TEXT, b"Hello", "Hello")]
    assert client.messages_in == 3 and client.frames_in == 4
    assert client.bytes_in == len(data)


def test_control_frames_may_interleave_fragments():
    client = wp.Connection(wp.CLIENT, mask_key_source=fixed_keys(MASK))
    events = client.receive_data(HEL_FRAGMENT + PING_HELLO_UNMASKED + LO_FRAGMENT)
    assert isinstance(events[0], wp.Ping) and events[0].payload == b"Hello"
    assert isinstance(events[1], wp.Message) and events[1].text == "Hello"
    assert client.data_to_send() == PONG_HELLO_MASKED


def test_client_answers_ping_with_same_payload():
    client = wp.Connection(wp.CLIENT, mask_key_source=fixed_keys(MASK))
    events = client.receive_data(PING_HELLO_UNMASKED)
    assert len(events) == 1 and isinstance(events[0], wp.Ping) and events[0].payload == b"Hello"
    assert client.data_to_send() == PONG_HELLO_MASKED
    assert client.pings_in == 1 and client.pongs_out == 1


def test_auto_pong_off_leaves_the_pong_to_the_driver():
    client = wp.Connection(wp.CLIENT, auto_pong=False)
    events = client.receive_data(PING_HELLO_UNMASKED)
    assert isinstance(events[0], wp.Ping)
    assert client.data_to_send() == b""


def test_server_receives_pong_event():
    server = wp.Connection(wp.SERVER)
    events = server.receive_data(PONG_HELLO_MASKED)
    assert isinstance(events[0], wp.Pong) and events[0].payload == b"Hello"
    assert server.pongs_in == 1


def test_client_masks_every_frame_with_a_fresh_key():
    calls = []

    def source(n):
        calls.append(n)
        return bytes([len(calls)] * 4)

    client = wp.Connection(wp.CLIENT, mask_key_source=source)
    client.send_text("a")
    client.send_text("a")
    out = client.data_to_send()
    assert calls == [4, 4]
    assert out == (wp.encode_frame(wp.OP_TEXT, b"a", b"\x01\x01\x01\x01")
                   + wp.encode_frame(wp.OP_TEXT, b"a", b"\x02\x02\x02\x02"))


def test_server_frames_are_unmasked():
    server = wp.Connection(wp.SERVER)
    server.send_text("Hello")
    assert server.data_to_send() == HELLO_UNMASKED


def test_send_binary_and_ping_and_pong_encode_expected_frames():
    server = wp.Connection(wp.SERVER)
    server.send_binary(b"\x01\x02")
    server.send_ping(b"p")
    server.send_pong(b"q")
    assert server.data_to_send() == bytes.fromhex("82020102") + b"\x89\x01p" + b"\x8a\x01q"
    with pytest.raises(ValueError):
        server.send_ping(bytes(126))


def test_server_sends_text_given_as_preencoded_bytes():
    server = wp.Connection(wp.SERVER)
    server.send_text(b"Hello")
    assert server.data_to_send() == HELLO_UNMASKED


def expect_failure(conn, data, code):
    """Feed ``data`` and check the ProtocolError code and the queued close frame."""
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data)
    assert info.value.close_code == code
    assert conn.state == wp.STATE_CLOSED and conn.close_code == code
    out = conn.data_to_send()
    parser = wp.FrameParser(expect_masked=conn.role == wp.CLIENT, max_frame_bytes=1000)
    parser.feed(out)
    frame = parser.next_frame()
    assert frame.opcode == wp.OP_CLOSE and frame.payload[:2] == code.to_bytes(2, "big")
    return info.value


@pytest.mark.parametrize("data, code, why", [
    (LO_FRAGMENT, 1002, "continuation without a start"),
    (HEL_FRAGMENT + HELLO_UNMASKED, 1002, "new data frame during a fragmented message"),
    (HEL_FRAGMENT + wp.encode_frame(wp.OP_BINARY, b"x", fin=False), 1002, "new fragmented start"),
    (wp.encode_frame(wp.OP_TEXT, b"\xff\xfe"), 1007, "invalid UTF-8 text"),
    (wp.encode_frame(wp.OP_TEXT, b"\xed\xa0\x80"), 1007, "UTF-16 surrogate encoded in UTF-8"),
    (wp.encode_frame(wp.OP_TEXT, b"\xc3", fin=False) + wp.encode_frame(wp.OP_CONT, b"\x28"), 1007,
     "invalid UTF-8 across fragments"),
    (bytes.fromhex("c100"), 1002, "reserved bit"),
    (HELLO_MASKED, 1002, "masked frame to a client"),
    (bytes.fromhex("8801") + b"\x03", 1002, "1-byte close payload"),
    (wp.encode_frame(wp.OP_CLOSE, b"\x03\xe8\xff"), 1007, "close reason not UTF-8"),
])
def test_client_fails_connection_on_protocol_errors(data, code, why):
    client = wp.Connection(wp.CLIENT)
    expect_failure(client, data, code)


@pytest.mark.parametrize("bad_code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes_on_the_wire_are_rejected(bad_code):
    client = wp.Connection(wp.CLIENT)
    expect_failure(client, wp.encode_frame(wp.OP_CLOSE, bad_code.to_bytes(2, "big")), 1002)


@pytest.mark.parametrize("good_code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes_are_accepted(good_code):
    client = wp.Connection(wp.CLIENT)
    events = client.receive_data(wp.encode_frame(wp.OP_CLOSE, good_code.to_bytes(2, "big") + b"why"))
    assert events[0].code == good_code and events[0].reason == "why"


def test_frame_over_max_fails_with_1009():
    client = wp.Connection(wp.CLIENT, max_message_bytes=10)
    err = expect_failure(client, wp.encode_frame(wp.OP_TEXT, b"x" * 11), 1009)
    assert isinstance(err, MessageTooBig)


def test_reassembled_message_over_max_fails_with_1009():
    client = wp.Connection(wp.CLIENT, max_message_bytes=10)
    data = wp.encode_frame(wp.OP_TEXT, b"x" * 6, fin=False) + wp.encode_frame(wp.OP_CONT, b"x" * 6)
    err = expect_failure(client, data, 1009)
    assert isinstance(err, MessageTooBig)


EMPTY_CONTINUATION = bytes.fromhex("0000")      # CONT, not fin, no payload: 2 bytes on the wire
OPEN_BRACKET_START = bytes.fromhex("01015b")    # TEXT, not fin, "["


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_endless_empty_continuation_frames_trip_1009_at_the_frame_limit(split):
    client = wp.Connection(wp.CLIENT, max_message_bytes=1 << 20, max_message_frames=100)
    feed_conn(client, OPEN_BRACKET_START + EMPTY_CONTINUATION * 99, split)
    assert client.state == wp.STATE_OPEN            # 100 frames: still within the limit
    assert len(client._frag_parts) == 1             # empty frames are counted, not stored
    err = expect_failure(client, EMPTY_CONTINUATION, 1009)
    assert isinstance(err, MessageTooBig) and "over 100 frames" in str(err)


def test_frame_headers_count_against_the_message_size_limit():
    """1 payload byte and 1,200 header bytes: over a 1,024-byte limit although the payload is 1."""
    client = wp.Connection(wp.CLIENT, max_message_bytes=1024, max_message_frames=10 ** 6)
    with pytest.raises(MessageTooBig) as info:
        client.receive_data(OPEN_BRACKET_START + EMPTY_CONTINUATION * 600)
    assert info.value.close_code == wp.CloseCode.MESSAGE_TOO_BIG
    assert client.close_code == 1009


def test_a_message_in_many_frames_within_the_limits_is_delivered_whole_with_trailing_bytes():
    client = wp.Connection(wp.CLIENT, max_message_bytes=4096, max_message_frames=50)
    data = OPEN_BRACKET_START + EMPTY_CONTINUATION * 10 + wp.encode_frame(wp.OP_CONT, b"1]")
    events = feed_conn(client, data + HELLO_UNMASKED[:3], "bytewise")
    assert [e.text for e in events] == ["[1]"]
    # the counters start again with the next message
    events = client.receive_data(HELLO_UNMASKED[3:] + OPEN_BRACKET_START
                                 + EMPTY_CONTINUATION * 48 + wp.encode_frame(wp.OP_CONT, b"]"))
    assert [e.text for e in events] == ["Hello", "[]"]


def test_the_default_frame_limit_scales_with_the_size_limit():
    assert wp.default_max_message_frames(100) == wp.MIN_MAX_MESSAGE_FRAMES == 1024
    assert wp.default_max_message_frames(16 * 2 ** 20) == 16384
    assert wp.Connection(wp.CLIENT, max_message_bytes=4 * 2 ** 20).max_message_frames == 4096


def test_close_codes_are_an_intenum_matching_rfc6455():
    assert wp.CloseCode.NORMAL == 1000 and wp.CloseCode.MESSAGE_TOO_BIG == 1009
    assert [c for c in wp.CloseCode if wp.is_valid_close_code(c)] == [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
    assert wp.encode_close_payload(wp.CloseCode.GOING_AWAY, "bye") == b"\x03\xe9bye"


def test_server_rejects_unmasked_client_frame():
    server = wp.Connection(wp.SERVER)
    expect_failure(server, HELLO_UNMASKED, 1002)


def test_events_before_a_protocol_error_are_kept_on_the_exception():
    client = wp.Connection(wp.CLIENT)
    with pytest.raises(ProtocolError) as info:
        client.receive_data(HELLO_UNMASKED + LO_FRAGMENT)
    assert [e.text for e in info.value.events] == ["Hello"]


def test_nothing_is_parsed_or_sent_after_a_protocol_error():
    client = wp.Connection(wp.CLIENT)
    with pytest.raises(ProtocolError):
        client.receive_data(LO_FRAGMENT)
    client.data_to_send()
    assert client.receive_data(PING_HELLO_UNMASKED) == []
    assert client.data_to_send() == b""
    with pytest.raises(ConnectionClosed):
        client.send_text("late")


# ------------------------------------------------------------------ closing handshake

def test_close_initiated_by_client_is_echoed_by_server():
    client = wp.Connection(wp.CLIENT)
    server = wp.Connection(wp.SERVER)
    client.send_close(1000, "bye")
    assert client.state == wp.STATE_CLOSING
    events = server.receive_data(client.data_to_send())
    assert [(type(e), e.code, e.reason) for e in events] == [(wp.Close, 1000, "bye")]
    assert server.state == wp.STATE_CLOSED
    events = client.receive_data(server.data_to_send())
    assert events[0].code == 1000
    assert client.state == wp.STATE_CLOSED and client.close_code == 1000
    assert client.data_to_send() == b""     # no second close frame from the initiator


def test_close_initiated_by_server_is_echoed_by_client():
    client = wp.Connection(wp.CLIENT, mask_key_source=fixed_keys(MASK))
    server = wp.Connection(wp.SERVER)
    server.send_close(1001, "going away")
    events = client.receive_data(server.data_to_send())
    assert (events[0].code, events[0].reason) == (1001, "going away")
    assert client.data_to_send() == wp.encode_frame(wp.OP_CLOSE, b"\x03\xe9", MASK)
    events = server.receive_data(wp.encode_frame(wp.OP_CLOSE, b"\x03\xe9", MASK))
    assert events[0].code == 1001 and server.state == wp.STATE_CLOSED


def test_close_without_status_is_reported_as_1005_and_echoed_empty():
    client = wp.Connection(wp.CLIENT, mask_key_source=fixed_keys(MASK))
    events = client.receive_data(bytes.fromhex("8800"))
    assert events[0].code == 1005
    assert client.data_to_send() == bytes.fromhex("8880") + MASK


def test_data_messages_still_arrive_while_our_close_is_in_flight():
    client = wp.Connection(wp.CLIENT)
    client.send_close()
    events = client.receive_data(HELLO_UNMASKED + wp.encode_frame(wp.OP_CLOSE, b"\x03\xe8"))
    assert [type(e) for e in events] == [wp.Message, wp.Close]


def test_nothing_is_sent_after_close_not_even_pongs():
    client = wp.Connection(wp.CLIENT)
    client.send_close()
    client.data_to_send()
    client.receive_data(PING_HELLO_UNMASKED)
    assert client.data_to_send() == b""
    with pytest.raises(ConnectionClosed):
        client.send_text("x")
    client.send_close()                     # second close is a no-op
    assert client.data_to_send() == b""


def test_bytes_after_a_close_frame_are_ignored():
    client = wp.Connection(wp.CLIENT)
    events = client.receive_data(wp.encode_frame(wp.OP_CLOSE, b"\x03\xe8") + HELLO_UNMASKED)
    assert [type(e) for e in events] == [wp.Close]
    assert client.receive_data(HELLO_UNMASKED) == []


def test_eof_without_close_frame_reports_1006():
    client = wp.Connection(wp.CLIENT)
    events = client.receive_data(b"")
    assert [(type(e), e.code) for e in events] == [(wp.Close, 1006)]
    assert client.state == wp.STATE_CLOSED and client.close_code == 1006


def test_eof_after_completed_close_handshake_reports_nothing():
    client = wp.Connection(wp.CLIENT)
    client.receive_data(wp.encode_frame(wp.OP_CLOSE, b"\x03\xe8"))
    assert client.receive_data(b"") == []
    assert client.close_code == 1000


def test_send_close_refuses_reserved_codes():
    with pytest.raises(ValueError):
        wp.Connection(wp.SERVER).send_close(1006)


# ------------------------------------------------------------------ handshake (§4)

def test_accept_key_matches_rfc_section_1_3_example():
    assert wp.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_make_client_key_is_base64_of_16_random_bytes():
    assert wp.make_client_key(lambda n: bytes(range(n))) == "AAECAwQFBgcICQoLDA0ODw=="


def test_host_header_brackets_ipv6_and_omits_default_ports():
    assert wp.host_header("example.com", 443, True) == "example.com"
    assert wp.host_header("example.com", 80, False) == "example.com"
    assert wp.host_header("example.com", 9443, True) == "example.com:9443"
    assert wp.host_header("::1", 8080, False) == "[::1]:8080"


def test_client_request_has_required_headers():
    req = wp.build_client_request("stream.example:9443", "/ws/btcusdt@depth", "dGhlIHNhbXBsZSBub25jZQ==",
                                  extra_headers=[("Origin", "http://x")])
    assert req.startswith(b"GET /ws/btcusdt@depth HTTP/1.1\r\n")
    assert req.endswith(b"\r\n\r\n")
    for line in (b"Host: stream.example:9443", b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13",
                 b"Origin: http://x"):
        assert b"\r\n" + line + b"\r\n" in req


def test_client_request_round_trips_through_server_parser():
    key = wp.make_client_key()
    head, consumed = wp.parse_http_head(wp.build_client_request("h", "/stream?streams=a/b", key))
    path, headers = wp.parse_client_request(head)
    assert path == "/stream?streams=a/b" and headers["sec-websocket-key"] == key


def test_parse_http_head_needs_blank_line_and_reports_consumed_bytes():
    response = wp.build_server_response("dGhlIHNhbXBsZSBub25jZQ==")
    assert wp.parse_http_head(response[:-1]) is None
    head, consumed = wp.parse_http_head(response + HELLO_UNMASKED)
    assert consumed == len(response)
    assert head.startswith(b"HTTP/1.1 101") and not head.endswith(b"\r\n")


def test_parse_http_head_byte_by_byte_finds_end_only_when_complete():
    response = wp.build_server_response("dGhlIHNhbXBsZSBub25jZQ==")
    for i in range(len(response)):
        assert wp.parse_http_head(response[:i]) is None
    assert wp.parse_http_head(response)[1] == len(response)


def test_parse_http_head_bounds_its_size():
    with pytest.raises(InvalidHandshake):
        wp.parse_http_head(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 20000, max_head_bytes=16384)


def test_server_response_passes_client_check():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head, _ = wp.parse_http_head(wp.build_server_response(key))
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    wp.check_server_response(head, key)


def test_client_check_is_case_insensitive_and_accepts_token_lists():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = ("HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
            "sec-websocket-accept: %s" % wp.accept_key(key)).encode()
    wp.check_server_response(head, key)


@pytest.mark.parametrize("head", [
    "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}",
    "HTTP/1.1 101 Switching\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}",
    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {acc}",
    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA",
    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade",
    "garbage\r\nUpgrade: websocket",
    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate",
])
def test_client_check_rejects_bad_responses(head):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with pytest.raises(InvalidHandshake):
        wp.check_server_response(head.format(acc=wp.accept_key(key)).encode(), key)


GOOD_REQUEST = ("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13")


@pytest.mark.parametrize("old, new", [
    ("GET /ws", "POST /ws"),
    ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"),
    ("Host: h\r\n", ""),
    ("Upgrade: websocket", "Upgrade: h2c"),
    ("Connection: Upgrade", "Connection: close"),
    ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
    ("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
    ("Version: 13", "Version: 8"),
    ("Host: h", "Host: h\r\n folded"),
])
def test_server_rejects_invalid_upgrade_requests(old, new):
    wp.parse_client_request(GOOD_REQUEST.encode())    # the base request is valid
    with pytest.raises(InvalidHandshake):
        wp.parse_client_request(GOOD_REQUEST.replace(old, new, 1).encode())


def test_rejection_is_a_complete_http_response():
    raw = wp.build_rejection(429, "Too Many Requests", b'{"code":-1003}')
    head, consumed = wp.parse_http_head(raw)
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"Content-Length: 14" in head and b"Connection: close" in head
    assert raw[consumed:] == b'{"code":-1003}'
