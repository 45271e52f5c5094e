"""hanode.logs: a log target that blocks (a sync-mounted /data, a full pipe) never blocks the caller."""
import os
import threading
import time

from hanode import logs


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
        targets = logs._listener.handlers
        logs._stop_writer()   # drains the queue into the FIFO
        for handler in targets:
            handler.close()   # the reader sees the end of the file
        logs.LOG.handlers[:] = []
    reader.join(5)
    text = got[0] if got else ""
    assert "INFO: first line" in text and "WARNING: second line" in text, text
