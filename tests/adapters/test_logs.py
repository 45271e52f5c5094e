"""hanode.logs: a log target that blocks (a sync-mounted /data, a full pipe) never blocks the caller;
syslog gets what logging.handlers.SysLogHandler would send, and survives its daemon's restart."""
import logging
import logging.handlers
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from hanode import logs
from hanode.core.config import SYSLOG_FACILITIES as HACF_FACILITIES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Cfg:
    logfile = None
    debugfile = None
    logfacility = None


def test_a_blocked_logfile_does_not_block_log(tmp_path):
    """The logfile is a FIFO nobody reads yet: opening it blocks whoever writes. log() must come
    back at once (the writer thread waits instead); the line is written, with the time it was
    logged, once a reader appears."""
    fifo = str(tmp_path / "ha-log")
    os.mkfifo(fifo)
    cfg = Cfg()
    cfg.logfile = fifo
    logs.setup_logging(cfg, 0)
    got = []
    try:
        t0 = time.monotonic()
        logs.log("info", "first line")
        logs.log("warning", "second line")
        took = time.monotonic() - t0
        assert took < 0.05, took
        reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
        reader.start()
        time.sleep(0.2)
    finally:
        targets = logs._writer.targets
        logs._stop_writer()   # drains the queue into the FIFO
        for handler in targets:
            handler.close()   # the reader sees the end of the file
        logs.LOG.handlers[:] = []
    reader.join(5)
    text = got[0] if got else ""
    assert "INFO: first line" in text and "WARNING: second line" in text, text


def test_facilities_and_severities_are_syslog_handler_s():
    assert logs.SYSLOG_FACILITIES == logging.handlers.SysLogHandler.facility_names
    assert set(HACF_FACILITIES) - {"none"} <= set(logs.SYSLOG_FACILITIES)   # every name ha.cf takes
    stdlib = logging.handlers.SysLogHandler
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 25):
        name = logging.getLevelName(level)
        assert logs.SYSLOG_SEVERITIES.get(level, logs.SYSLOG_DEFAULT_SEVERITY) == \
            stdlib.priority_names[stdlib.priority_map.get(name, "warning")], name


class Syslogd:
    """A syslog daemon's socket: a unix datagram socket bound at ``path``."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(5)

    def receive(self):
        return self.sock.recv(4096)

    def stop(self):
        self.sock.close()
        os.unlink(self.path)


@pytest.fixture
def syslog_cfg(tmp_path, monkeypatch):
    path = str(tmp_path / "log")
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", path)
    cfg = Cfg()
    cfg.logfacility = "local3"
    yield path, cfg
    logs._stop_writer()
    logs.LOG.handlers[:] = []


def test_syslog_gets_what_syslog_handler_sends(syslog_cfg):
    path, cfg = syslog_cfg
    ours, theirs = Syslogd(path), Syslogd(path + "-stdlib")
    try:
        logs.setup_logging(cfg, 0)
        logs.log("info", "VIP 192.0.2.100 added: ü")
        logs.log("debug", "not for syslog")
        logs.log("critical", "second")
        logs._stop_writer()
        stdlib = logging.handlers.SysLogHandler(theirs.path, logs.SYSLOG_FACILITIES["local3"])
        stdlib.setFormatter(logging.Formatter("hanode[%(process)d]: %(levelname)s: %(message)s"))
        for level, text in ((logging.INFO, "VIP 192.0.2.100 added: ü"), (logging.CRITICAL, "second")):
            stdlib.handle(logging.makeLogRecord({"levelno": level, "levelname": logging.getLevelName(level),
                                                 "msg": text}))
            expected = theirs.receive()
            assert ours.receive() == expected
        assert expected.startswith(b"<154>hanode[%d]: CRITICAL: second" % os.getpid())   # local3 = 19, crit = 2
        stdlib.close()
    finally:
        ours.stop()
        theirs.stop()


def test_syslog_restarted_or_gone_is_said_once_and_comes_back(syslog_cfg, capfd):
    path, cfg = syslog_cfg
    daemon = Syslogd(path)
    logs.setup_logging(cfg, 0)
    logs.log("info", "one")
    assert daemon.receive().endswith(b"INFO: one\000")
    daemon.stop()
    daemon = Syslogd(path)   # syslogd restarted: a new socket at the same path
    logs.log("info", "two")
    assert daemon.receive().endswith(b"INFO: two\000")
    daemon.stop()            # and gone: the agent goes on, and says so once
    logs.log("info", "three")
    logs.log("info", "four")
    assert logs._writer.flush(5)
    daemon = Syslogd(path)
    logs.log("info", "five")
    logs._stop_writer()
    assert daemon.receive().endswith(b"INFO: five\000")
    daemon.stop()
    err = capfd.readouterr().err
    assert err.count("cannot write syslog (%s)" % path) == 1, err
    assert err.count("syslog (%s) works again" % path) == 1, err


def _agent_logs(facility, then):
    """A fresh ``python3 -S`` that sets up the agent's logging (ha.cf ``logfacility``), runs
    ``then`` and prints what it says: (its stdout, its stderr)."""
    code = ("import sys\nfrom hanode import logs, vip\n"
            "class Cfg: logfile = debugfile = None; logfacility = %r\nlogs.setup_logging(Cfg(), 0)\n" % facility) + then
    r = subprocess.run([sys.executable, "-S", "-c", code], env=dict(os.environ, PYTHONPATH=REPO),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr


def test_the_agent_does_not_import_logging_handlers():
    out, err = _agent_logs("daemon", "logs.log('info', 'up')\nprint('logging.handlers' in sys.modules)")
    assert "INFO: up" in err
    assert out == "False"


def test_logging_while_pyroute2_is_imported_leaves_multiprocessing_out():
    # the resource runner's worker imports pyroute2 with hanode.vip's stand-in multiprocessing in
    # sys.modules; a record made meanwhile (on the loop) must not ask it for current_process()
    out, err = _agent_logs(None, "with vip._multiprocessing_later():\n    logs.log('info', 'meanwhile')\n"
                                 "logs._stop_writer()\n"
                                 "print(sorted(m for m in sys.modules if m.startswith(('multiprocessing', 'pickle'))))")
    assert "INFO: meanwhile" in err
    assert out == "[]"
