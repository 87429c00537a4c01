"""Command line of the simulator: ``python3 -m hftfeed.tools.sim ...`` or ``hftfeed.py sim ...``.

On start it prints exactly one line to stdout, ``SIM READY ws=ws://HOST:PORT rest=http://HOST:PORT``
(flushed), so tests and the demo can read the port; everything else goes to stderr through
logging. SIGTERM / SIGINT stop it cleanly (connections closed with 1001, journal flushed, exit 0);
bad command-line input prints one error line and exits 2.
"""

import asyncio
import logging
import os
import signal
import sys

from hftfeed.app.cli import OneLineParser
from hftfeed.errors import ConfigError
from hftfeed.tools.sim import faults
from hftfeed.tools.sim.config import SimConfig
from hftfeed.venues import registry
from hftfeed.tools.sim.server import start_sim

log = logging.getLogger("hftfeed.sim.cli")


def build_parser():
    p = OneLineParser(prog="hftfeed sim", description="Exchange simulator speaking Binance spot, Binance "
                                                "USD-M futures, Bybit v5 linear or OKX v5 public.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 'localhost' = 127.0.0.1 and ::1 on one port")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--venue", default="binance", choices=registry.NAMES,
                   help="protocol dialect; limits below default to that venue's own values")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated venue symbols")
    p.add_argument("--rate", type=float, default=None,
                   help="depth messages per second across all symbols (default 100 per symbol)")
    p.add_argument("--shape", choices=("steady", "burst"), default="steady",
                   help="steady: depth messages round robin at --rate; burst: every symbol's "
                        "diff at the same boundary (Binance @depth@100ms), trades and quotes "
                        "in between")
    p.add_argument("--boundaries-per-s", type=float, default=10.0,
                   help="burst: depth boundaries a second (default 10 = every 100 ms)")
    p.add_argument("--depth-levels", type=int, default=None,
                   help="book levels per side (venue default: 200; Bybit 50)")
    p.add_argument("--steps-per-msg", type=int, default=3,
                   help="engine steps aggregated into one depth message: 1..N")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--record", metavar="FILE", help="write a JSON-lines journal of every event")
    p.add_argument("--replay", metavar="JOURNAL", help="re-serve a recorded journal")
    p.add_argument("--replay-speed", type=float, default=1.0)
    p.add_argument("--replay-capture", metavar="WSFILE", help="re-serve a real capture (.ws)")
    p.add_argument("--replay-snapshots", metavar="HTTPFILE", help="its snapshots (.http)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="name[:key=value,...] or a JSON object; repeatable")
    p.add_argument("--ping-interval-s", type=float, default=None,
                   help="ping frames (Binance spot 20, USD-M 180; none on Bybit/OKX)")
    p.add_argument("--pong-timeout-s", type=float, default=None,
                   help="disconnect without a pong (Binance spot 60, USD-M 600)")
    p.add_argument("--max-incoming-per-s", type=int, default=None,
                   help="incoming messages a second (spot 5, USD-M 10, OKX 3 requests)")
    p.add_argument("--lifetime-s", type=float, default=None, help="connection lifetime (24 h)")
    p.add_argument("--weight-limit", type=int, default=None,
                   help="REST weight a window (spot 6000, USD-M 2400)")
    p.add_argument("--idle-timeout-s", type=float, default=None,
                   help="Bybit: client silent this long (600); OKX: nothing pushed this long (30)")
    p.add_argument("--book-keepalive-s", type=float, default=None,
                   help="OKX: empty books update after this long without a change (20)")
    p.add_argument("--quote-resend-s", type=float, default=None,
                   help="Bybit orderbook.1: snapshot repeated after this long unchanged (3)")
    p.add_argument("--checksum", choices=["real", "zero"], default=None,
                   help="OKX books checksum: real CRC32 (default) or 0 as OKX sends since 2026-06")
    p.add_argument("--test-request-s", type=float, default=None,
                   help="Deribit: send test_request this often instead of at the client's "
                        "set_heartbeat interval (>= 10 s on the venue)")
    p.add_argument("--weight-window-s", type=float, default=60.0)
    p.add_argument("--ban-after-429", type=int, default=2)
    p.add_argument("--ban-s", type=float, default=120.0)
    p.add_argument("--duration-s", type=float, default=None, help="stop by itself after this")
    p.add_argument("--log-level", default=os.environ.get("HFTFEED_LOG", "info"),
                   help="error, warn, info or debug (default from HFTFEED_LOG)")
    return p


def config_from_args(ns):
    """Turn parsed arguments into a validated SimConfig (ConfigError on bad values)."""
    try:
        fault_specs = [faults.parse_spec(s) for s in ns.fault]
    except faults.FaultSpecError as exc:
        raise ConfigError("--fault: %s" % exc) from None
    cfg = SimConfig(
        host=ns.host, port=ns.port, venue=ns.venue,
        symbols=[s for s in ns.symbols.split(",") if s.strip()],
        rate=ns.rate, shape=ns.shape, boundaries_per_s=ns.boundaries_per_s,
        depth_levels=ns.depth_levels, max_steps_per_msg=ns.steps_per_msg,
        seed=ns.seed, record=ns.record, replay=ns.replay, replay_speed=ns.replay_speed,
        replay_capture=ns.replay_capture, replay_snapshots=ns.replay_snapshots,
        faults=fault_specs, ping_interval_s=ns.ping_interval_s, pong_timeout_s=ns.pong_timeout_s,
        max_incoming_per_s=ns.max_incoming_per_s, lifetime_s=ns.lifetime_s,
        weight_limit=ns.weight_limit, weight_window_s=ns.weight_window_s,
        ban_after_429=ns.ban_after_429, ban_s=ns.ban_s, duration_s=ns.duration_s,
        idle_timeout_s=ns.idle_timeout_s, book_keepalive_s=ns.book_keepalive_s,
        quote_resend_s=ns.quote_resend_s, checksum=ns.checksum, test_request_s=ns.test_request_s)
    for path in (cfg.replay, cfg.replay_capture, cfg.replay_snapshots):
        if path and not os.path.isfile(path):
            raise ConfigError("no such file: %s" % path)
    return cfg.validate()


def _setup_logging(level_name):
    levels = {"error": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG}
    level = levels.get(str(level_name).lower())
    if level is None:
        raise ConfigError("unknown log level %r" % (level_name,))
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _run(cfg):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # before READY: a signal right after it is ours
    server = await start_sim(cfg)
    sys.stdout.write("SIM READY ws=%s rest=%s\n" % (server.ws_url, server.rest_url))
    sys.stdout.flush()
    stop_wait = loop.create_task(stop.wait())
    done_wait = loop.create_task(server.stopped.wait())
    await asyncio.wait([stop_wait, done_wait], return_when=asyncio.FIRST_COMPLETED)
    for t in (stop_wait, done_wait):
        t.cancel()
    if stop.is_set():
        log.info("signal received: stopping")
    await server.close(1001)
    return 0


def main(argv=None):
    """Run the simulator until a signal or --duration-s; returns the process exit code."""
    try:
        ns = build_parser().parse_args(argv)
        cfg = config_from_args(ns)
        _setup_logging(ns.log_level)
    except ConfigError as exc:
        sys.stderr.write("hftfeed sim: error: %s\n" % exc)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return asyncio.run(_run(cfg))
    except OSError as exc:
        sys.stderr.write("hftfeed sim: error: %s\n" % exc)
        return 2
    except (ValueError, KeyError) as exc:  # an unreadable journal or capture
        sys.stderr.write("hftfeed sim: error: %s\n" % exc)
        return 2
