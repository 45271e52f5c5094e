"""The daemon's logging: stderr, ha.cf ``logfile``/``debugfile`` and syslog (``logfacility``).

Theory of operation
-------------------
Every message goes through the ``hanode`` logger, in Heartbeat's line format
(``2026/11/25_18:48:01.123 hanode[PID]: LEVEL: text``): stderr always (debug
lines with ``-v``), the logfile from INFO, the debugfile from DEBUG, and syslog
from INFO when ha.cf names a facility and the machine has ``/dev/log``.

A target that fails (disk full, unwritable directory, no syslog daemon) must
never end the agent: its handler says so once on stderr, keeps going without
it, and says once more when it works again (``SayOnce``).

``log(level, text)`` is the ``LogFn`` every adapter receives; its levels are
Heartbeat's words: debug, info, warning, error, critical.

Writing a line can block: the image mounts /data (the logfile) with ``sync``,
a full pipe stalls stderr, syslog may hang.  ``log`` is called on the
heartbeat loop, so it only queues the record (``QueueHandler``); one thread
(``QueueListener``) formats and writes it to every target.  A record keeps
the time it was made, so a line written late still says when it happened;
the queue is drained at exit.
"""
import atexit
import logging
import logging.handlers
import os
import queue
import sys
from typing import Any

LOG = logging.getLogger("hanode")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
SYSLOG_FACILITIES = logging.handlers.SysLogHandler.facility_names
SYSLOG_SOCKET = "/dev/log"


class SayOnce:
    """Mixin for a log handler whose target may fail (disk full, unwritable
    logfile, no syslog): the agent keeps running and says so once on stderr,
    and once more when the target works again."""

    failing = False
    failed_now = False
    what = "log"

    def emit(self, record: logging.LogRecord) -> None:
        self.failed_now = False
        try:
            super().emit(record)   # type: ignore[misc]
        except OSError:
            # FileHandler(delay=True) opens the file inside emit, outside its own error handling:
            # a read-only or missing log directory must not end the daemon
            self.handleError(record)
        if self.failing and not self.failed_now:
            self.failing = False
            sys.stderr.write("hanode: %s works again\n" % self.what)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed_now = True
        if not self.failing:
            self.failing = True
            error = sys.exc_info()[1]
            sys.stderr.write("hanode: cannot write %s (%s); continuing without it, this is said once\n"
                             % (self.what, error))


class LogFileHandler(SayOnce, logging.FileHandler):
    def __init__(self, path: str) -> None:
        super().__init__(path, delay=True)
        self.what = "logfile %s" % path


class SyslogHandler(SayOnce, logging.handlers.SysLogHandler):
    what = "syslog (%s)" % SYSLOG_SOCKET


_listener: Any = None


def _stop_writer() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()   # writes what is still queued
        _listener = None


def setup_logging(cfg: Any, verbose: int) -> None:
    """Point the ``hanode`` logger at stderr and at what ha.cf names (logfile, debugfile,
    logfacility), through the writer thread (see the module docstring)."""
    _stop_writer()
    LOG.handlers[:] = []
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False
    _write_to_targets(cfg, verbose)
    targets, LOG.handlers[:] = list(LOG.handlers), []
    records: Any = queue.SimpleQueue()
    LOG.addHandler(logging.handlers.QueueHandler(records))
    global _listener
    _listener = logging.handlers.QueueListener(records, *targets, respect_handler_level=True)
    _listener.start()
    atexit.register(_stop_writer)


def _write_to_targets(cfg: Any, verbose: int) -> None:
    fmt = logging.Formatter("%(asctime)s.%(msecs)03d hanode[%(process)d]: %(levelname)s: %(message)s",
                            "%Y/%m/%d_%H:%M:%S")
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.INFO)
    err.setFormatter(fmt)
    LOG.addHandler(err)
    for path, level in ((cfg.logfile, logging.INFO), (cfg.debugfile, logging.DEBUG)):
        if path and path != "/dev/null":
            handler = LogFileHandler(path)
            handler.setFormatter(fmt)
            handler.setLevel(level)
            LOG.addHandler(handler)
    facility = cfg.logfacility
    if facility and facility != "none" and facility in SYSLOG_FACILITIES:
        if os.path.exists(SYSLOG_SOCKET):
            syslog = SyslogHandler(SYSLOG_SOCKET, SYSLOG_FACILITIES[facility])
            syslog.setFormatter(logging.Formatter("hanode[%(process)d]: %(levelname)s: %(message)s"))
            syslog.setLevel(logging.INFO)
            LOG.addHandler(syslog)
        else:
            LOG.warning("logfacility %s: no syslog socket %s on this machine; logging to stderr only",
                        facility, SYSLOG_SOCKET)


def log(level: str, text: str) -> None:
    LOG.log(LEVELS.get(level, logging.INFO), text)
