"""etc/wireshark/hftfeed.lua decodes a pcap written by ``hftfeed.py record`` field for field as
the Python decoder does (tshark -T pdml). Skips cleanly without tshark (tests/run.sh installs
Debian's when it runs as root)."""

import random
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hftfeed.codecs import wire

from wire_vectors import VECTORS, _Book, _datagram

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "etc" / "wireshark" / "hftfeed.lua"


def decimal(value, exp=-8):
    sign = "-" if value < 0 else ""
    text = str(abs(value))
    places = -exp
    if len(text) <= places:
        text = "0" * (places - len(text) + 1) + text
    return sign + text[:-places] + "." + text[-places:]


def expected_fields(data):
    p = wire.decode_packet(data)
    out = [("hftfeed.magic", "HF"), ("hftfeed.version", "1"), ("hftfeed.flags", "0x%02x" % p.flags),
           ("hftfeed.flags.end_of_session", str(p.flags & 1)), ("hftfeed.channel", str(p.channel)),
           ("hftfeed.count", str(p.count)), ("hftfeed.session", str(p.session)),
           ("hftfeed.reserved", "0"), ("hftfeed.seq", str(p.seq)),
           ("hftfeed.send_ns", str(p.send_ns)), ("hftfeed.heartbeat", str(int(p.is_heartbeat)))]
    off = wire.HEADER_SIZE
    for m in p.messages:
        length = wire.MSG_HEADER.unpack_from(data, off)[0]    # may exceed the defined length
        off += length
        out += [("hftfeed.msg.length", str(length)), ("hftfeed.msg.type", "0x%02x" % m.type),
                ("hftfeed.msg.venue", str(m.venue)), ("hftfeed.msg.instrument", str(m.instrument)),
                ("hftfeed.msg.flags", "0x%04x" % m.flags)]
        if m.type == wire.TYPE_BOOK:
            out += [("hftfeed.book.snapshot", str(m.flags & 1)),
                    ("hftfeed.book.refresh", str((m.flags >> 1) & 1))]
        out += [("hftfeed.msg.exch_ns", str(m.exch_ns)), ("hftfeed.msg.recv_ns", str(m.recv_ns)),
                ("hftfeed.msg.update_id", str(m.update_id))]
        if m.type == wire.TYPE_BOOK:
            out += [("hftfeed.book.bid_n", str(len(m.bids))), ("hftfeed.book.ask_n", str(len(m.asks)))]
            for side, levels in (("bid", m.bids), ("ask", m.asks)):
                for price, qty in levels:
                    out += [("hftfeed.book.%s.price" % side, decimal(price)),
                            ("hftfeed.book.%s.qty" % side, decimal(qty)),
                            ("hftfeed.book.price_raw", str(price)),
                            ("hftfeed.book.qty_raw", str(qty))]
        elif m.type == wire.TYPE_TRADE:
            out += [("hftfeed.trade.price", decimal(m.price)), ("hftfeed.trade.qty", decimal(m.qty)),
                    ("hftfeed.trade.side", str(m.side))]
        elif m.type == wire.TYPE_QUOTE:
            out += [("hftfeed.quote.bid_px", decimal(m.bid_px)),
                    ("hftfeed.quote.bid_qty", decimal(m.bid_qty)),
                    ("hftfeed.quote.ask_px", decimal(m.ask_px)),
                    ("hftfeed.quote.ask_qty", decimal(m.ask_qty))]
        elif m.type == wire.TYPE_STATUS:
            out.append(("hftfeed.status.state", str(m.state)))
        elif m.type == wire.TYPE_INSTRUMENT:
            out += [("hftfeed.instrument.symbol", m.symbol),
                    ("hftfeed.instrument.price_exp", str(m.price_exp)),
                    ("hftfeed.instrument.qty_exp", str(m.qty_exp))]
        elif m.type == wire.TYPE_DETAILS:
            out += [("hftfeed.details.tick_size", decimal(m.tick_size)),
                    ("hftfeed.details.lot_size", decimal(m.lot_size)),
                    ("hftfeed.details.min_qty", decimal(m.min_qty)),
                    ("hftfeed.details.contract_size", decimal(m.contract_size)),
                    ("hftfeed.details.trading", str(m.trading))]
    return out


def longer_than_defined():
    """A T and a D each 16 bytes longer than defined (PROTOCOL.md "Compatibility")."""
    def longer(pack):
        def write(buf, off):
            end = pack(buf, off)
            buf[end:end + 16] = b"\xee" * 16
            wire.MSG_HEADER.pack_into(buf, off, end + 16 - off, *wire.MSG_HEADER.unpack_from(
                buf, off)[1:])
            return end + 16
        return write
    return _datagram([longer(lambda b, o: wire.pack_trade(b, o, 1, 1, 5, 6, 7, 3 * 10 ** 8, 2, 1)),
                      longer(lambda b, o: wire.pack_details(b, o, 1, 1, 6, 10 ** 6, 10 ** 5))],
                     500)


def random_datagrams(n, seed=5):
    rng = random.Random(seed)
    out = []
    seq = 100
    for _ in range(n):
        writers = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice("BTQ")
            px = rng.randint(-10 ** 15, 10 ** 15)
            if kind == "B":
                levels = [(rng.randint(1, 10 ** 13), rng.randint(0, 10 ** 10))
                          for _ in range(rng.randint(0, 6))]
                book = _Book(rng.randint(0, 2 ** 63), levels[:3], levels[3:])
                flags = rng.choice([0, 1, 2])
                writers.append(lambda b, o, book=book, flags=flags: wire.pack_book(
                    b, o, 1, 1, flags, 5, 6, book, 20))
            elif kind == "T":
                writers.append(lambda b, o, px=px: wire.pack_trade(b, o, 1, 1, 5, 6, 7, px, 3, 2))
            else:
                writers.append(lambda b, o, px=px: wire.pack_quote(b, o, 1, 1, 5, 6, 7, px, 1,
                                                                   px + 1, 2))
        out.append(_datagram(writers, seq))
        seq += len(writers)
    return out


def record(tmp_path, datagrams):
    out = str(tmp_path / "d.pcap")
    proc = subprocess.Popen([sys.executable, str(ROOT / "hftfeed.py"), "record", "--listen",
                             "127.0.0.1:0", "--out", out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, cwd=str(ROOT))
    try:
        port = int(proc.stdout.readline().split("ports=")[1].split()[0])
        import socket
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in datagrams:
            tx.sendto(data, ("127.0.0.1", port))
            time.sleep(0.002)
        tx.close()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    return out


def tshark_fields(tshark, path, port):
    xml = subprocess.run([tshark, "-r", path, "-X", "lua_script:%s" % LUA, "-d",
                          "udp.port==%d,hftfeed" % port, "-T", "pdml"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert xml.returncode == 0, xml.stderr
    packets = []
    for packet in ET.fromstring(xml.stdout).iter("packet"):
        fields = []
        for proto in packet.findall("proto"):
            if proto.get("name") == "hftfeed":
                fields += [(f.get("name"), f.get("show")) for f in proto.iter("field")
                           if f.get("name", "").startswith("hftfeed.")]
        packets.append(fields)
    return packets


def test_tshark_with_the_dissector_decodes_a_recording_like_the_python_decoder(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (tests/run.sh installs it when run as root)")
    datagrams = [data for _, _, data in VECTORS] + random_datagrams(40) + [longer_than_defined()]
    path = record(tmp_path, datagrams)
    from hftfeed.client.pcap import PcapReader
    with PcapReader(path) as reader:
        port = next(iter(reader))[2][1]
    got = tshark_fields(tshark, path, port)
    assert len(got) == len(datagrams)
    for index, (fields, data) in enumerate(zip(got, datagrams)):
        assert fields == expected_fields(data), index
