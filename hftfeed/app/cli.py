"""``python3 hftfeed.py <command>``: dispatch to the subcommands.

Every command module exposes ``main(argv) -> exit code``. A ConfigError anywhere (bad config
file, bad CLI value) becomes one line on stderr and exit code 2, never a traceback.
"""

import argparse
import importlib
import sys

from hftfeed.errors import ConfigError

COMMANDS = {
    "run": ("hftfeed.app.daemon", "run the feed handler (foreground; --config FILE)"),
    "demo": ("hftfeed.app.demo", "simulator + daemon + monitor on loopback, live view (Ctrl-C stops)"),
    "monitor": ("hftfeed.tools.monitor", "receive and check the UDP feed (--listen ADDR:PORT)"),
    "sim": ("hftfeed.tools.sim.cli", "exchange simulator speaking each registered venue's protocol, on loopback"),
    "doctor": ("hftfeed.app.doctor", "check this machine / a running daemon (--pid PID)"),
    "record": ("hftfeed.tools.pcap.record", "capture the UDP feed to a pcap file (--listen ADDR --out FILE.pcap)"),
    "replay": ("hftfeed.tools.pcap.replay", "send a pcap recording to an address (FILE.pcap --target ADDR)"),
    "export": ("hftfeed.tools.pcap.export", "books, trades and quotes of a recording as CSV (FILE.pcap --format csv)"),

    "health": ("hftfeed.app.health", "exit 0 if every instrument is live and fresh, 1 with reasons"),
    "shard": ("hftfeed.app.shard", "split a config into per-core configs (--cores 2,3 --out DIR)"),
}

USAGE = "usage: hftfeed.py {%s} [options]   (hftfeed.py COMMAND --help for details)" % \
    ",".join(COMMANDS)


class OneLineParser(argparse.ArgumentParser):
    """argparse for every command: a usage error raises ConfigError (one line on stderr, exit
    code 2, like a bad config value) instead of printing the usage block and exiting itself.
    ``--help`` still prints the full help and exits 0."""

    def error(self, message):
        raise ConfigError(message)


def print_help(out):
    out.write(USAGE + "\n\ncommands:\n")
    for name, (_, text) in COMMANDS.items():
        out.write("  %-8s %s\n" % (name, text))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from hftfeed import __version__
        print("hftfeed %s" % __version__)
        return 0
    command = argv[0]
    if command not in COMMANDS:
        sys.stderr.write("hftfeed.py: error: unknown command %r (choose from %s)\n"
                         % (command, ", ".join(COMMANDS)))
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return module.main(argv[1:]) or 0
    except ConfigError as exc:
        sys.stderr.write("hftfeed.py %s: error: %s\n" % (command, exc))
        return 2
    except KeyboardInterrupt:
        return 0
