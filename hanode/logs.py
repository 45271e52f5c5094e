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
heartbeat loop, so it only queues the record (``_ToWriter``); one thread
(``_Writer``) formats and writes it to every target.  A record keeps
the time it was made, so a line written late still says when it happened;
the queue is drained at exit.

The queue, its thread and the syslog sender are this module's own, small
equivalents of ``logging.handlers``' QueueHandler, QueueListener and
SysLogHandler: that module (with pickle and copy) was 0.3 MB of the agent's
memory for three classes.  Syslog gets what SysLogHandler sends: one RFC 3164
``<PRI>`` message per record (PRI = facility * 8 + severity, the facility
names and codes of ``SysLogHandler.facility_names``), NUL-terminated, on the
unix socket /dev/log.  A test compares the bytes with SysLogHandler's.

No record asks for its process's name (``logging.logMultiprocessing`` off; no
format here shows it): logging looks ``multiprocessing`` up in ``sys.modules``
for each record and calls ``current_process()`` on what it finds, and while the
resource runner's worker imports pyroute2, what it finds is ``hanode.vip``'s
stand-in, whose answer imports the real module (with pickle: 0.4 MB of the
agent's memory, on whichever node logged at that moment).
"""
import atexit
import contextlib
import logging
import os
import queue
import socket
import sys
import threading
from typing import Any, List, Optional, Union

LOG = logging.getLogger("hanode")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
# RFC 3164 facility codes, by the names logging.handlers.SysLogHandler.facility_names gives them
SYSLOG_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
    "local7": 23,
}
# RFC 3164 severity of each level; any other level is sent as a warning, as SysLogHandler does
SYSLOG_SEVERITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
SYSLOG_DEFAULT_SEVERITY = 4
SYSLOG_SOCKET = "/dev/log"
# what the writer thread's queue holds: a record, a flush's event, or None (stop)
Queued = Union[logging.LogRecord, threading.Event, None]


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


class SyslogSender(logging.Handler):
    """Each record as one RFC 3164 message to the syslog daemon's unix socket (the module
    docstring).  A datagram socket, else a stream socket, as SysLogHandler tries them.  No daemon
    at start is no error (C's openlog ignores it too): the next record connects.  A send that fails
    (syslogd restarted: a new socket at the same path) reconnects and sends once more; if that
    fails too, the OSError is the caller's (SayOnce says so)."""

    def __init__(self, path: str, facility: int) -> None:
        super().__init__()
        self.path = path
        self.facility = facility
        self.sock: Optional[socket.socket] = None
        with contextlib.suppress(OSError):
            self._connect()

    def _connect(self) -> socket.socket:
        self._close_socket()
        try:
            sock = self._connected(socket.SOCK_DGRAM)
        except OSError:
            sock = self._connected(socket.SOCK_STREAM)
        self.sock = sock
        return sock

    def _connected(self, kind: int) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def message(self, record: logging.LogRecord) -> bytes:
        severity = SYSLOG_SEVERITIES.get(record.levelno, SYSLOG_DEFAULT_SEVERITY)
        return ("<%d>%s\000" % (self.facility * 8 + severity, self.format(record))).encode("utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        data = self.message(record)
        try:
            (self.sock or self._connect()).send(data)
        except OSError:
            self._connect().send(data)

    def close(self) -> None:
        self._close_socket()
        super().close()


class SyslogHandler(SayOnce, SyslogSender):
    def __init__(self, path: str, facility: int) -> None:
        super().__init__(path, facility)
        self.what = "syslog (%s)" % path


class _ToWriter(logging.Handler):
    """The ``hanode`` logger's one handler: the record, its message made here (the arguments are
    the caller's objects, which may change once it goes on), onto the writer's queue."""

    def __init__(self, records: "queue.SimpleQueue[Queued]") -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)   # the message, with its traceback if any
            queued = logging.makeLogRecord(record.__dict__)
            queued.msg = queued.message = text
            queued.args, queued.exc_info, queued.exc_text, queued.stack_info = None, None, None, None
            self.records.put(queued)
        except Exception:
            self.handleError(record)


class _Writer:
    """The thread that writes each queued record to every target whose level it reaches."""

    def __init__(self, targets: List[logging.Handler]) -> None:
        self.targets = targets
        self.records: "queue.SimpleQueue[Queued]" = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="hanode-log", daemon=True)
        self.thread.start()

    def _write(self) -> None:
        while True:
            record = self.records.get()
            if record is None:
                return
            if isinstance(record, threading.Event):
                record.set()   # flush(): everything queued before it is written
                continue
            for target in self.targets:
                if record.levelno >= target.level:
                    target.handle(record)

    def flush(self, timeout: float) -> bool:
        """Wait until what is queued now is written; False if that took longer than ``timeout`` s."""
        written = threading.Event()
        self.records.put(written)
        return written.wait(timeout)

    def stop(self) -> None:
        """Write what is still queued, then end the thread."""
        self.records.put(None)
        self.thread.join()


_writer: Optional[_Writer] = None


def _stop_writer() -> None:
    global _writer
    if _writer is not None:
        _writer.stop()   # writes what is still queued
        _writer = None


def setup_logging(cfg: Any, verbose: int) -> None:
    """Point the ``hanode`` logger at stderr and at what ha.cf names (logfile, debugfile,
    logfacility), through the writer thread (see the module docstring)."""
    _stop_writer()
    logging.logMultiprocessing = False   # see the module docstring
    LOG.handlers[:] = []
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False
    _write_to_targets(cfg, verbose)
    targets, LOG.handlers[:] = list(LOG.handlers), []
    global _writer
    _writer = _Writer(targets)
    LOG.addHandler(_ToWriter(_writer.records))
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
