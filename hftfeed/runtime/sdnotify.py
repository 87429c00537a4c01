"""The systemd notification protocol (sd_notify(3)), standard library only.

Why not libsystemd through ctypes: the protocol is one datagram of ``KEY=VALUE`` lines sent to the
AF_UNIX socket named by ``$NOTIFY_SOCKET``; a dozen lines of Python do it on every interpreter and
in environments without libsystemd. Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op,
so the daemon calls these unconditionally.

With ``Type=notify`` systemd considers the unit started only after ``READY=1``; with
``WatchdogSec=`` it kills and restarts the unit when ``WATCHDOG=1`` stops arriving. The daemon
sends the pings from its event loop's housekeeping tick (daemon.py), so a wedged loop is what
gets restarted, not merely a dead process.
"""

import logging
import os
import socket

log = logging.getLogger("hftfeed.sdnotify")


def _address_from(value):
    """``$NOTIFY_SOCKET`` -> an address for sendto, or None if unusable.

    sd_notify(3): an absolute path is a file-system socket; a leading ``@`` means the Linux
    abstract namespace, where the name starts with a NUL byte instead."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier(object):
    """Sends state changes to the service manager; ``enabled`` is False outside systemd.

    Send errors (systemd gone, queue full) are logged once and counted in ``send_errors``, never
    raised: losing a notification must not take the feed down."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self._environ = environ
        raw = environ.get("NOTIFY_SOCKET", "")
        self.address = _address_from(raw)
        self.send_errors = 0
        self.sent = 0
        self._sock = None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an @abstract name: "
                        "systemd notifications disabled", raw)
        if self.address is not None and not hasattr(socket, "AF_UNIX"):
            log.warning("no AF_UNIX sockets on this platform: systemd notifications disabled")
            self.address = None

    @property
    def enabled(self):
        return self.address is not None

    def _socket(self):
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # Never block the event loop on a stalled service manager: a full queue is a send
            # error (logged, counted), and the next ping tries again.
            sock.setblocking(False)
            self._sock = sock
        return self._sock

    def send(self, text):
        """Send one notification datagram (newline-separated KEY=VALUE); True if it left."""
        if self.address is None:
            return False
        try:
            self._socket().sendto(text.encode("utf-8"), self.address)
        except OSError as exc:
            self.send_errors += 1
            if self.send_errors == 1:
                log.warning("cannot notify systemd at %r: %s (further errors are only counted)",
                            self._environ.get("NOTIFY_SOCKET"), exc)
            return False
        self.sent += 1
        return True

    def ready(self, status=None):
        """READY=1: start-up finished (feeds connected); systemd now reports the unit active."""
        text = "READY=1"
        if status:
            text += "\nSTATUS=" + _one_line(status)
        return self.send(text)

    def watchdog(self):
        """WATCHDOG=1: the keep-alive ping systemd expects at least every WatchdogSec."""
        return self.send("WATCHDOG=1")

    def stopping(self, status=None):
        """STOPPING=1: a clean shutdown has begun (systemctl then shows "deactivating")."""
        text = "STOPPING=1"
        if status:
            text += "\nSTATUS=" + _one_line(status)
        return self.send(text)

    def status(self, text):
        """STATUS=...: a free-form line shown by ``systemctl status``."""
        return self.send("STATUS=" + _one_line(text))

    def extend_timeout(self, seconds):
        """EXTEND_TIMEOUT_USEC: ask for more time while starting (e.g. slow snapshot fetches)."""
        return self.send("EXTEND_TIMEOUT_USEC=%d" % int(seconds * 1000000))

    def watchdog_interval_s(self):
        """How often to ping, in seconds: half of ``$WATCHDOG_USEC`` (sd_watchdog_enabled(3)
        advises pinging at half the timeout), or None when the watchdog is off or meant for
        another process (``$WATCHDOG_PID`` set to a pid that is not ours)."""
        usec_text = self._environ.get("WATCHDOG_USEC", "")
        if not usec_text:
            return None
        try:
            usec = int(usec_text)
        except ValueError:
            log.warning("WATCHDOG_USEC=%r is not an integer: watchdog pings disabled", usec_text)
            return None
        if usec <= 0:
            return None
        pid_text = self._environ.get("WATCHDOG_PID", "")
        if pid_text:
            try:
                if int(pid_text) != os.getpid():
                    return None
            except ValueError:
                log.warning("WATCHDOG_PID=%r is not an integer: watchdog pings disabled", pid_text)
                return None
        return usec / 2e6

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text):
    # Each datagram line is one KEY=VALUE pair: a newline inside STATUS would start a new key.
    return str(text).replace("\n", " ")
