"""Specification of hftfeed.codecs.http_proto: GET requests and incremental HTTP/1.1 response parsing."""

import pytest

from hftfeed import __version__
from hftfeed.errors import HttpError
from hftfeed.codecs.http_proto import ResponseParser, build_get_request, retry_after_seconds

JSON_BODY = b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[]}'
CL_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n"
               b"Content-Length: %d\r\nX-MBX-USED-WEIGHT-1M: 5\r\n\r\n" % len(JSON_BODY)) + JSON_BODY
CHUNKED_RESPONSE = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nHello\r\n"
                    b"7;ext=1\r\n, world\r\n"
                    b"0\r\nX-Checksum: abc\r\n\r\n")


def parse_all(data, split, eof=False, max_body_bytes=1 << 20):
    """Feed ``data`` whole or byte by byte; return every response produced (and the parser)."""
    parser = ResponseParser(max_body_bytes)
    out = []
    chunks = [data] if split == "whole" else [data[i:i + 1] for i in range(len(data))]
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            response = parser.next_response()
            if response is None:
                break
            out.append(response)
    if eof:
        parser.feed(b"")
        response = parser.next_response()
        if response is not None:
            out.append(response)
    return out, parser


# ------------------------------------------------------------------ requests

def test_get_request_has_exact_head():
    raw = build_get_request("api.binance.com", "/api/v3/depth?symbol=BTCUSDT&limit=1000",
                            headers=[("X-Test", "1")])
    assert raw == (b"GET /api/v3/depth?symbol=BTCUSDT&limit=1000 HTTP/1.1\r\n"
                   b"Host: api.binance.com\r\n"
                   b"User-Agent: hftfeed/" + __version__.encode() + b"\r\n"
                   b"Accept-Encoding: identity\r\n"
                   b"Connection: keep-alive\r\n"
                   b"X-Test: 1\r\n\r\n")


@pytest.mark.parametrize("target", ["no-slash", "/a b", "/a\r\nX: y"])
def test_get_request_refuses_unsafe_targets(target):
    with pytest.raises(ValueError):
        build_get_request("h", target)


# ------------------------------------------------------------------ bodies

@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_content_length_response(split):
    out, parser = parse_all(CL_RESPONSE, split)
    assert len(out) == 1
    r = out[0]
    assert (r.status, r.reason, r.body, r.keep_alive) == (200, "OK", JSON_BODY, True)
    assert r.headers["content-type"] == "application/json;charset=UTF-8"
    assert r.headers["x-mbx-used-weight-1m"] == "5"
    assert parser.buffered_bytes() == 0


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_chunked_response_with_extension_and_trailer(split):
    out, _ = parse_all(CHUNKED_RESPONSE, split)
    assert len(out) == 1
    assert out[0].body == b"Hello, world"
    assert out[0].headers["x-checksum"] == "abc"
    assert out[0].keep_alive


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_next_response_bytes_trailing_are_kept_for_the_next_call(split):
    second = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    out, parser = parse_all(CL_RESPONSE + CHUNKED_RESPONSE + second + b"HTTP/1.1 2", split)
    assert [(r.status, r.body) for r in out] == [(200, JSON_BODY), (200, b"Hello, world"), (404, b"no")]
    assert parser.buffered_bytes() == len(b"HTTP/1.1 2")
    assert not parser.at_response_start()


def test_chunked_without_trailers():
    out, _ = parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "whole")
    assert out[0].body == b"abc"


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_read_until_close_body_completes_at_eof(split):
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    out, _ = parse_all(data, split)
    assert out == []                            # not complete until the server closes
    out, _ = parse_all(data, split, eof=True)
    assert out[0].body == b"all of it" and out[0].keep_alive is False


def test_no_body_for_204_and_interim_100_is_skipped():
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    out, _ = parse_all(data, "whole")
    assert [(r.status, r.body) for r in out] == [(204, b""), (200, b"x")]


@pytest.mark.parametrize("head, keep_alive", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0", True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3", False),
])
def test_keep_alive_follows_version_and_connection_header(head, keep_alive):
    body = b"0\r\n\r\n" if b"chunked" in head else b""
    out, _ = parse_all(head + b"\r\n\r\n" + body, "whole")
    assert out[0].keep_alive is keep_alive


def test_transfer_encoding_overrides_content_length():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    out, _ = parse_all(data, "whole")
    assert out[0].body == b"ok"


def test_status_without_reason_phrase_is_accepted():
    out, _ = parse_all(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "whole")
    assert out[0].status == 200 and out[0].reason == ""


def test_repeated_header_fields_are_joined():
    out, _ = parse_all(b"HTTP/1.1 200 OK\r\nVia: a\r\nVia: b\r\nContent-Length: 0\r\n\r\n", "whole")
    assert out[0].headers["via"] == "a, b"


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("data", [
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 099 Low\r\n\r\n",
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
])
def test_malformed_responses_raise_http_error(data):
    with pytest.raises(HttpError):
        parse_all(data, "whole")


def test_chunk_size_line_is_bounded():
    with pytest.raises(HttpError):
        parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, "whole")


def test_head_size_is_bounded():
    parser = ResponseParser(1000, max_head_bytes=1024)
    parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 2000)
    with pytest.raises(HttpError):
        parser.next_response()


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n41\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101,
])
def test_body_over_max_raises_http_error(data):
    with pytest.raises(HttpError):
        parse_all(data, "whole", max_body_bytes=100)


@pytest.mark.parametrize("data", [
    CL_RESPONSE[:-5],
    CHUNKED_RESPONSE[:-10],
    CL_RESPONSE[:20],
])
def test_truncated_response_at_eof_raises_http_error(data):
    with pytest.raises(HttpError):
        parse_all(data, "whole", eof=True)


def test_eof_before_any_byte_is_an_error_and_the_parser_says_nothing_arrived():
    parser = ResponseParser(100)
    assert parser.at_response_start()
    parser.feed(b"")
    with pytest.raises(HttpError):
        parser.next_response()
    assert parser.at_response_start()


# ------------------------------------------------------------------ Retry-After

def test_retry_after_delta_seconds():
    assert retry_after_seconds({"retry-after": "120"}) == 120.0
    assert retry_after_seconds({"retry-after": " 0 "}) == 0.0


def test_retry_after_http_date_is_relative_to_now():
    # Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch (RFC 9110 §5.6.7 example)
    assert retry_after_seconds({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}, now_s=784111777 - 30) == 30.0
    assert retry_after_seconds({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}, now_s=784111777 + 30) == 0.0


@pytest.mark.parametrize("headers", [{}, {"retry-after": "soon"}, {"retry-after": "-5"}, {"retry-after": ""}])
def test_retry_after_absent_or_invalid_is_none(headers):
    assert retry_after_seconds(headers) is None


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 42\xb9 Too Many\r\nContent-Length: 0\r\n\r\n",          # found by tests/fuzz.py
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb9\r\n\r\n",
])
def test_non_ascii_digits_are_malformed_not_a_crash(head):
    parser = ResponseParser(max_body_bytes=1000)
    parser.feed(head)
    with pytest.raises(HttpError):
        parser.next_response()


# Retry-After is venue-supplied: parsed defensively and capped (MAX_RETRY_AFTER_S).

from hftfeed.codecs.http_proto import MAX_RETRY_AFTER_S  # noqa: E402


@pytest.mark.parametrize("value", ["99999999999", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT",
                                   "0" * 50 + "1" + "0" * 20])
def test_retry_after_beyond_the_cap_means_the_cap_never_for_ever_nor_an_exception(value):
    assert retry_after_seconds({"retry-after": value}, now_s=1.7e9) == MAX_RETRY_AFTER_S


@pytest.mark.parametrize("value", ["1e9", "12.5", "0x10", "Mon, 99 Foo 2026 99:99:99 GMT",
                                   "Fri, 31 Dec 9999 23:59:59" + " " * 5000 + "GMT", "\x00\x1b",
                                   "Fri, 31 Dec 99999999999999999999 23:59:59 GMT"])
def test_retry_after_garbage_is_none(value):
    assert retry_after_seconds({"retry-after": value}, now_s=1.7e9) is None


def test_retry_after_leading_zeros_are_still_a_number():
    assert retry_after_seconds({"retry-after": "0000000000000000030"}) == 30.0
