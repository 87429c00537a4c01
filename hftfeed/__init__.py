"""hftfeed: a low-latency crypto market-data feed handler (standard library only).

Exchange WebSocket + REST -> fixed-point array books -> binary UDP (see docs/PROTOCOL.md).
"""

__version__ = "0.1.0"
