"""The null-modem simulator over real PTYs and unix sockets, and its CLI as a real process.

Timing checks use the same clock as the simulator (time.monotonic) and state
the bound they check; the pacing tests print what they measured (run with -s).
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
import time

import pytest

from hanode.lab.cable import NullModem, NullModemError, PtyEndpoint, UnixSocketEndpoint

BT = 10 / 19200  # seconds per byte at 19200 8N1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def open_end(path):
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.05)
            continue
        view = view[n:]


def collect(fd, n, timeout, quiet=None):
    """Read until ``n`` bytes, ``timeout`` s, or ``quiet`` s without a byte.

    Returns (data, [(monotonic time, chunk), ...]).
    """
    out = bytearray()
    chunks = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while len(out) < n:
        now = time.monotonic()
        if now >= deadline or (quiet is not None and now - last >= quiet):
            break
        ready, _, _ = select.select([fd], [], [], min(deadline - now, 0.05))
        if not ready:
            continue
        try:
            c = os.read(fd, 65536)
        except BlockingIOError:
            continue
        t = time.monotonic()
        last = t
        out += c
        chunks.append((t, c))
    return bytes(out), chunks


def lateness(t_write, chunks, bt=BT):
    """Per byte: arrival minus the earliest time an 8N1 line could deliver it."""
    out = []
    i = 0
    for t, c in chunks:
        for _ in c:
            out.append(t - (t_write + (i + 1) * bt))
            i += 1
    return out


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_pacing_1920_bytes_take_one_second(tmp_path):
    log = tmp_path / "nm.log"
    data = bytes(i % 256 for i in range(1920))
    with NullModem(log=str(log), realtime=True) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            t_wall = time.time()
            t_write = time.monotonic()
            os.write(fa, data)
            got, chunks = collect(fb, len(data), timeout=3.0)
        finally:
            os.close(fa)
            os.close(fb)
        counters = nm.counters()["a>b"]
    assert got == data
    recs = [r for r in read_log(log) if r.get("dir") == "a>b"]
    # Judged on the simulator's own delivery times (the log): the reader below
    # may wake late on a loaded machine, the line must not.
    duration = recs[-1]["t"] - t_wall
    assert abs(duration - 1.0) <= 0.03, "1920 bytes took %.4f s, want 1.000 s within 3%%" % duration
    seen = chunks[-1][0] - t_write
    assert 0.999 < seen < 1.1
    late = lateness(t_write, chunks)
    # Never early: no byte arrives before a real 19200-baud line could carry it.
    assert min(late) >= -0.0002, "a byte arrived %.3f ms early" % (-min(late) * 1e3)
    # Per-byte timing: the whole schedule starts when the simulator picks the
    # write up (``start``: pty hand-over plus a wake-up, a few ms at worst on
    # a loaded box); around that, typical bytes are within 1 ms.  The tail is
    # not asserted tightly: it is mostly this normal-priority reader waking late.
    start = min(late)
    jitter = [x - start for x in late]
    assert start < 0.02
    assert pct(jitter, 0.5) < 0.001 and pct(jitter, 0.9) < 0.005
    assert counters["late_us_total"] / counters["late_samples"] < 500  # simulator's own mean wake-up lateness
    # The log holds exactly the bytes, in bursts of a few bytes at most.
    assert bytes.fromhex("".join(r["data"] for r in recs)) == data
    assert max(len(r["data"]) // 2 for r in recs) <= 20
    print("\npacing: 1920 B in %.4f s (ideal 1.0000; reader saw %.4f s); start %.3f ms; per-byte jitter ms"
          " p50 %.3f p99 %.3f max %.3f; %d bursts; simulator wake-up lateness max %.3f ms mean %.3f ms"
          % (duration, seen, start * 1e3, pct(jitter, .5) * 1e3, pct(jitter, .99) * 1e3, max(jitter) * 1e3, len(recs),
             counters["late_us_max"] / 1e3, counters["late_us_total"] / 1e3 / counters["late_samples"]))


def test_both_directions_paced_independently(tmp_path):
    data_ab = os.urandom(960)
    data_ba = os.urandom(960)
    log = tmp_path / "nm.log"
    with NullModem(realtime=True, log=str(log)) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        results = {}
        try:
            def reader(name, fd, n):
                results[name] = collect(fd, n, timeout=3.0)
            threads = [threading.Thread(target=reader, args=("ab", fb, 960)),
                       threading.Thread(target=reader, args=("ba", fa, 960))]
            for t in threads:
                t.start()
            t_wall = time.time()
            t_write = time.monotonic()
            os.write(fa, data_ab)
            os.write(fb, data_ba)
            for t in threads:
                t.join()
        finally:
            os.close(fa)
            os.close(fb)
    recs = read_log(log)
    for name, data in (("a>b", data_ab), ("b>a", data_ba)):
        got, chunks = results[name.replace(">", "")]
        assert got == data
        duration = [r for r in recs if r.get("dir") == name][-1]["t"] - t_wall
        # 960 bytes each way at once: 0.5 s, not 1.0 s - the two directions do not share the line.
        assert abs(duration - 0.5) <= 0.03, "%s took %.4f s, want 0.500 s" % (name, duration)
        assert min(lateness(t_write, chunks)) >= -0.0002


def test_cut_loses_bytes_and_reconnect_resumes(tmp_path):
    log = tmp_path / "nm.log"
    with NullModem(log=str(log), realtime=True) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            first = os.urandom(100)
            os.write(fa, first)
            assert collect(fb, 100, timeout=1.0)[0] == first
            nm.cut()
            assert nm.status()["cut"] is True
            os.write(fa, os.urandom(100))
            os.write(fb, os.urandom(50))
            assert collect(fb, 1, timeout=0.2)[0] == b""  # 100 bytes need 52 ms: all lost
            assert collect(fa, 1, timeout=0.05)[0] == b""
            c = nm.counters()
            assert c["a>b"]["lost_cut"] == 100 and c["b>a"]["lost_cut"] == 50
            nm.reconnect()
            after = os.urandom(100)
            os.write(fa, after)
            assert collect(fb, 100, timeout=1.0)[0] == after
            # A cut in the middle of a transfer truncates it: the receiver keeps a prefix.
            long = os.urandom(400)
            os.write(fa, long)
            time.sleep(0.1)  # ~190 bytes on their way
            nm.cut()
            got, _ = collect(fb, 400, timeout=0.4)
            nm.reconnect()
        finally:
            os.close(fa)
            os.close(fb)
        c = nm.counters()["a>b"]
    assert 100 < len(got) < 300 and got == long[:len(got)]
    assert c["lost_cut"] == 100 + 400 - len(got)
    assert c["carried"] == 100 + 100 + len(got)
    events = [r["event"] for r in read_log(log) if "event" in r]
    assert events == ["start", "cut", "reconnect", "cut", "reconnect", "close"]


def test_log_records_every_delivered_byte_with_times(tmp_path):
    log = tmp_path / "nm.log"
    ab, ba = os.urandom(300), os.urandom(200)
    t0 = time.time()
    with NullModem(log=str(log)) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            os.write(fa, ab)
            os.write(fb, ba)
            assert collect(fb, 300, timeout=2.0)[0] == ab
            assert collect(fa, 200, timeout=2.0)[0] == ba
        finally:
            os.close(fa)
            os.close(fb)
    recs = read_log(log)
    assert recs[0]["event"] == "start" and recs[0]["baud"] == 19200 and recs[0]["a"] == nm.paths[0]
    for direction, data in (("a>b", ab), ("b>a", ba)):
        mine = [r for r in recs if r.get("dir") == direction]
        assert bytes.fromhex("".join(r["data"] for r in mine)) == data
        times = [r["t"] for r in mine]
        assert times == sorted(times) and t0 < times[0] < t0 + 2
        # Wall-clock spread of the log matches the line time of the data.
        assert abs((times[-1] - times[0]) - (len(data) - 1) * BT) < 0.02


def test_drop_probability_statistics():
    n = 23040  # 0.5 s at 460800 baud
    p = 0.05
    data = bytes(range(1, 256)) * (n // 255) + bytes(range(1, 1 + n % 255))
    with NullModem(baud=460800, drop=p, seed=1) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            threading.Thread(target=write_all, args=(fa, data)).start()
            got, _ = collect(fb, n, timeout=3.0, quiet=0.3)
        finally:
            os.close(fa)
            os.close(fb)
        c = nm.counters()["a>b"]
    sigma = (n * p * (1 - p)) ** 0.5
    assert abs(c["dropped"] - n * p) < 5 * sigma, c
    assert len(got) == n - c["dropped"] == c["carried"]
    # What arrives is the sent stream with bytes missing, in order, none altered.
    it = iter(data)
    assert all(any(x == y for y in it) for x in got)


def test_bit_error_rate_statistics():
    n = 23040
    ber = 1e-3
    data = os.urandom(n)
    with NullModem(baud=460800, ber=ber, seed=2) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            threading.Thread(target=write_all, args=(fa, data)).start()
            got, _ = collect(fb, n, timeout=3.0)
        finally:
            os.close(fa)
            os.close(fb)
        c = nm.counters()["a>b"]
    assert len(got) == n
    flipped = sum(bin(x ^ y).count("1") for x, y in zip(data, got))
    bad_bytes = sum(1 for x, y in zip(data, got) if x != y)
    bits = 8 * n
    sigma = (bits * ber) ** 0.5
    assert abs(flipped - bits * ber) < 5 * sigma, flipped
    assert c["bits_flipped"] == flipped and c["corrupted"] == bad_bytes


def test_garbage_injection_and_random_bursts():
    with NullModem(realtime=True) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            nm.inject("a>b", b"\xde\xad")
            assert collect(fb, 2, timeout=0.5)[0] == b"\xde\xad"
            # Noise goes ahead of queued bytes, as noise on the wire would.
            os.write(fa, b"A" * 40)
            time.sleep(0.005)
            nm.inject("a>b", b"\x00\x01")
            got = collect(fb, 42, timeout=0.5)[0]
            assert sorted(got) == sorted(b"A" * 40 + b"\x00\x01") and got != b"A" * 40 + b"\x00\x01"
            nm.set_garbage(50, max_len=4)
            got = collect(fa, 10000, timeout=0.5)[0]
            nm.set_garbage(0)
            time.sleep(0.02)
        finally:
            os.close(fa)
            os.close(fb)
        c = nm.counters()["b>a"]
    # ~25 bursts of 1..4 bytes in 0.5 s
    assert 5 <= len(got) <= 100 and c["garbage"] >= len(got)
    with pytest.raises(NullModemError):
        nm.inject("a<b", b"x")


def test_latency_delays_every_byte():
    with NullModem(latency_ms=100, realtime=True) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            t_write = time.monotonic()
            os.write(fa, b"0123456789")
            got, chunks = collect(fb, 10, timeout=1.0)
        finally:
            os.close(fa)
            os.close(fb)
    assert got == b"0123456789"
    late = lateness(t_write + 0.100, chunks)
    assert min(late) >= -0.0002 and max(late) < 0.01


def test_output_flush_on_the_pty_discards_what_was_not_sent():
    with NullModem(realtime=True) as nm:
        fa, fb = open_end(nm.paths[0]), open_end(nm.paths[1])
        try:
            data = os.urandom(1000)
            os.write(fa, data)
            time.sleep(0.1)
            termios.tcflush(fa, termios.TCOFLUSH)  # TIOCPKT tells the simulator
            got, _ = collect(fb, 1000, timeout=0.6)
            os.write(fa, b"fresh")
            fresh, _ = collect(fb, 5, timeout=0.5)
        finally:
            os.close(fa)
            os.close(fb)
        c = nm.counters()["a>b"]
    assert 100 < len(got) < 400 and got == data[:len(got)]
    assert c["flushed"] == 1000 - len(got)
    assert fresh == b"fresh"


def test_stable_links_and_close_cleans_up(tmp_path):
    la, lb = str(tmp_path / "dev" / "ttyS0-node1"), str(tmp_path / "dev" / "ttyS0-node2")
    nm = NullModem(PtyEndpoint(link=la), PtyEndpoint(link=lb))
    try:
        assert os.readlink(la) == nm.paths[0] and os.readlink(lb) == nm.paths[1]
        nm.start()
        fa, fb = open_end(la), open_end(lb)
        every = bytes(range(256))
        os.write(fa, every)  # raw: all 256 values, CR/LF/XON/XOFF/^C included
        assert collect(fb, 256, timeout=1.0)[0] == every
        os.close(fa)
        os.close(fb)
        # The agent may close and reopen its port: the pair survives.
        fa = open_end(la)
        os.write(fa, b"again")
        fb = open_end(lb)
        assert collect(fb, 5, timeout=1.0)[0] == b"again"
        os.close(fa)
        os.close(fb)
    finally:
        nm.close()
    assert not os.path.lexists(la) and not os.path.lexists(lb)
    nm.close()  # idempotent
    with pytest.raises(NullModemError):
        nm.start()


def test_bad_settings_are_refused():
    with pytest.raises(NullModemError, match="drop"):
        NullModem(drop=1.5)
    with pytest.raises(NullModemError, match="baud"):
        NullModem(baud=0)
    with NullModem() as nm:
        assert nm.command("ber 2") .startswith("error: ber")
        assert nm.command("bogus").startswith("error: unknown command")
        assert nm.command("drop 0.25") == "ok" and nm.drop == 0.25


class QemuLikeServer:
    """A unix stream server like QEMU's ``-chardev socket,server=on``: one client at a time."""

    def __init__(self, path):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn = None

    def accept(self, timeout=2.0):
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(0.05)
        return self.conn

    def recv(self, n, timeout):
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                c = self.conn.recv(n - len(out))
            except socket.timeout:
                continue
            if not c:
                break
            out += c
        return bytes(out)

    def close(self):
        if self.conn:
            self.conn.close()
        self.listener.close()


def test_unix_socket_ends_connect_reconnect_and_wait_for_the_server(tmp_path):
    pa, pb = str(tmp_path / "vm1.sock"), str(tmp_path / "vm2.sock")
    sa = QemuLikeServer(pa)  # VM 2 is not up yet: the cable must keep trying
    nm = NullModem(UnixSocketEndpoint(pa, retry_s=0.05), UnixSocketEndpoint(pb, retry_s=0.05))
    sb = None
    try:
        nm.start()
        ca = sa.accept()
        time.sleep(0.1)
        sb = QemuLikeServer(pb)
        cb = sb.accept()
        t0 = time.monotonic()
        ca.sendall(b"x" * 192)
        assert sb.recv(192, 1.0) == b"x" * 192
        assert 0.09 <= time.monotonic() - t0 < 0.2  # 192 bytes are 100 ms of line time
        cb.sendall(b"pong")
        assert sa.recv(4, 1.0) == b"pong"
        # VM 1 restarts: its socket goes away and comes back; the cable reconnects.
        ca.close()
        ca = sa.accept()
        cb.sendall(b"after restart")
        assert sa.recv(13, 1.0) == b"after restart"
        assert nm.a.connects == 2 and nm.b.connects == 1
    finally:
        nm.close()
        sa.close()
        if sb:
            sb.close()


def _start_cli(tmp_path, *extra):
    la, lb = str(tmp_path / "ttyA"), str(tmp_path / "ttyB")
    ctl, log = str(tmp_path / "nm.sock"), str(tmp_path / "nm.log")
    proc = subprocess.Popen([sys.executable, "-m", "hanode.lab", "--link-a", la, "--link-b", lb,
                             "--control", ctl, "--log", log] + list(extra),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("ready"):
            break
    return proc, lines, la, lb, ctl, log


def control(path, *commands):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    s.connect(path)
    f = s.makefile("rw")
    answers = []
    for cmd in commands:
        f.write(cmd + "\n")
        f.flush()
        answers.append(f.readline().strip())
    s.close()
    return answers


def test_cli_control_socket_and_signals(tmp_path):
    proc, lines, la, lb, ctl, log = _start_cli(tmp_path)
    try:
        assert lines[-1] == "ready 19200 baud", (lines, proc.stderr.read() if proc.poll() is not None else "")
        assert lines[0] == "a pty %s -> %s" % (os.readlink(la), la)
        fa, fb = open_end(la), open_end(lb)
        os.write(fa, b"hello")
        assert collect(fb, 5, timeout=1.0)[0] == b"hello"
        status_line, ok, bad = control(ctl, "status", "cut", "bogus")
        status = json.loads(status_line)
        assert status["a>b"]["carried"] == 5 and status["baud"] == 19200 and status["a"]["link"] == la
        assert ok == "ok" and bad.startswith("error:")
        os.write(fa, b"lost")
        assert collect(fb, 1, timeout=0.1)[0] == b""
        proc.send_signal(signal.SIGUSR2)  # reconnect
        assert proc.stdout.readline().strip() == "reconnect"
        os.write(fa, b"back")
        assert collect(fb, 4, timeout=1.0)[0] == b"back"
        proc.send_signal(signal.SIGUSR1)  # cut
        assert proc.stdout.readline().strip() == "cut"
        assert json.loads(control(ctl, "status")[0])["cut"] is True
        assert control(ctl, "reconnect", "ber 1e-4", "drop 0.01") == ["ok", "ok", "ok"]
        st = json.loads(control(ctl, "status")[0])
        assert (st["cut"], st["ber"], st["drop"]) == (False, 1e-4, 0.01)
        assert st["a>b"]["lost_cut"] == 4
        os.close(fa)
        os.close(fb)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.lexists(la) and not os.path.lexists(lb) and not os.path.exists(ctl)
    events = [r["event"] for r in read_log(log) if "event" in r]
    assert events == ["start", "cut", "reconnect", "cut", "reconnect", "close"]


def test_cli_help_and_bad_options(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hanode.lab", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "--socket-a" in out.stdout and "SIGUSR1" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "hanode.lab", "--drop", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "drop must be in [0, 1)" in bad.stderr
    both = subprocess.run([sys.executable, "-m", "hanode.lab", "--link-a", str(tmp_path / "x"),
                           "--socket-a", str(tmp_path / "y")], cwd=ROOT, capture_output=True, text=True,
                          timeout=10)
    assert both.returncode == 2 and "exclusive" in both.stderr
