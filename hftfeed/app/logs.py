"""The daemon's log output: level from the environment or config, and one of three line formats.

- ``text`` (a terminal, a file): ``2026-01-02 03:04:05,678 WARNING hftfeed.feed: message``.
- ``journal``: chosen automatically when stderr *is* the journal (systemd sets
  ``$JOURNAL_STREAM`` to the ``device:inode`` of the stream it connected; comparing it with
  stderr's own ``fstat`` tells a real journal stream from an inherited variable). Each line starts
  with a ``<N>`` syslog priority (sd-daemon(3)) so ``journalctl -p warning`` filters, and carries
  no timestamp (journald adds its own).
- ``json`` (``"log_format": "json"``): one JSON object per line for log shippers.

Why the formatter escapes: log messages quote what venues send (symbols, close reasons, error
texts). The formatter is the last place all of it passes through, so it escapes every control
character (a newline could forge a second log line, an escape sequence could drive a terminal)
and bounds every line to ``MAX_LINE_CHARS``. Tracebacks keep their lines, each escaped, bounded
and (in journal mode) carrying the record's priority.
"""

import json
import logging
import os
import sys
import time

from hftfeed.errors import ConfigError

LOG_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}
LOG_FORMATS = ("auto", "text", "json")     # the config's ``log_format`` values
MAX_LINE_CHARS = 2048                      # one log line, after escaping
MAX_TRACEBACK_LINES = 40                   # the innermost frames are kept
# syslog priorities (RFC 5424 severity), as sd-daemon(3) prefixes expect them
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6))


def escape_text(text, limit=MAX_LINE_CHARS):
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ...), cut to
    ``limit`` characters with a note saying how much was cut."""
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    if len(text) > limit:
        cut = len(text) - limit
        text = text[:limit] + "...[%d chars cut]" % cut
    return text


def syslog_priority(levelno):
    """The syslog priority (0-7) of a logging level: ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    for threshold, priority in _PRIORITY:
        if levelno >= threshold:
            return priority
    return 7


def parse_level(text, source):
    """``"info"``, ``"debug"`` or RUST_LOG style ``"hftfeed=debug"`` / ``"warn,x=debug"``
    (the first directive counts) -> a logging level. Unknown names raise ConfigError naming
    ``source``: a typo must not silently log at another level."""
    directive = text.strip().lower().split(",")[0].split("=")[-1].strip()
    if directive not in LOG_LEVELS:
        raise ConfigError("%s: %r is not a log level (one of %s)"
                          % (source, escape_text(text, 64), ", ".join(LOG_LEVELS)))
    return LOG_LEVELS[directive]


def level_from(environ, config_level):
    """The effective level: ``$HFTFEED_LOG``, else ``$RUST_LOG``, else the config, else info."""
    for name in ("HFTFEED_LOG", "RUST_LOG"):
        if environ.get(name):
            return parse_level(environ[name], name)
    if config_level:
        return parse_level(config_level, "log_level")
    return logging.INFO


def stderr_is_journal(environ, fd=2):
    """True when ``fd`` is the stream systemd connected to journald (``$JOURNAL_STREAM``)."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class _Formatter(logging.Formatter):
    """Common part: the escaped, bounded message and traceback lines."""

    def message_of(self, record):
        try:
            text = record.getMessage()
        except (TypeError, ValueError) as exc:   # a bad format string must not lose the line
            text = "%r %% %r (unformattable: %s)" % (record.msg, record.args, exc)
        return escape_text(text)

    def traceback_lines(self, record):
        if not record.exc_info:
            return []
        if not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        lines = record.exc_text.splitlines()
        if len(lines) > MAX_TRACEBACK_LINES:
            lines = ["...[%d traceback lines cut]" % (len(lines) - MAX_TRACEBACK_LINES)] + \
                lines[-MAX_TRACEBACK_LINES:]
        return [escape_text(line) for line in lines]


class TextFormatter(_Formatter):
    """``time LEVEL logger: message`` for terminals and files."""

    def format(self, record):
        head = "%s %s %s: %s" % (self.formatTime(record), record.levelname, record.name,
                                 self.message_of(record))
        return "\n".join([head] + ["  | " + line for line in self.traceback_lines(record)])


class JournalFormatter(_Formatter):
    """``<N>logger: message``: journald reads the priority and stamps the time itself."""

    def format(self, record):
        prefix = "<%d>" % syslog_priority(record.levelno)
        head = "%s%s: %s" % (prefix, record.name, self.message_of(record))
        return "\n".join([head] + [prefix + "  | " + line
                                   for line in self.traceback_lines(record)])


class JsonFormatter(_Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``priority``, ``logger``,
    ``msg`` and, for exceptions, ``traceback`` (a list of lines)."""

    def format(self, record):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
            ".%06dZ" % int((record.created % 1) * 1e6)
        doc = {"ts": ts, "level": record.levelname.lower(),
               "priority": syslog_priority(record.levelno), "logger": record.name,
               "msg": self.message_of(record)}
        lines = self.traceback_lines(record)
        if lines:
            doc["traceback"] = lines
        return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def choose_format(log_format, environ, fd=2):
    """``"auto"`` -> ``"journal"`` under journald, else ``"text"``; others as given."""
    if log_format not in LOG_FORMATS:
        raise ConfigError("log_format: %r is not one of %s"
                          % (escape_text(log_format, 64), ", ".join(LOG_FORMATS)))
    if log_format == "auto":
        return "journal" if stderr_is_journal(environ, fd) else "text"
    return log_format


FORMATTERS = {"text": TextFormatter, "journal": JournalFormatter, "json": JsonFormatter}


def setup_logging(config_level=None, log_format="auto", environ=None, stream=None):
    """Install the one root handler (replacing any earlier one: safe to call again on reload).
    Returns ``(level, format name)``; raises ConfigError for an unknown level or format."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    level = level_from(environ, config_level)
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    name = choose_format(log_format, environ, fd) if fd >= 0 else \
        ("text" if log_format == "auto" else choose_format(log_format, environ, fd))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(FORMATTERS[name]())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return level, name


def set_level(config_level, environ=None):
    """Reload: apply a new config ``log_level`` unless the environment overrides it.
    Returns the level now in force."""
    environ = os.environ if environ is None else environ
    level = level_from(environ, config_level)
    logging.getLogger().setLevel(level)
    return level
