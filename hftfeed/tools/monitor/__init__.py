"""The receiver side of the wire format: sequence gaps, publisher restarts, latency and a book
view, for operators (``python3 hftfeed.py monitor``) and for in-process use (bench, tests).

- :mod:`.receiver`: :class:`FeedMonitor`, the datagram accounting and the views (pure of any
  output); the hot receive path and why it looks the way it does.
- :mod:`hftfeed.client.net` (shared with the client): listen-address parsing, the receive socket, multicast membership.
- :mod:`.report`: human rendering of the interval reports.
- :mod:`.cli`: the command (options, receive loop, text or JSON output).
"""

from hftfeed.tools.monitor.cli import main
from hftfeed.tools.monitor.receiver import FeedMonitor, decode_single_message, warm_up_jit
from hftfeed.tools.monitor.report import format_price, format_scaled, render_report
from hftfeed.client.net import open_udp_socket, parse_listen

__all__ = ["FeedMonitor", "decode_single_message", "format_price", "format_scaled", "main",
           "open_udp_socket", "parse_listen", "render_report", "warm_up_jit"]
