"""Recordings of the published stream: ``record`` (UDP -> pcap), ``replay`` (pcap -> UDP) and
``export`` (pcap -> CSV rows of books, trades and quotes). The pcap format itself lives in
:mod:`hftfeed.client.pcap`, shared with ``Subscriber.from_pcap``."""
