"""Helpers for end-to-end tests: the simulator and the daemon as real subprocesses on loopback,
and a UDP collector that decodes everything the daemon publishes."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

from hftfeed.codecs import wire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "hftfeed.py")


class SimProcess(object):
    """``hftfeed.py sim`` on an ephemeral loopback port, recording a journal."""

    def __init__(self, tmp_path, symbols, rate=400, seed=11, extra=()):
        self.journal = str(tmp_path / "sim-journal.jsonl")
        self.log_path = str(tmp_path / "sim.log")
        self.log = open(self.log_path, "w")
        cmd = [sys.executable, ENTRY, "sim", "--host", "127.0.0.1", "--port", "0", "--symbols",
               ",".join(symbols), "--rate", str(rate), "--seed", str(seed), "--record",
               self.journal] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        assert line.startswith("SIM READY"), "simulator did not start: %r (log %s)" % (
            line, open(self.log_path).read()[-2000:])
        fields = dict(p.split("=", 1) for p in line.split()[2:])
        self.ws_url = fields["ws"]
        self.rest_url = fields["rest"]
        self.port = int(self.rest_url.rsplit(":", 1)[1])

    def control(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload,
                         headers={"Content-Type": "application/json"} if payload else {})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, (resp.status, data)
            return json.loads(data.decode("utf-8"))
        finally:
            conn.close()

    def fault(self, **spec):
        return self.control("POST", "/_sim/fault", spec)

    def status(self):
        return self.control("GET", "/_sim/status")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


class Collector(object):
    """A UDP socket on loopback that keeps every datagram with its receive time."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2 ** 20)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.target = ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host, self.port)
        self.datagrams = []

    def collect(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.datagrams.append((time.time_ns(), data))
            if until is not None and until(data):
                return True
        return False

    def packets(self):
        return [wire.decode_packet(d) for _, d in self.datagrams]

    def close(self):
        self.sock.close()


def daemon_config(sim, target, symbols, **overrides):
    cfg = {
        "feeds": [{"venue": "binance", "ws_url": sim.ws_url, "rest_url": sim.rest_url,
                   "symbols": list(symbols), "channels": ["depth", "trade", "bookTicker"],
                   "snapshot_limit": 1000, "reconnect_backoff_initial_s": 0.2,
                   "reconnect_backoff_max_s": 1.0}],
        "publisher": {"target": target, "channel": 7, "depth": 20, "heartbeat_interval_s": 0.5},
        "memory_lock": False,
        "stats_interval_s": 1,
    }
    for key, value in overrides.items():
        if key.startswith("feed_"):
            cfg["feeds"][0][key[5:]] = value
        else:
            cfg[key] = value
    return cfg


class DaemonProcess(object):
    def __init__(self, tmp_path, cfg, env=None, preexec_fn=None):
        self.config_path = str(tmp_path / "daemon.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.log_path = str(tmp_path / "daemon.log")
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.setdefault("HFTFEED_LOG", "info")
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, ENTRY, "run", "--config", self.config_path],
                                     stdout=self.log, stderr=self.log, env=full_env,
                                     preexec_fn=preexec_fn)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout_s=5.0):
        """SIGTERM; returns (exit code, seconds it took)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode, time.monotonic() - start

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()



def messages_of(packets, type_):
    return [m for p in packets for m in p.messages if m.type == type_]


def states_of(packets, instrument):
    """The state changes of an instrument (the refresh cycle repeats the current state)."""
    changes = []
    for m in messages_of(packets, wire.TYPE_STATUS):
        if m.instrument == instrument and (not changes or changes[-1] != m.state):
            changes.append(m.state)
    return changes


def check_sequence(packets):
    """Sequence numbers count messages with no hole and no repeat; returns the message count."""
    expected = None
    total = 0
    for pkt in packets:
        if expected is not None:
            assert pkt.seq == expected, "sequence hole or repeat: got %d, expected %d" % (
                pkt.seq, expected)
        expected = pkt.seq + pkt.count
        total += pkt.count
    return total


def check_books_against_truth(packets, truth, symbols_by_id, depth=20):
    """Every B message equals the simulator's top-N at that update id. Returns how many."""
    checked = 0
    for pkt in packets:
        for msg in pkt.messages:
            if msg.type != wire.TYPE_BOOK:
                continue
            symbol = symbols_by_id[msg.instrument]
            bids, asks = truth.book_at(symbol, msg.update_id).top(depth)
            assert (msg.bids, msg.asks) == (bids, asks), (symbol, msg.update_id)
            checked += 1
    return checked
