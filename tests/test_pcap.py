"""Specification of client.pcap and the record / replay / export commands (real sockets, the
commands as subprocesses)."""

import csv
import io
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from hftfeed.client import Subscriber
from hftfeed.client.pcap import (PcapError, PcapReader, PcapWriter, _checksum, ip_udp_frame)
from hftfeed.codecs import wire

from wirebuild import PX, Sender, Stream, book, instrument_def, quote, trade

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "hftfeed.py")


def test_round_trip_keeps_bytes_addresses_and_nanosecond_times(tmp_path):
    path = str(tmp_path / "x.pcap")
    w = PcapWriter(path)
    w.write(1700000000123456789, ("10.0.0.1", 4000), ("239.1.1.1", 9002), b"HFabc")
    w.write(1700000000123456790, ("::1", 5), ("ff15::1", 9002), b"\x00" * 1472)
    w.close()
    with PcapReader(path) as r:
        got = list(r)
    assert got == [(1700000000123456789, ("10.0.0.1", 4000), ("239.1.1.1", 9002), b"HFabc"),
                   (1700000000123456790, ("::1", 5), ("ff15::1", 9002), b"\x00" * 1472)]
    assert not r.truncated


def test_ip_headers_carry_valid_checksums():
    v4 = ip_udp_frame(("10.0.0.1", 1), ("10.0.0.2", 2), b"payload")
    assert _checksum(v4[:20]) == 0 and struct.unpack("!H", v4[2:4])[0] == len(v4)
    v6 = ip_udp_frame(("::1", 1), ("::2", 2), b"payload!")
    src, dst = v6[8:24], v6[24:40]
    pseudo = src + dst + struct.pack("!IxxxB", len(v6) - 40, 17)
    assert _checksum(pseudo + v6[40:]) == 0


def test_a_record_cut_short_ends_the_iteration_and_says_so(tmp_path):
    path = str(tmp_path / "cut.pcap")
    w = PcapWriter(path)
    w.write(1, ("10.0.0.1", 1), ("10.0.0.2", 2), b"one")
    w.write(2, ("10.0.0.1", 1), ("10.0.0.2", 2), b"two")
    w.close()
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    r = PcapReader(path)
    assert [p for _, _, _, p in r] == [b"one"] and r.truncated
    r.close()


def test_not_a_pcap_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "no.pcap"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    with pytest.raises(PcapError, match="pcapng"):
        PcapReader(str(path))
    path.write_bytes(b"short")
    with pytest.raises(PcapError, match="shorter"):
        PcapReader(str(path))


def test_ethernet_microsecond_captures_as_tcpdump_writes_them_are_read(tmp_path):
    frame = b"\x01" * 6 + b"\x02" * 6 + b"\x08\x00" + ip_udp_frame(("10.0.0.1", 7),
                                                                    ("10.0.0.9", 9), b"HF")
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    data += struct.pack("<IIII", 5, 6, len(frame), len(frame)) + frame
    arp = b"\x01" * 12 + b"\x08\x06" + b"\0" * 28
    data += struct.pack("<IIII", 5, 7, len(arp), len(arp)) + arp
    path = tmp_path / "eth.pcap"
    path.write_bytes(data)
    r = PcapReader(str(path))
    assert list(r) == [(5000006000, ("10.0.0.1", 7), ("10.0.0.9", 9), b"HF")]
    assert r.skipped == 1


def _run(*args, **kw):
    return subprocess.Popen([sys.executable, ENTRY] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT, **kw)


def _stream():
    st = Stream()
    return [st.next([instrument_def(1, "BTCUSDT")]),
            st.next([book(1, 10, [(100 * PX, PX)], [(101 * PX, 2 * PX)]), trade(1, trade_id=4)]),
            st.next([quote(1, update_id=11)])]


def _record(tmp_path, sends, *extra):
    out = str(tmp_path / "rec.pcap")
    proc = _run("record", "--listen", "127.0.0.1:0", "--out", out, *extra)
    try:
        line = proc.stdout.readline()
        assert line.startswith("RECORDING"), proc.stderr.read()
        port = int(line.split("ports=")[1].split()[0])
        before = time.time_ns()
        sender = Sender(port)
        for data in sends:
            sender.send(data)
            time.sleep(0.01)
        sender.close()
        time.sleep(0.3)
        after = time.time_ns()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return out, port, before, after


def test_record_writes_exact_bytes_and_capture_times_and_closes_a_valid_file_on_sigterm(
        tmp_path):
    sends = _stream()
    out, port, before, after = _record(tmp_path, sends)
    with PcapReader(out) as r:
        got = list(r)
    assert [p for _, _, _, p in got] == sends
    assert all(dst == ("127.0.0.1", port) for _, _, dst, _ in got)
    times = [t for t, _, _, _ in got]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after


def test_record_rotates_by_size_into_complete_files(tmp_path):
    sends = _stream() * 1
    out, _, _, _ = _record(tmp_path, sends, "--rotate-bytes", "100")
    files = sorted(f for f in os.listdir(str(tmp_path)) if f.startswith("rec."))
    assert files[:3] == ["rec.000.pcap", "rec.001.pcap", "rec.002.pcap"]
    payloads = []
    for name in files:
        with PcapReader(str(tmp_path / name)) as r:
            payloads.extend(p for _, _, _, p in r)
    assert payloads == sends


def test_record_with_bad_arguments_is_one_line_and_exit_2(tmp_path):
    proc = _run("record", "--listen", "nowhere", "--out", str(tmp_path / "x.pcap"))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1


def test_replay_sends_the_recording_and_a_subscriber_sees_the_same_events(tmp_path):
    sends = _stream()
    path = str(tmp_path / "r.pcap")
    w = PcapWriter(path)
    for index, data in enumerate(sends):
        w.write(10 ** 18 + index * 1000, ("10.0.0.1", 1), ("239.1.1.1", 9002), data)
    w.close()
    with Subscriber("127.0.0.1:0") as sub:
        port = sub._socks[0].getsockname()[1]
        proc = _run("replay", path, "--target", "127.0.0.1:%d" % port, "--speed", "10")
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        live = []
        deadline = time.monotonic() + 3
        while len(live) < 4 and time.monotonic() < deadline:
            live.extend(sub.poll(0.05))
    replayed = list(Subscriber.from_pcap(path))
    assert [(e.kind, e.key, getattr(e, "update_id", None)) for e in live] == \
        [(e.kind, e.key, getattr(e, "update_id", None)) for e in replayed]
    assert [e.kind for e in replayed] == ["instrument", "book", "trade", "quote"]


def test_export_writes_books_trades_and_quotes_as_csv_with_exact_decimals(tmp_path):
    path = str(tmp_path / "e.pcap")
    w = PcapWriter(path)
    for index, data in enumerate(_stream()):
        w.write(10 ** 18 + index, ("10.0.0.1", 1), ("239.1.1.1", 9002), data)
    w.close()
    proc = _run("export", path, "--format", "csv")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["type"] for r in rows] == ["book", "trade", "quote"]
    assert (rows[0]["symbol"], rows[0]["bid_px"], rows[0]["ask_qty"], rows[0]["bids"]) == (
        "BTCUSDT", "100.00000000", "2.00000000", "100.00000000@1.00000000")
    assert (rows[1]["price"], rows[1]["qty"], rows[1]["update_id"]) == ("37000.00000000",
                                                                        "0.50000000", "4")
    assert rows[0]["capture_ns"] == str(10 ** 18 + 1)


def test_export_of_a_missing_file_is_one_line_and_exit_1(tmp_path):
    proc = _run("export", str(tmp_path / "none.pcap"))
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "error" in err


def test_tcpdump_reads_a_recording_when_installed(tmp_path):
    import shutil
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump is not installed")
    path = str(tmp_path / "t.pcap")
    w = PcapWriter(path)
    w.write(10 ** 18, ("10.0.0.1", 1234), ("239.1.1.1", 9002), _stream()[0])
    w.close()
    out = subprocess.run([tcpdump, "-nr", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=20).stdout
    assert "10.0.0.1.1234 > 239.1.1.1.9002: UDP" in out


def test_record_rotates_by_time(tmp_path):
    out = str(tmp_path / "t.pcap")
    proc = _run("record", "--listen", "127.0.0.1:0", "--out", out, "--rotate-s", "0.3")
    try:
        port = int(proc.stdout.readline().split("ports=")[1].split()[0])
        sender = Sender(port)
        sends = _stream()
        for data in sends:
            sender.send(data)
            time.sleep(0.45)          # each datagram lands after a rotation
        sender.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    files = sorted(f for f in os.listdir(str(tmp_path)) if f.startswith("t."))
    assert len(files) >= 3
    payloads = []
    for name in files:
        with PcapReader(str(tmp_path / name)) as r:
            payloads.extend(p for _, _, _, p in r)
    assert payloads == sends


def test_from_pcap_of_an_ab_recording_takes_each_datagram_from_whichever_feed_has_it(tmp_path):
    """Feed A lost datagram 2, feed B lost datagram 3; in the file B's copy of 2 comes after
    A's 3, as a recorder on both groups writes it. No gap, events in order."""
    st = Stream()
    d = [st.next([trade(1, trade_id=n)]) for n in range(1, 5)]
    order = [("A", d[0]), ("B", d[0]), ("A", d[2]), ("B", d[1]), ("A", d[3]), ("B", d[3])]
    path = str(tmp_path / "ab.pcap")
    w = PcapWriter(path)
    for index, (feed, data) in enumerate(order):
        w.write(10 ** 18 + index, ("10.0.0.1", 1), ("239.1.1.1" if feed == "A" else "239.2.2.2",
                                                     9002), data)
    w.close()
    sub = Subscriber.from_pcap(path)
    events = list(sub)
    assert [e.trade_id for e in events] == [1, 2, 3, 4]
    stats = sub.stats()
    assert stats["gaps"] == 0 and stats["lost_messages"] == 0 and stats["duplicates"] == 2
