"""The daemon names the CA certificates it trusts at start: OpenSSL honours SSL_CERT_FILE and
SSL_CERT_DIR silently, so another bundle in the environment must at least be visible."""

import socket
import time

from e2e import DaemonProcess
from test_ws import make_self_signed_cert


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_the_trust_store_in_use_is_logged_at_start_including_an_environment_override(tmp_path):
    _key, cert = make_self_signed_cert(tmp_path)
    port = _closed_port()
    cfg = {"feeds": [{"venue": "binance", "ws_url": "ws://127.0.0.1:%d" % port,
                      "rest_url": "http://127.0.0.1:%d" % port, "symbols": ["BTCUSDT"]}],
           "publisher": {"target": "127.0.0.1:%d" % _closed_port()}, "memory_lock": False}
    daemon = DaemonProcess(tmp_path, cfg, env={"SSL_CERT_FILE": cert, "SSL_CERT_DIR": ""})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "TLS trust store" not in daemon.log_text():
        time.sleep(0.1)
    code, _took_s = daemon.stop()
    log = daemon.log_text()
    assert code == 0, log[-3000:]
    line = [x for x in log.splitlines() if "TLS trust store" in x][0]
    assert "from the environment: SSL_CERT_FILE=%s" % cert in line
    assert "file %s" % cert in line
