"""docs/PROTOCOL.md's test vectors are the encoder's exact bytes, and decode as described."""

import re
from pathlib import Path

from hftfeed.codecs import wire

from wire_vectors import VECTORS

DOC = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"


def doc_vectors():
    text = DOC.read_text()
    found = {}
    for name, body in re.findall(r"\*\*(\w+)\*\* \(\d+ bytes\): [^\n]*\n\n```hex\n(.*?)```",
                                 text, re.S):
        found[name] = bytes.fromhex("".join(body.split()))
    return found


def test_every_vector_in_the_doc_is_the_encoders_exact_bytes():
    found = doc_vectors()
    assert sorted(found) == sorted(name for name, _, _ in VECTORS)
    for name, _, data in VECTORS:
        assert found[name] == data, name


def test_the_vectors_cover_every_message_type_and_decode_whole_byte_by_byte_and_with_trailing():
    types = set()
    for name, _, data in VECTORS:
        packet = wire.decode_packet(data)
        types.update(m.type for m in packet.messages)
        assert packet.session == 1764921600 and packet.channel == 7
        for cut in range(len(data)):                 # every prefix is refused
            try:
                wire.decode_packet(data[:cut])
            except wire.WireError:
                continue
            raise AssertionError("%s: a %d-byte prefix decoded" % (name, cut))
        try:
            wire.decode_packet(data + b"\0" * 8)
        except wire.WireError:
            pass
        else:
            raise AssertionError("%s: trailing bytes accepted" % name)
    assert types == {wire.TYPE_BOOK, wire.TYPE_TRADE, wire.TYPE_QUOTE, wire.TYPE_STATUS,
                     wire.TYPE_INSTRUMENT, wire.TYPE_DETAILS}


def test_book_vector_fields():
    data = dict((n, d) for n, _, d in VECTORS)["book"]
    (msg,) = wire.decode_packet(data).messages
    assert (msg.update_id, msg.flags, msg.bids, msg.asks) == (
        123456789, wire.BOOK_FLAG_SNAPSHOT,
        [(3700012000000, 150000000), (3700011000000, 42000000)], [(3700013000000, 7500000)])
