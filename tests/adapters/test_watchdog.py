"""Tests for hanode.watchdog: real stand-in devices (regular file, FIFO, PTY), real child processes
killed with real signals, the ioctl numbers checked against the kernel's own header, and - where
the kernel can give us one - a real watchdog device (always magic-closed, never left armed)."""
import asyncio
import errno
import fcntl
import glob
import json
import lzma
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tty

import pytest

from hanode import watchdog as wd
from hanode.watchdog import HealthGate, Watchdog, WatchdogError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LogRecorder:
    def __init__(self):
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))

    def text(self, level=None):
        return "\n".join(t for lvl, t in self.lines if level is None or lvl == level)


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


# A stand-in for the agent: opens the device, pets it, reports on stdout, and on SIGTERM does
# what the agent's shutdown does (magic close). SIGKILL gives it no chance to do anything.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from hanode.watchdog import Watchdog
    w = Watchdog(sys.argv[1], 5, required=True, log=lambda lvl, t: None)
    w.open()
    def on_term(signum, frame):
        w.close_clean()
        print("closed", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    for _ in range(int(sys.argv[2])):
        w.pet()
    if len(sys.argv) > 3:
        # a resource daemon started by the agent: it must not inherit the watchdog fd
        import subprocess
        child = subprocess.Popen(["sleep", "30"], close_fds=False)
        print("grandchild", child.pid, flush=True)
    print("petted", w.pets, flush=True)
    while True:
        time.sleep(1)
""")


def start_child(device, pets, spawn_grandchild=False):
    argv = [sys.executable, "-c", CHILD, device, str(pets)]
    if spawn_grandchild:
        argv.append("spawn")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=child_env())
    proc.linebuf = b""
    return proc


def wait_line(proc, prefix, timeout=10.0):
    """Next stdout line starting with prefix, split; reads the raw fd so select() stays truthful."""
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in proc.linebuf:
            line, proc.linebuf = proc.linebuf.split(b"\n", 1)
            if line.decode().startswith(prefix):
                return line.decode().split()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        proc.linebuf += chunk
    raise AssertionError("child did not print %r in %.0f s (exit %s)" % (prefix, timeout, proc.poll()))


def read_fifo_until_eof(fd, timeout=10.0):
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk
    raise AssertionError("no EOF on the FIFO after %.0f s; got %r" % (timeout, data))


def reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


# --- ioctl numbers ----------------------------------------------------------------------------

def test_ioctl_numbers_match_linux_watchdog_h(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler: install gcc (the base image has it) to check the ioctl numbers"
    assert os.path.exists("/usr/include/linux/watchdog.h"), "install linux-libc-dev for <linux/watchdog.h>"
    src = tmp_path / "wd.c"
    src.write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <linux/watchdog.h>
        int main(void) {
            printf("%lu %lu %lu %lu %lu %lu %lu %lu %d %d %d\\n",
                (unsigned long)WDIOC_GETSUPPORT, (unsigned long)WDIOC_GETSTATUS,
                (unsigned long)WDIOC_GETBOOTSTATUS, (unsigned long)WDIOC_SETOPTIONS,
                (unsigned long)WDIOC_KEEPALIVE, (unsigned long)WDIOC_SETTIMEOUT,
                (unsigned long)WDIOC_GETTIMEOUT, (unsigned long)WDIOC_GETTIMELEFT,
                WDIOF_SETTIMEOUT, WDIOF_MAGICCLOSE, WDIOF_KEEPALIVEPING);
            return 0;
        }
    """))
    exe = tmp_path / "wd"
    subprocess.run([cc, str(src), "-o", str(exe)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    ours = [wd.WDIOC_GETSUPPORT, wd.WDIOC_GETSTATUS, wd.WDIOC_GETBOOTSTATUS, wd.WDIOC_SETOPTIONS,
            wd.WDIOC_KEEPALIVE, wd.WDIOC_SETTIMEOUT, wd.WDIOC_GETTIMEOUT, wd.WDIOC_GETTIMELEFT,
            wd.WDIOF_SETTIMEOUT, wd.WDIOF_MAGICCLOSE, wd.WDIOF_KEEPALIVEPING]
    assert ours == got


# --- absent / unusable devices ----------------------------------------------------------------

def test_absent_device_not_required_is_a_warning_and_disabled(tmp_path):
    log = LogRecorder()
    dev = str(tmp_path / "no-such-watchdog")
    w = Watchdog(dev, 31, required=False, log=log)
    assert w.open() is False
    assert not w.enabled
    assert w.pet() is False and w.pets == 0
    w.close_clean()   # harmless on a disabled watchdog
    warning = log.text("warning")
    assert dev in warning and "ENOENT" in warning and "continuing without" in warning
    assert not os.path.exists(dev), "open() must not create the device"


def test_absent_device_required_raises_naming_device_and_errno(tmp_path):
    dev = str(tmp_path / "no-such-watchdog")
    w = Watchdog(dev, 31, required=True, log=LogRecorder())
    with pytest.raises(WatchdogError) as ei:
        w.open()
    assert ei.value.device == dev and ei.value.errno == errno.ENOENT
    assert dev in str(ei.value) and "ENOENT" in str(ei.value)
    assert not w.enabled


def test_fifo_without_reader_required_raises_enxio_instead_of_blocking(tmp_path):
    fifo = str(tmp_path / "wd.fifo")
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(WatchdogError) as ei:
        Watchdog(fifo, 5, required=True, log=LogRecorder()).open()
    assert ei.value.errno == errno.ENXIO and fifo in str(ei.value)
    assert time.monotonic() - t0 < 2


def test_zero_timeout_is_refused():
    with pytest.raises(ValueError):
        Watchdog("/dev/watchdog", 0)


# --- stand-ins without the ioctls -------------------------------------------------------------

def test_regular_file_stand_in_records_pets_and_magic_close(tmp_path):
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    log = LogRecorder()
    w = Watchdog(str(dev), 31, log=log)
    assert w.open() is True and w.enabled
    assert "does not support WDIOC_SETTIMEOUT; the driver's own timeout applies" in log.text("warning")
    assert w.granted_timeout_s is None and not w.has_ioctls
    assert fcntl.fcntl(w.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC, \
        "resource scripts must not inherit the watchdog fd"
    for _ in range(4):
        assert w.pet() is True
    assert w.pets == 4
    assert dev.read_bytes() == b"\0" * 4
    w.close_clean()
    assert not w.enabled and w.pet() is False
    assert dev.read_bytes() == b"\0" * 4 + b"V"
    assert "closed cleanly" in log.text("info")


def test_pty_char_device_without_watchdog_ioctls(tmp_path):
    master, slave = os.openpty()
    try:
        tty.setraw(slave)   # NUL and 'V' must pass through the line discipline unchanged
        path = os.ttyname(slave)
        assert stat.S_ISCHR(os.stat(path).st_mode)
        log = LogRecorder()
        w = Watchdog(path, 10, log=log)
        assert w.open()
        assert "does not support WDIOC_SETTIMEOUT" in log.text("warning")
        w.pet()
        w.pet()
        w.close_clean()
        data = b""
        while len(data) < 3 and select.select([master], [], [], 2)[0]:
            data += os.read(master, 64)
        assert data == b"\0\0V"
    finally:
        os.close(master)
        os.close(slave)


def test_nowayout_is_read_from_sysfs_and_warned_about(tmp_path):
    # The attribute lives in /sys/dev/char/MAJ:MIN/nowayout; a scratch sysfs tree carries it here.
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        rdev = os.stat(path).st_rdev
        attr_dir = tmp_path / "sys" / "dev" / "char" / ("%d:%d" % (os.major(rdev), os.minor(rdev)))
        attr_dir.mkdir(parents=True)
        (attr_dir / "nowayout").write_text("1\n")
        log = LogRecorder()
        w = Watchdog(path, 10, log=log, sysfs=str(tmp_path / "sys"))
        w.open()
        assert w.nowayout is True
        assert "nowayout" in log.text("warning") and "even a clean stop" in log.text("warning")
        w.close_clean()
        assert "the box will reset" in log.text("warning")
        (attr_dir / "nowayout").write_text("0\n")
        w2 = Watchdog(path, 10, log=LogRecorder(), sysfs=str(tmp_path / "sys"))
        w2.open()
        assert w2.nowayout is False
        w2.close_clean()
    finally:
        os.close(master)
        os.close(slave)


def test_fifo_reader_gone_is_a_write_failure_and_disables(tmp_path):
    fifo = str(tmp_path / "wd.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    log = LogRecorder()
    w = Watchdog(fifo, 5, log=log)
    assert w.open()
    assert w.pet()
    os.close(rfd)
    assert w.pet() is False
    assert "Watchdog write failure: closing %s!" % fifo in log.text("error")
    assert not w.enabled and w.failed_pets == 1


# --- real child processes and signals ---------------------------------------------------------

@pytest.mark.parametrize("sig, expect_magic", [(signal.SIGKILL, False), (signal.SIGTERM, True)])
def test_fifo_child_killed(tmp_path, sig, expect_magic):
    fifo = str(tmp_path / "wd.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    proc = start_child(fifo, 3)
    try:
        assert wait_line(proc, "petted") == ["petted", "3"]
        os.kill(proc.pid, sig)
        data = read_fifo_until_eof(rfd)
        proc.wait(timeout=10)
    finally:
        reap(proc)
        os.close(rfd)
    if expect_magic:
        assert data == b"\0\0\0V", "a clean stop must disarm with the magic 'V'"
        assert proc.returncode == 0
    else:
        assert data == b"\0\0\0", "kill -9 must leave the watchdog armed (no 'V')"
        assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("sig, expect", [(signal.SIGKILL, b"\0\0"), (signal.SIGTERM, b"\0\0V")])
def test_regular_file_child_killed(tmp_path, sig, expect):
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    proc = start_child(str(dev), 2)
    try:
        wait_line(proc, "petted")
        os.kill(proc.pid, sig)
        proc.wait(timeout=10)
    finally:
        reap(proc)
    assert dev.read_bytes() == expect


def test_fd_not_inherited_by_processes_the_agent_starts(tmp_path):
    """A resource daemon started by hanode keeps running after hanode is killed; it must not hold
    the watchdog open (the device would stay busy for a restarted hanode)."""
    fifo = str(tmp_path / "wd.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    proc = start_child(fifo, 1, spawn_grandchild=True)
    grandchild = None
    try:
        grandchild = int(wait_line(proc, "grandchild")[1])
        wait_line(proc, "petted")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        os.kill(grandchild, 0)   # still alive ...
        assert read_fifo_until_eof(rfd, timeout=5) == b"\0"   # ... yet the FIFO saw its last writer go
    finally:
        reap(proc)
        if grandchild:
            try:
                os.kill(grandchild, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.close(rfd)


# --- the real thing, where the kernel has it --------------------------------------------------

def _real_watchdog_device():
    if not os.path.exists("/dev/watchdog"):
        r = subprocess.run(["modprobe", "softdog", "soft_noboot=1"], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists("/dev/watchdog"):
            pytest.skip("no /dev/watchdog and softdog cannot be loaded on this kernel (%s): a machine "
                        "limit, not a missing install; test_real_i6300esb_watchdog_in_a_vm drives a real driver"
                        % (r.stderr.strip().splitlines() or ["?"])[-1])
    try:
        with open("/sys/class/watchdog/watchdog0/nowayout") as f:
            if f.read().strip() == "1":
                pytest.skip("/dev/watchdog has nowayout=1: opening it would reset this machine")
    except OSError:
        pass
    return "/dev/watchdog"


def test_real_watchdog_set_get_pet_and_magic_close():
    dev = _real_watchdog_device()
    log = LogRecorder()
    w = Watchdog(dev, 30, required=True, log=log)
    try:
        try:
            w.open()
        except WatchdogError as e:
            if e.errno == errno.EBUSY:
                pytest.skip(str(e))
            raise
        assert w.has_ioctls and w.granted_timeout_s is not None and w.granted_timeout_s > 0
        assert w.pet() and w.pet()
        left = w.time_left_s()
        assert left is None or 0 < left <= w.granted_timeout_s
    finally:
        w.close_clean()   # never leave it armed: the box would reset
    assert "Using watchdog device: %s" % dev in log.text("info")


# --- HealthGate -------------------------------------------------------------------------------

def test_health_gate_requires_loop_tick_and_uart():
    g = HealthGate(max_lateness_ms=100, max_age_ms=1000)
    assert g.healthy(0) == (False, "agent loop has not run yet")
    g.note_loop(10, 3)
    ok, why = g.healthy(10)
    assert not ok and "core tick" in why
    g.note_tick(10)
    ok, why = g.healthy(10)
    assert not ok and why == "UART not open"
    g.uart_ok(True)
    assert g.healthy(10) == (True, "ok")


def test_health_gate_late_loop():
    g = HealthGate(max_lateness_ms=100, max_age_ms=1000)
    g.uart_ok(True)
    g.note_tick(0)
    g.note_loop(0, 100)
    assert g.healthy(0)[0], "exactly at the limit is still on time"
    g.note_loop(50, 101)
    ok, why = g.healthy(50)
    assert not ok and "late by 101 ms (max 100 ms)" in why
    g.note_tick(60)
    g.note_loop(60, 2)   # back on time: petting resumes
    assert g.healthy(60) == (True, "ok")


def test_health_gate_stale_tick_or_loop():
    g = HealthGate(max_lateness_ms=100, max_age_ms=500)
    g.uart_ok(True)
    g.note_tick(1000)
    g.note_loop(1000, 0)
    assert g.healthy(1500)[0]
    # the loop keeps running but the core's tick has stopped (wedged core): no petting
    g.note_loop(1600, 0)
    ok, why = g.healthy(1600)
    assert not ok and "core tick not run for 600 ms (max 500 ms)" in why
    # the tick runs but nobody reports loop iterations any more
    g.note_tick(2200)
    ok, why = g.healthy(2200)
    assert not ok and "agent loop not run for 600 ms" in why


def test_health_gate_uart_lost_and_uartless_config():
    g = HealthGate(max_lateness_ms=100, max_age_ms=500)
    g.note_tick(0)
    g.note_loop(0, 0)
    g.uart_ok(True)
    assert g.healthy(0)[0]
    g.uart_ok(False)
    assert g.healthy(0) == (False, "UART not open")
    g2 = HealthGate(max_lateness_ms=100, max_age_ms=500, need_uart=False)
    g2.note_tick(0)
    g2.note_loop(0, 0)
    assert g2.healthy(0) == (True, "ok")


def test_health_gate_drives_petting(tmp_path):
    """The agent's rule end to end: pet only when healthy; a stall stops the pets."""
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    w = Watchdog(str(dev), 5, log=LogRecorder())
    w.open()
    g = HealthGate(max_lateness_ms=50, max_age_ms=300)
    g.uart_ok(True)
    # 10 on-time iterations every 100 ms, then the loop stalls for 1 s (wakes 900 ms late)
    for now, late in [(t * 100, 1) for t in range(10)] + [(1900, 900), (2000, 0)]:
        g.note_loop(now, late)
        g.note_tick(now)
        if g.healthy(now)[0]:
            w.pet()
    w.close_clean()
    assert w.pets == 11   # the late wake-up at 1900 ms did not pet
    assert dev.read_bytes() == b"\0" * 11 + b"V"


# --- Petter: the gate's two facts come from two tasks ---------------------------------------

def _agent_with_a_core_that_wedges(wedge_after_ms):
    """A real Agent and Node (no links) whose core's tick() raises after wedge_after_ms: the
    agent's ticker task dies while the event loop - and every other task - runs on."""
    from hanode import aio
    from hanode.agent import Agent
    from hanode.core.config import parse
    from hanode.core.node import Node
    cfg = parse("keepalive 100ms\ndeadtime 500ms\ninitdead 10\nserial /dev/ttyS0\nnode node1 node2\n"
                "auto_failback on\n", "auth 1\n1 sha1 secret\n", "node1 webapp\n", me="node1")
    node = Node(cfg, me="node1", generation=1, links=["/dev/ttyS0"])
    real_tick, t0 = node.tick, aio.ticks_ms()

    def tick(now):
        if now - t0 > wedge_after_ms:
            raise RuntimeError("core wedged")
        return real_tick(now)
    node.tick = tick

    class NoRunner:
        pass
    return Agent(node, [], NoRunner(), lambda level, text: None)


def _petting(tmp_path, scenario, run_s, every_ms=50, max_age_ms=300, pulse=None, home=None):
    """Run a real agent and a Petter on a regular-file watchdog for run_s; (pet times, log, petter).
    ``pulse``: a started hanode.pulse loop that runs the agent's ticker and the petter's timer, as
    in the daemon; ``home``: the asyncio loop's (check-in interval, max age) in ms then."""
    from hanode import aio
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    log = LogRecorder()
    w = Watchdog(str(dev), 5, log=log)
    w.open()
    pets = []
    real_pet = w.pet

    def pet():
        pets.append(aio.ticks_ms())
        return real_pet()
    w.pet = pet
    gate = HealthGate(max_lateness_ms=200, max_age_ms=max_age_ms, need_uart=False)
    petter = wd.Petter(gate, w, None, every_ms=every_ms, clock=aio.ticks_ms, uart_ok=lambda: True, log=log)
    if home is not None:
        petter.home_check_ms, petter.home_max_age_ms = home

    async def main():
        agent = scenario()
        agent.hooks = type("Hooks", (), {"on_tick": staticmethod(petter.core_ticked)})()
        if pulse is not None:
            agent.pulse, agent.lock = pulse, pulse.guard
        run = asyncio.ensure_future(agent.run())
        pet_task = asyncio.ensure_future(petter.run(pulse))
        t0 = aio.ticks_ms()
        await asyncio.sleep(run_s)
        pet_task.cancel()
        run.cancel()
        await asyncio.gather(pet_task, run, return_exceptions=True)
        return t0

    t0 = asyncio.run(main())
    w.close_clean()
    return [t - t0 for t in pets], log, petter


def test_petter_stops_when_the_core_stops_ticking_while_the_loop_runs(tmp_path):
    """The core's tick() dies at 500 ms; the loop and the petting task run on. Petting stops once
    the tick is older than max_age (300 ms): by 500 + 300 + one round, and never resumes."""
    pets, log, _ = _petting(tmp_path, lambda: _agent_with_a_core_that_wedges(500), 1.5)
    assert len([t for t in pets if t < 500]) >= 5, pets          # healthy: about every 50 ms
    assert pets and max(pets) <= 500 + 300 + 50 + 30, pets       # then silence for good
    errors = [t for lvl, t in log.lines if lvl == "error"]
    assert len(errors) == 1 and "not petting the watchdog: core tick not run for" in errors[0], errors


def test_petter_refuses_the_first_pet_after_the_loop_was_blocked(tmp_path):
    """The core ticks fine, but the event loop is blocked for 400 ms (a synchronous call): the
    first wake-up after it is 'late' (max 200 ms) and is not a pet; petting then resumes."""
    def scenario():
        agent = _agent_with_a_core_that_wedges(10 ** 9)
        loop = asyncio.get_event_loop()
        loop.call_later(0.3, time.sleep, 0.4)
        return agent
    pets, log, _ = _petting(tmp_path, scenario, 1.2)
    assert any(t > 800 for t in pets), pets                      # resumed after the block
    errors = [t for lvl, t in log.lines if lvl == "error"]
    assert len(errors) == 1 and "not petting the watchdog: agent loop late by" in errors[0], errors
    gap = max(b - a for a, b in zip(pets, pets[1:]))
    assert gap >= 400 + 50, pets                                 # no pet in the blocked window or just after


def test_an_idle_agents_pets_ride_on_its_ticks(tmp_path):
    """The daemon's every_ms is the keepalive: each tick is a petting round, and the petter's own
    timer never fires while the ticks come (no wake-up of its own); the first pet waits an interval."""
    pets, log, petter = _petting(tmp_path, lambda: _agent_with_a_core_that_wedges(10 ** 9), 1.05,
                                 every_ms=100, max_age_ms=500)
    assert pets and min(pets) >= 50, pets
    assert 8 <= len(pets) <= 12, pets                             # one a keepalive
    assert petter.fallback_rounds <= 1, petter.fallback_rounds    # (one if the machine stalled a tick)


def test_health_gate_requires_the_asyncio_loop_once_it_is_watched():
    g = HealthGate(max_lateness_ms=100, max_age_ms=500, need_uart=False)
    g.note_tick(0)
    g.note_loop(0, 0)
    assert g.healthy(0) == (True, "ok")   # not watched: a single loop reports through note_loop
    g.home_max_age_ms = 300
    assert g.healthy(0) == (False, "resource loop (asyncio) not run for ever ms (max 300 ms)")
    g.note_home(0)
    g.note_tick(400)
    g.note_loop(400, 0)
    assert g.healthy(300) == (True, "ok")
    assert g.healthy(400) == (False, "resource loop (asyncio) not run for 400 ms (max 300 ms)")


def test_with_a_heartbeat_loop_pets_ride_on_its_ticks_while_asyncio_sleeps(tmp_path):
    """The daemon's layout: the ticker and the petter's timer on the heartbeat's loop (a thread),
    the asyncio loop only checking in with the gate: the pets come one a keepalive."""
    from hanode.pulse import PulseLoop
    pulse = PulseLoop()
    pulse.start()
    try:
        pets, log, petter = _petting(tmp_path, lambda: _agent_with_a_core_that_wedges(10 ** 9), 1.05,
                                     every_ms=100, max_age_ms=500, pulse=pulse)
    finally:
        pulse.stop()
    assert 8 <= len(pets) <= 12, pets
    assert petter.fallback_rounds <= 1 and pulse.errors == 0
    assert [t for lvl, t in log.lines if lvl == "error"] == []


def test_with_a_heartbeat_loop_a_hung_asyncio_loop_stops_the_pets(tmp_path):
    """The heartbeat's thread ticks on while the asyncio loop - the resource side: scripts,
    netlink, the control socket - is blocked for 800 ms: the pets stop once it has not checked in
    for home_max_age_ms (300 ms here), and come back after it does again."""
    from hanode.pulse import PulseLoop
    pulse = PulseLoop()
    pulse.start()

    def scenario():
        asyncio.get_event_loop().call_later(0.4, time.sleep, 0.8)
        return _agent_with_a_core_that_wedges(10 ** 9)
    try:
        pets, log, _ = _petting(tmp_path, scenario, 1.8, pulse=pulse, home=(50, 300))
    finally:
        pulse.stop()
    blocked = [t for t in pets if 400 + 300 + 60 < t < 1200]
    assert blocked == [], pets                          # no pet once the check-in is 300 ms old
    assert any(t < 400 for t in pets) and any(t > 1300 for t in pets), pets
    errors = [t for lvl, t in log.lines if lvl == "error"]
    assert errors and "resource loop (asyncio) not run for" in errors[0], errors


def test_petter_says_nothing_when_there_is_nothing_to_pet():
    """No watchdog device (or it failed) and no systemd WatchdogSec: an unhealthy gate is no news."""
    log = LogRecorder()
    gate = HealthGate(max_lateness_ms=100, max_age_ms=300)
    petter = wd.Petter(gate, None, None, every_ms=100, clock=lambda: 0, uart_ok=lambda: False, log=log)
    assert petter.targets() == []
    assert petter.pet_now(5000, 4000) is False
    assert log.lines == []


# --- a real watchdog device in a VM -----------------------------------------------------------
# This kernel cannot load softdog, but QEMU (TCG unless HANODE_QEMU_ACCEL=kvm, as tests/image:
# nested KVM hangs here) emulates an Intel 6300ESB watchdog and the
# Debian kernel that tools/setup --test installs has its driver. The VM gets a tiny initramfs
# (static busybox, the driver modules) and this machine's own root over 9p, read-only, so the
# guest runs the same Python and the same hanode.watchdog. QEMU's watchdog action is "debug":
# it prints "watchdog: timer fired" instead of resetting, so one boot shows both outcomes.

VM_SCENARIO = textwrap.dedent("""
    import json, os, signal, sys, time
    from hanode.watchdog import Watchdog
    def mark(name):
        print("MARK", name, flush=True)
    logs = []
    w = Watchdog("/dev/watchdog", 2, required=True, log=lambda lvl, t: logs.append("%s: %s" % (lvl, t)))
    w.open()
    for _ in range(6):                 # 3 s of petting, 1.5 times the timeout
        w.pet()
        time.sleep(0.5)
    info = {"has_ioctls": w.has_ioctls, "granted": w.granted_timeout_s, "identity": w.identity,
            "nowayout": w.nowayout, "pets": w.pets, "left": w.time_left_s(), "logs": logs}
    w.close_clean()
    print("INFO " + json.dumps(info), flush=True)
    mark("clean-closed")
    time.sleep(3)                      # 1.5 times the timeout: a clean close must not fire
    mark("after-clean")
    # A forked agent (cheaper than a second interpreter over 9p) reopens, pets, and is SIGKILLed.
    r, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        w2 = Watchdog("/dev/watchdog", 2, required=True, log=lambda lvl, t: None)
        w2.open()
        os.write(wr, b"petting")
        while True:
            w2.pet()
            time.sleep(0.2)
    assert os.read(r, 7) == b"petting"
    time.sleep(1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    mark("killed")
    time.sleep(3)
    mark("after-kill")
""")

VM_INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules.list); do $B insmod /mods/$m || echo "VMERROR insmod $m"; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host || echo "VMERROR 9p mount"
$B mount -t devtmpfs dev /host/dev
$B mount -t proc proc /host/proc
$B mount -t sysfs sys /host/sys
# scratch space on /mnt, not over /tmp: the checkout under test may live in the host's /tmp
$B mount -t tmpfs tmp /host/mnt
$B cp /scenario.py /host/mnt/scenario.py
echo "VMREADY"
PYTHONPATH=@REPO@ PYTHONDONTWRITEBYTECODE=1 HOME=/mnt TMPDIR=/mnt PATH=/usr/bin:/bin \\
    $B chroot /host @PYTHON@ -S /mnt/scenario.py || echo "VMERROR scenario exit $?"
echo "VMDONE"
$B poweroff -f
"""


def _newc(entries):
    """A cpio 'newc' archive: [(name, mode, data_or_None)] (None: a directory)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        data = data or b""
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0))
        out += hdr.encode() + nameb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _vm_kernel():
    qemu = shutil.which("qemu-system-x86_64")
    busybox = shutil.which("busybox")
    assert qemu and busybox and shutil.which("modprobe"), \
        "qemu-system-x86_64, busybox and modprobe are needed: run tools/setup --test"
    for kernel in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        ver = kernel[len("/boot/vmlinuz-"):]
        if glob.glob("/lib/modules/%s/kernel/drivers/watchdog/i6300esb.ko*" % ver):
            return qemu, busybox, kernel, ver
    raise AssertionError("no /boot/vmlinuz-* with the i6300esb module: run tools/setup --test "
                         "(it installs linux-image-amd64)")


def test_real_i6300esb_watchdog_in_a_vm(tmp_path):
    qemu, busybox, kernel, ver = _vm_kernel()
    modules = []
    for name in ("9p", "9pnet_virtio", "virtio_pci", "i6300esb"):
        r = subprocess.run(["modprobe", "--show-depends", "-S", ver, name], capture_output=True, text=True,
                           check=True)
        for line in r.stdout.splitlines():
            path = line.split()[1]
            if line.startswith("insmod ") and path not in modules:
                modules.append(path)
    def module_bytes(path):
        # busybox insmod takes plain .ko files; Debian 13 ships them xz-compressed
        data = open(path, "rb").read()
        if path.endswith(".xz"):
            return lzma.decompress(data)
        assert not path.endswith((".zst", ".gz")), "cannot unpack module %s for busybox insmod" % path
        return data

    def module_name(path):
        return os.path.basename(path)[:-3] if path.endswith(".xz") else os.path.basename(path)
    entries = [("bin", 0o40755, None), ("mods", 0o40755, None), ("proc", 0o40755, None),
               ("sys", 0o40755, None), ("dev", 0o40755, None), ("host", 0o40755, None),
               ("bin/busybox", 0o100755, open(busybox, "rb").read()),
               ("init", 0o100755, VM_INIT.replace("@REPO@", REPO).replace("@PYTHON@", sys.executable).encode()),
               ("scenario.py", 0o100644, VM_SCENARIO.encode()),
               ("modules.list", 0o100644, "\n".join(module_name(p) for p in modules).encode())]
    entries += [("mods/" + module_name(p), 0o100644, module_bytes(p)) for p in modules]
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(_newc(entries))

    argv = [qemu, "-M", "pc", "-accel", os.environ.get("HANODE_QEMU_ACCEL", "tcg"), "-m", "512", "-smp", "1",
            "-nodefaults", "-no-reboot",
            "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-kernel", kernel, "-initrd", str(initrd),
            "-append", "console=ttyS0 quiet panic=-1 rdinit=/init",
            "-device", "i6300esb", "-action", "watchdog=debug",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    lines = []   # (arrival time, text)
    buf = b""
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not r:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append((time.monotonic(), line.decode("utf-8", "replace").strip()))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    console = "\n".join(t for _, t in lines)

    def when(text):
        hits = [t for t, line in lines if line.endswith(text)]
        assert hits, "%r not on the VM console:\n%s" % (text, console)
        return hits[0]

    assert "VMERROR" not in console and "Traceback" not in console, console
    when("VMDONE")
    info = json.loads([line for _, line in lines if line.startswith("INFO ")][0][5:])
    assert info["has_ioctls"] is True, info
    assert info["granted"] == 2, "WDIOC_SETTIMEOUT/GETTIMEOUT round trip: %s" % info
    assert info["identity"], info
    assert info["nowayout"] is False, "read from /sys/class/watchdog/watchdog0/nowayout: %s" % info
    assert info["pets"] == 6 and (info["left"] is None or 0 <= info["left"] <= 2), info
    assert any("Using watchdog device: /dev/watchdog (%s), timeout 2 s" % info["identity"] in entry
               for entry in info["logs"]), info["logs"]

    fired = [t for t, line in lines if line.endswith("watchdog: timer fired")]
    closed, after_clean, killed = when("MARK clean-closed"), when("MARK after-clean"), when("MARK killed")
    assert not [t for t in fired if t < after_clean], \
        "the watchdog fired while it was petted with WDIOC_KEEPALIVE or after the magic close:\n" + console
    after_kill = [t - killed for t in fired if t > killed]
    assert after_kill, "kill -9 must leave the watchdog armed, and it must fire:\n" + console
    # last pet at most 0.2 s before the kill, timeout 2 s: fires 1.8-2 s after the kill
    assert 1.0 <= after_kill[0] <= 3.5, after_kill
    print("\ni6300esb in a VM: timeout granted %s s, fired %.2f s after kill -9, none in %.1f s after the "
          "magic close" % (info["granted"], after_kill[0], after_clean - closed))


HANDOVER_CHILD = textwrap.dedent("""
    import os, sys
    from hanode.watchdog import Watchdog
    path, stage = sys.argv[1], sys.argv[2]
    log = lambda level, text: print(level, text, flush=True)
    w = Watchdog(path, 31, log=log)
    assert w.open()
    w.pet()
    if stage == "first":          # hanode restart: hand the device over, then re-execute
        w.hand_over(60)
        w.close_clean()
        os.execv(sys.executable, [sys.executable, "-c", sys.argv[3], path, "second", sys.argv[3]])
    if stage == "second":
        w.pet()
        w.close_clean()
""")


def test_a_restart_hands_the_armed_watchdog_to_the_next_agent(tmp_path):
    """Real processes: the first agent pets, hands the fd over and re-executes itself; the next one
    takes the same open fd (no 'V' in between: armed all along), pets it and closes it cleanly."""
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    r = subprocess.run([sys.executable, "-c", HANDOVER_CHILD, str(dev), "first", HANDOVER_CHILD],
                       env=child_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert dev.read_bytes() == b"\0\0\0V", dev.read_bytes()   # pet; hand-over; pet, pet; magic close
    assert "stays armed for the next agent" in r.stdout and "left armed for the next agent" in r.stdout
    assert "handed over by the previous agent: armed all along" in r.stdout
    assert r.stdout.count("closed cleanly") == 1
    assert wd.HANDOVER_ENV not in os.environ


def test_a_handed_over_watchdog_the_new_configuration_drops_is_disarmed(tmp_path):
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    fd = os.open(str(dev), os.O_WRONLY)
    log = LogRecorder()
    os.environ[wd.HANDOVER_ENV] = str(fd)
    try:
        wd.release_handed_over(log)
    finally:
        os.environ.pop(wd.HANDOVER_ENV, None)
    assert dev.read_bytes() == b"V" and "closed cleanly" in log.text("info")
    with pytest.raises(OSError):
        os.fstat(fd)
