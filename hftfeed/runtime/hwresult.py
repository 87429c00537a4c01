"""The outcome of one operating-system control (hw.py, gctune.py): a status, a message and the
command or unit-file line that fixes a warning, logged as exactly one line under ``hftfeed.runtime.hw``.

Why a type of its own: the daemon logs these at start-up, ``doctor`` prints them as PASS/WARN/FAIL
and bench.py records them, so every control reports the same way and none of them raises for an
OS refusal."""

import errno
import logging

log = logging.getLogger("hftfeed.hw")

OK = "ok"
WARN = "warn"
SKIPPED = "skipped"
ERROR = "error"


class HwResult(object):
    """The outcome of one control: ``status`` is ok | warn | skipped | error; ``fix`` says how to
    turn a warn into an ok (a command or a unit-file line), empty otherwise."""

    __slots__ = ("name", "status", "message", "fix")

    def __init__(self, name, status, message, fix=""):
        self.name = name
        self.status = status
        self.message = message
        self.fix = fix

    @property
    def ok(self):
        return self.status == OK

    def as_dict(self):
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix}

    def __repr__(self):
        return "HwResult(%r, %r, %r)" % (self.name, self.status, self.message)


def report(name, status, message, fix=""):
    """Build the result and log its one line (warn -> WARNING, error -> ERROR, else INFO)."""
    result = HwResult(name, status, message, fix)
    if status == WARN:
        log.warning("%s: %s (fix: %s)", name, message, fix)
    elif status == ERROR:
        log.error("%s: %s", name, message)
    else:
        log.info("%s: %s", name, message)
    return result


def errno_name(code):
    return errno.errorcode.get(code, "errno %d" % code)
