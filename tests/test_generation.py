"""hanode/generation.py: the boot generation that replay protection rests on.

Theory of operation
-------------------
Replay protection is only as good as the promise that a generation is never
used twice.  These tests check that promise on a real file system: the number
goes up at every start, it is replaced atomically (temp file, fsync, rename,
fsync of the directory - observed by wrapping the real os calls, which still
run), a failure at any step leaves the old value intact and refuses to start,
and a state file that cannot be read back is reported clearly and never
answered with a number that could already have been used.  The last part also
runs the real ``hanode run`` so the user-visible message is checked where the
user sees it.
"""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from hanode import generation
from hanode.generation import (GENERATION, MAX_GENERATION, PEER_GENERATION, StateError, next_generation,
                          peer_generation, save_peer_generation, write_atomically)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, level, text):
        self.lines.append((level, text))

    def at(self, level):
        return [t for lv, t in self.lines if lv == level]


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ counting up
def test_generation_counts_up_from_one_and_is_persisted(tmp_path):
    log = Log()
    d = str(tmp_path / "state")          # created on first use
    got = [next_generation(d, log) for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    assert read(os.path.join(d, GENERATION)) == b"5\n"
    assert stat.S_IMODE(os.stat(os.path.join(d, GENERATION)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert sorted(os.listdir(d)) == [GENERATION, GENERATION + ".bak"]   # no temp file left behind
    assert read(os.path.join(d, GENERATION + ".bak")) == b"5\n"
    assert log.lines == []


def test_generation_continues_from_an_existing_file(tmp_path):
    (tmp_path / GENERATION).write_text("41\n")
    assert next_generation(str(tmp_path), Log()) == 42
    assert (tmp_path / GENERATION).read_text() == "42\n"


def test_leftover_temp_file_of_a_crashed_start_is_ignored(tmp_path):
    # a power cut between the temp write and the rename leaves generation.tmp.<pid>
    (tmp_path / GENERATION).write_text("7\n")
    (tmp_path / (GENERATION + ".tmp.99999")).write_text("garbage that was never renamed")
    assert next_generation(str(tmp_path), Log()) == 8


def test_exhausted_generation_refuses_to_start(tmp_path):
    (tmp_path / GENERATION).write_text("%d\n" % MAX_GENERATION)
    with pytest.raises(StateError, match="exhausted"):
        next_generation(str(tmp_path), Log())
    assert (tmp_path / GENERATION).read_text() == "%d\n" % MAX_GENERATION


# ------------------------------------------------------------------ atomicity
class Recorder:
    """Wraps os.open/write/fsync/rename/close: records each call, then makes it for real."""

    def __init__(self, monkeypatch, fail=None):
        self.calls = []
        self.fds = {}
        self.fail = fail or {}
        real = {name: getattr(os, name) for name in ("open", "write", "fsync", "rename", "close")}

        def make(name):
            def wrapper(*args, **kwargs):
                what = self.describe(name, args)
                if name in self.fail:
                    self.calls.append(what + ("FAILED",))
                    raise OSError(self.fail[name], os.strerror(self.fail[name]))
                result = real[name](*args, **kwargs)
                if name == "open":
                    self.fds[result] = args[0]
                    what = what + (result,)
                self.calls.append(what)
                return result
            return wrapper

        for name in real:
            monkeypatch.setattr(generation.os, name, make(name))

    def describe(self, name, args):
        if name == "open":
            return ("open", os.path.basename(str(args[0])))
        if name in ("write", "fsync", "close"):
            return (name, os.path.basename(str(self.fds.get(args[0], args[0]))))
        if name == "rename":
            return ("rename", os.path.basename(str(args[0])), os.path.basename(str(args[1])))
        return (name,)


def test_write_is_temp_fsync_rename_then_directory_fsync(tmp_path, monkeypatch):
    (tmp_path / GENERATION).write_text("3\n")
    rec = Recorder(monkeypatch)
    assert next_generation(str(tmp_path), Log()) == 4
    monkeypatch.undo()
    names = [c[:2] if c[0] != "rename" else c for c in rec.calls]
    tmp = "%s.tmp.%d" % (GENERATION, os.getpid())
    seq = [c for c in names if c[0] in ("write", "fsync", "rename")]
    bak_tmp = "%s.bak.tmp.%d" % (GENERATION, os.getpid())
    directory = os.path.basename(str(tmp_path))
    # the generation first (what a restart reads), then its backup, each durable before the next
    assert seq == [("write", tmp), ("fsync", tmp), ("rename", tmp, GENERATION), ("fsync", directory),
                   ("write", bak_tmp), ("fsync", bak_tmp), ("rename", bak_tmp, GENERATION + ".bak"),
                   ("fsync", directory)], rec.calls
    assert (tmp_path / GENERATION).read_text() == "4\n"


@pytest.mark.parametrize("failing", ["fsync", "rename", "write"])
def test_a_failed_step_keeps_the_old_value_and_refuses_to_start(tmp_path, monkeypatch, failing):
    import errno
    (tmp_path / GENERATION).write_text("10\n")
    Recorder(monkeypatch, fail={failing: errno.EIO})
    with pytest.raises(StateError) as err:
        next_generation(str(tmp_path), Log())
    monkeypatch.undo()
    assert "refusing to start" in str(err.value) and str(tmp_path) in str(err.value)
    assert (tmp_path / GENERATION).read_text() == "10\n"     # never torn, never half-updated
    # the refused start used no generation, so the next one may take 11
    assert next_generation(str(tmp_path), Log()) == 11


def test_write_atomically_replaces_and_never_shows_a_partial_file(tmp_path):
    path = str(tmp_path / "x")
    write_atomically(path, "1\n")
    inode_before = os.stat(path).st_ino
    write_atomically(path, "2\n")
    assert read(path) == b"2\n"
    assert os.stat(path).st_ino != inode_before      # a new file renamed over, not rewritten in place


def test_state_dir_that_cannot_be_created_refuses_to_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot persist the boot generation"):
        next_generation(str(blocker / "state"), Log())


def _ro_bind(src, dst):
    os.makedirs(dst, exist_ok=True)
    subprocess.run(["mount", "--bind", src, dst], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", dst], check=True, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind-mount a read-only state directory")
def test_read_only_state_dir_refuses_to_start_and_keeps_the_value(tmp_path):
    src = tmp_path / "rw"
    src.mkdir()
    (src / GENERATION).write_text("5\n")
    ro = str(tmp_path / "ro")
    _ro_bind(str(src), ro)
    try:
        with pytest.raises(StateError) as err:
            next_generation(ro, Log())
        assert "Read-only file system" in str(err.value), err.value
        assert read(os.path.join(ro, GENERATION)) == b"5\n"
    finally:
        subprocess.run(["umount", ro], capture_output=True)


# ------------------------------------------------------------------ corruption
CORRUPT = {
    "empty": b"",
    "text": b"hello\n",
    "trailing junk": b"12abc\n",
    "negative": b"-5\n",
    "too large": b"%d\n" % (MAX_GENERATION + 1),
    "zeros (torn sector)": b"\x00" * 16,
    "binary": b"\xff\xfe\x80garbage",
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_generation_file_is_reported_and_the_clock_takes_over(tmp_path, name):
    path = tmp_path / GENERATION
    path.write_bytes(CORRUPT[name])
    log = Log()
    clock = 1_790_000_000.0
    got = next_generation(str(tmp_path), log, clock=lambda: clock)
    assert got == int(clock) + 1
    assert path.read_text() == "%d\n" % got               # and it is sane from now on
    errors = log.at("error")
    assert len(errors) == 1, log.lines
    assert str(path) in errors[0] and "corrupt" in errors[0] and "not reusing" in errors[0]
    assert next_generation(str(tmp_path), Log()) == got + 1


def test_unreadable_generation_file_is_reported(tmp_path):
    (tmp_path / GENERATION).mkdir()          # EISDIR: cannot be read, cannot be replaced by rename
    log = Log()
    with pytest.raises(StateError):
        next_generation(str(tmp_path), log, clock=lambda: 1_790_000_000.0)
    assert any("cannot read" in t and GENERATION in t for t in log.at("error")), log.lines


def test_corrupt_file_never_reuses_a_generation_even_with_a_wrong_clock(tmp_path):
    d = str(tmp_path)
    for _ in range(100):
        next_generation(d, Log())
    (tmp_path / GENERATION).write_bytes(b"\x00" * 8)      # torn by a power cut
    got = next_generation(d, Log(), clock=lambda: 50.0)   # no RTC: seconds since boot at 1970
    assert got > 100, "generation %d was already used" % got


# ------------------------------------------------------------------ the peer's generation
def test_peer_generation_round_trip_and_defaults(tmp_path):
    log = Log()
    d = str(tmp_path)
    assert peer_generation(d, log) == 0
    assert save_peer_generation(d, 1234, log) == (True, "")
    assert peer_generation(d, log) == 1234
    assert read(os.path.join(d, PEER_GENERATION)) == b"1234\n"
    assert log.lines == []


@pytest.mark.parametrize("content", [b"x\n", b"", b"-1\n"])
def test_corrupt_peer_generation_warns_and_starts_from_zero(tmp_path, content):
    (tmp_path / PEER_GENERATION).write_bytes(content)
    log = Log()
    assert peer_generation(str(tmp_path), log) == 0
    warnings = log.at("warning")
    assert len(warnings) == 1 and PEER_GENERATION in warnings[0] and "floor starts from 0" in warnings[0]


def test_peer_generation_that_cannot_be_saved_is_a_warning_not_a_crash(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = Log()
    ok, why = save_peer_generation(str(blocker / "state"), 7, log)
    assert not ok and why
    assert len(log.at("warning")) == 1 and "peer's generation" in log.at("warning")[0]


# ------------------------------------------------------------------ the daemon, for real
HA_CF = """keepalive 100ms
warntime 300ms
deadtime 500ms
initdead 10
baud 19200
serial {tty}
auto_failback on
node node1
node node2
logfile {dir}/ha-log
state_dir {state}
control_socket {dir}/control.sock
resource_dir {dir}/ha.d/resource.d
"""


def make_config_dir(base, tty):
    ha = os.path.join(base, "ha.d")
    os.makedirs(os.path.join(ha, "resource.d"), exist_ok=True)
    with open(os.path.join(ha, "ha.cf"), "w") as f:
        f.write(HA_CF.format(tty=tty, dir=base, state=os.path.join(base, "state")))
    with open(os.path.join(ha, "authkeys"), "w") as f:
        f.write("auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n")
    os.chmod(os.path.join(ha, "authkeys"), 0o600)
    script = os.path.join(ha, "resource.d", "noop")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o755)
    with open(os.path.join(ha, "haresources"), "w") as f:
        f.write("node1 noop\n")
    return ha


def run_daemon(base, ha, timeout=30.0):
    """Start `hanode run` for node1, wait for READY (or exit); return (proc, stderr text so far)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("NOTIFY_SOCKET", None)
    err_path = os.path.join(base, "stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "hanode", "run", "--config-dir", ha, "--node", "node1",
                                 "--lock-dir", base, "--no-realtime"], stdout=err, stderr=subprocess.STDOUT,
                                env=env)
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with open(err_path, errors="replace") as f:
            text = f.read()
        if "READY" in text or proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc, text


def stop_daemon(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def test_daemon_generation_survives_restarts_and_a_corrupt_file_is_said_clearly(tmp_path):
    master, slave = os.openpty()
    try:
        base = str(tmp_path)
        ha = make_config_dir(base, os.ttyname(slave))
        gens = []
        for _ in range(2):
            proc, text = run_daemon(base, ha)
            assert "READY: generation" in text, text
            gens.append(int(text.split("READY: generation ")[1].split(",")[0]))
            assert stop_daemon(proc) == 0
        assert gens[1] == gens[0] + 1
        with open(os.path.join(base, "state", GENERATION), "wb") as f:
            f.write(b"garbage\n")
        proc, text = run_daemon(base, ha)
        try:
            assert "READY: generation" in text, text
            gen = int(text.split("READY: generation ")[1].split(",")[0])
            assert gen > gens[1] + 1          # the backup's value plus a margin of one
            assert "is corrupt" in text and "not reusing any generation" in text and "backup" in text
            assert "Traceback" not in text
        finally:
            assert stop_daemon(proc) == 0
    finally:
        os.close(master)
        os.close(slave)


def test_daemon_refuses_to_start_when_the_generation_cannot_be_persisted(tmp_path):
    base = str(tmp_path)
    master, slave = os.openpty()   # the port opens first: a start refused a port burns no generation
    ha = make_config_dir(base, os.ttyname(slave))
    blocker = tmp_path / "state"
    blocker.write_text("")       # state_dir is a regular file: nothing can be created under it
    with open(os.path.join(ha, "ha.cf"), "a") as f:
        f.write("state_dir %s\n" % (blocker / "sub"))
    try:
        proc, text = run_daemon(base, ha)
        assert proc.wait(20) == 1, text
    finally:
        os.close(slave)
        os.close(master)
    assert "cannot persist the boot generation" in text and "refusing to start" in text
    assert "Traceback" not in text


def test_both_files_corrupt_and_no_clock_refuses_to_start_with_the_reason(tmp_path):
    d = str(tmp_path)
    for _ in range(3):
        next_generation(d, Log())
    for name in (GENERATION, GENERATION + ".bak"):
        (tmp_path / name).write_bytes(b"\x00" * 8)
    with pytest.raises(StateError) as e:
        next_generation(d, Log(), clock=lambda: 50.0)
    assert "clock is not set" in str(e.value) and GENERATION in str(e.value)


def test_save_generation_writes_the_file_and_its_backup(tmp_path):
    """A rejoin's new generation (issue 13 finding 1) is persisted like a start's."""
    from hanode.generation import save_generation
    logs = []
    assert save_generation(str(tmp_path), 65538, lambda *a: logs.append(a)) == (True, "")
    assert next_generation(str(tmp_path), lambda *a: logs.append(a)) == 65539
    assert open(os.path.join(str(tmp_path), "generation.bak")).read().strip() == "65539"
    (tmp_path / "plain").write_text("not a directory")
    ok, why = save_generation(str(tmp_path / "plain" / "state"), 7, lambda *a: None)   # even as root
    assert not ok and "cannot write" in why, why
    assert save_generation(str(tmp_path), 0, lambda *a: None)[0] is False
