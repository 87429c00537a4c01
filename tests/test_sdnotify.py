"""Specification of hftfeed.runtime.sdnotify: a real AF_UNIX datagram socket stands in for systemd."""

import logging
import os
import socket
import uuid

import pytest

from hftfeed.runtime.sdnotify import Notifier

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="AF_UNIX needed")


@pytest.fixture
def fake_systemd(tmp_path):
    """A datagram socket bound to a file path, like systemd's notify socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


@pytest.fixture
def fake_systemd_abstract():
    """The same in the Linux abstract namespace (NOTIFY_SOCKET=@name)."""
    name = "hftfeed-test-%s" % uuid.uuid4().hex
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + name)
    except OSError as exc:
        sock.close()
        pytest.skip("no abstract unix sockets here: %s" % exc)
    sock.settimeout(2.0)
    yield "@" + name, sock
    sock.close()


def received(sock):
    return sock.recv(4096).decode("utf-8")


def test_ready_sends_ready_1_to_a_socket_path(fake_systemd):
    path, server = fake_systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert received(server) == "READY=1"
    notifier.close()


def test_ready_with_status_adds_a_status_line_on_one_line(fake_systemd):
    path, server = fake_systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("3 feeds\nconnected")
    assert received(server) == "READY=1\nSTATUS=3 feeds connected"
    notifier.close()


def test_abstract_socket_name_with_at_sign_reaches_the_abstract_namespace(fake_systemd_abstract):
    name, server = fake_systemd_abstract
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.address == "\0" + name[1:]
    notifier.ready()
    notifier.watchdog()
    assert received(server) == "READY=1"
    assert received(server) == "WATCHDOG=1"
    notifier.close()


def test_stopping_status_watchdog_and_extend_timeout_messages(fake_systemd):
    path, server = fake_systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.watchdog()
    notifier.status("resyncing BTCUSDT")
    notifier.extend_timeout(2.5)
    notifier.stopping()
    assert [received(server) for _ in range(4)] == [
        "WATCHDOG=1", "STATUS=resyncing BTCUSDT", "EXTEND_TIMEOUT_USEC=2500000", "STOPPING=1"]
    assert notifier.sent == 4
    notifier.close()


def test_without_notify_socket_every_call_is_a_silent_noop():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s() is None
    assert notifier.sent == 0 and notifier.send_errors == 0


def test_relative_notify_socket_is_rejected_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="hftfeed.sdnotify"):
        notifier = Notifier({"NOTIFY_SOCKET": "relative/path"})
    assert not notifier.enabled
    assert "neither a path nor an @abstract name" in caplog.text


def test_send_errors_are_logged_once_and_counted_never_raised(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with caplog.at_level(logging.WARNING, logger="hftfeed.sdnotify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert notifier.send_errors == 3
    assert caplog.text.count("cannot notify systemd") == 1
    notifier.close()


@pytest.mark.parametrize("environ, expected", [
    ({"WATCHDOG_USEC": "10000000"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "ten"}, None),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "me"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_our_pid(environ, expected):
    environ = dict(environ, NOTIFY_SOCKET="/run/systemd/notify")
    assert Notifier(environ).watchdog_interval_s() == expected
