"""docs/hftfeed_wire.h compiles (its size checks hold) and decodes every PROTOCOL.md test
vector to the same fields as the Python decoder. Skips without a C compiler."""

import shutil
import subprocess
from pathlib import Path

import pytest

from hftfeed.codecs import wire

from wire_vectors import VECTORS

ROOT = Path(__file__).resolve().parents[1]


def python_lines(data):
    p = wire.decode_packet(data)
    lines = ["packet flags=%d channel=%d count=%d session=%d seq=%d send_ns=%d"
             % (p.flags, p.channel, p.count, p.session, p.seq, p.send_ns)]
    for m in p.messages:
        line = ("msg type=%s venue=%d instrument=%d flags=%d exch_ns=%d recv_ns=%d update_id=%d"
                % (chr(m.type), m.venue, m.instrument, m.flags, m.exch_ns, m.recv_ns,
                   m.update_id))
        if m.type == wire.TYPE_BOOK:
            line += " bids=" + "".join("%d@%d;" % lv for lv in m.bids)
            line += " asks=" + "".join("%d@%d;" % lv for lv in m.asks)
        elif m.type == wire.TYPE_TRADE:
            line += " price=%d qty=%d side=%d" % (m.price, m.qty, m.side)
        elif m.type == wire.TYPE_QUOTE:
            line += " bid_px=%d bid_qty=%d ask_px=%d ask_qty=%d" % (m.bid_px, m.bid_qty,
                                                                    m.ask_px, m.ask_qty)
        elif m.type == wire.TYPE_STATUS:
            line += " state=%d" % m.state
        elif m.type == wire.TYPE_INSTRUMENT:
            line += " symbol=%s price_exp=%d qty_exp=%d" % (m.symbol, m.price_exp, m.qty_exp)
        elif m.type == wire.TYPE_DETAILS:
            line += " tick_size=%d lot_size=%d min_qty=%d contract_size=%d trading=%d" % (
                m.tick_size, m.lot_size, m.min_qty, m.contract_size, m.trading)
        lines.append(line)
    return lines


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("c") / "vectors"
    result = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-I",
                             str(ROOT / "docs"), str(ROOT / "tests" / "c_vectors.c"), "-o",
                             str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return str(exe)


def test_the_c_header_decodes_every_vector_like_the_python_decoder(program):
    for name, _, data in VECTORS:
        out = subprocess.run([program, data.hex()], stdout=subprocess.PIPE,
                             universal_newlines=True, timeout=30)
        assert out.returncode == 0, (name, out.stdout)
        assert out.stdout.splitlines() == python_lines(data), name


def test_the_c_program_refuses_a_truncated_datagram(program):
    data = dict((n, d) for n, _, d in VECTORS)["book"]
    out = subprocess.run([program, data[:-8].hex()], stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=30)
    assert out.returncode == 1 and out.stdout.splitlines()[-1] == "error"
