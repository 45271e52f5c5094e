"""hanode/daemon.py: the composition root stays small, and what it relies on from the config holds.

The daemon wires argv -> config -> adapters -> agent; every OS concern lives in an adapter
module (logs, realtime, resources, watchdog, notify, control, generation, ...). The shape test
below fails when logic creeps back into it; the tests at the end run the daemon for real, as do
tests/adapters/test_generation.py, tests/adapters/test_security.py and tests/integration/.
"""
import ast
import os

import pytest
from hypothesis import given, settings, strategies as st

from hanode.core.config import ConfigError, parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON = os.path.join(REPO, "hanode", "daemon.py")
MAX_LINES = 300
MAX_FUNCTION_LINES = 60


def test_daemon_is_only_the_composition_root():
    with open(DAEMON) as f:
        text = f.read()
    lines = text.count("\n")
    assert lines <= MAX_LINES, "hanode/daemon.py has %d lines (at most %d): move logic to an adapter" % (
        lines, MAX_LINES)
    long = ["%s (line %d): %d lines" % (node.name, node.lineno, node.end_lineno - node.lineno + 1)
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "functions over %d lines in hanode/daemon.py: %s" % (MAX_FUNCTION_LINES, ", ".join(long))


AK = "auth 1\n1 sha1 secret\n"
HR = "node1 192.0.2.100 webapp\n"


@settings(max_examples=200, deadline=None)
@given(deadtime_ms=st.integers(1, 200000), keepalive_ms=st.integers(1, 100000),
       watchdog=st.booleans(), timeout_s=st.one_of(st.none(), st.integers(0, 70000)))
def test_every_parsed_config_has_a_watchdog_timeout(deadtime_ms, keepalive_ms, watchdog, timeout_s):
    """The daemon opens the watchdog with cfg.watchdog_timeout_s and has no fallback of its own:
    every config that parses (the only kind `hanode run` gets: configdir.load raises otherwise)
    has one of at least 1 s - Heartbeat's deadtime + 10 ms rounded up, unless ha.cf sets it."""
    ha = ("keepalive %dms\ndeadtime %dms\ninitdead 200\nserial /dev/ttyS0\nnode node1 node2\n"
          "auto_failback on\n" % (keepalive_ms, deadtime_ms))
    if watchdog:
        ha += "watchdog /dev/watchdog\n"
    if timeout_s is not None:
        ha += "watchdog_timeout %d\n" % timeout_s
    try:
        cfg = parse(ha, AK, HR, me="node1")
    except ConfigError:
        return
    assert isinstance(cfg.watchdog_timeout_s, int) and cfg.watchdog_timeout_s >= 1
    if timeout_s is None:
        assert cfg.watchdog_timeout_s == -(-(deadtime_ms + 10) // 1000)
    else:
        assert cfg.watchdog_timeout_s == timeout_s


# ------------------------------------------------------------------ the daemon, for real
def _frozen_run(tmp_path, extra_ha_cf=""):
    """`hanode run` (node1, no peer), SIGSTOPped for 1 s once READY, then stopped; its log."""
    import signal
    import time
    from tests.adapters.test_generation import make_config_dir, run_daemon, stop_daemon
    master, slave = os.openpty()
    try:
        base = str(tmp_path)
        ha = make_config_dir(base, os.ttyname(slave))
        with open(os.path.join(ha, "ha.cf"), "a") as f:
            f.write(extra_ha_cf)
        proc, text = run_daemon(base, ha)
        try:
            assert "READY" in text, text
            time.sleep(0.5)
            proc.send_signal(signal.SIGSTOP)
            time.sleep(1.0)
            proc.send_signal(signal.SIGCONT)
            time.sleep(1.0)
        finally:
            assert stop_daemon(proc) == 0
        with open(os.path.join(base, "ha-log")) as f:
            return f.read()
    finally:
        os.close(master)
        os.close(slave)


def test_no_watchdog_no_complaint_about_not_petting_it(tmp_path):
    """Issue 13, finding 12: without a watchdog (and without systemd's), a late loop is not an
    ERROR about a watchdog nobody configured; with one (a regular file standing in), it is."""
    text = _frozen_run(tmp_path / "none")
    assert "not petting the watchdog" not in text, text
    device = tmp_path / "watchdog-stand-in"
    device.write_bytes(b"")
    text = _frozen_run(tmp_path / "file", "watchdog %s\n" % device)
    assert "ERROR: not petting the watchdog: agent loop late by" in text, text
    assert device.read_bytes().endswith(b"V") and device.read_bytes().count(b"\0") >= 5


def test_watchdog_required_refuses_to_start_without_the_device(tmp_path):
    """Issue 13, finding 12: a configured watchdog that is missing is a warning (the box runs
    without a self-fence) unless `watchdog_required on`, which makes it an error: exit 1, why."""
    from tests.adapters.test_generation import make_config_dir, run_daemon, stop_daemon
    master, slave = os.openpty()
    try:
        for required, expect_rc in (("off", 0), ("on", 1)):
            base = str(tmp_path / required)
            ha = make_config_dir(base, os.ttyname(slave))
            with open(os.path.join(ha, "ha.cf"), "a") as f:
                f.write("watchdog %s/no-such-watchdog\nwatchdog_required %s\n" % (base, required))
            proc, text = run_daemon(base, ha)
            if expect_rc == 0:
                assert "READY" in text and "continuing without a watchdog" in text, text
                assert stop_daemon(proc) == 0
            else:
                assert proc.wait(10) == 1, text
                assert ("CRITICAL: Cannot open watchdog device: %s/no-such-watchdog: no such device" % base) in text
                assert "watchdog_required is on: not starting without it" in text and "READY" not in text, text
    finally:
        os.close(master)
        os.close(slave)


def _cli_as(user, argv):
    """Run hanode's CLI (hanode.cli.main) in a forked child that became ``user``; (exit code, stderr)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: become the user, run the command, never return into pytest
        code = 99
        try:
            os.dup2(w, 2)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            import sys
            from hanode.cli import main
            sys.stderr = os.fdopen(2, "w", buffering=1)
            code = main(argv)
        except BaseException:   # say why in the stderr the parent reads: _exit skips the traceback
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the daemon and to become another user")
def test_status_says_the_daemons_refusal_instead_of_a_keyerror():
    """Issue 13, finding 12: `hanode status` raised KeyError: 'rscstatus' when the daemon answered
    {"ok": false, ...}. A real daemon refuses a user other than root (SO_PEERCRED) even when its
    socket was opened up by mistake: the CLI, run as nobody, must say that answer and exit 4."""
    import pwd
    import subprocess
    import sys
    from tests.adapters.test_generation import make_config_dir, run_daemon, stop_daemon
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="hanode-status-")   # pytest's tmp_path is not traversable by nobody
    os.chmod(base, 0o711)
    master, slave = os.openpty()
    proc = None
    try:
        ha = make_config_dir(base, os.ttyname(slave))
        proc, text = run_daemon(base, ha)
        assert "READY" in text, text
        path = os.path.join(base, "control.sock")
        os.chmod(path, 0o666)
        rc, err = _cli_as(nobody, ["status", "--socket", path])
        refused = "hanode status: the daemon answered: permission denied: only root may control hanode\n"
        assert (rc, err) == (4, refused), err
        mine = subprocess.run([sys.executable, "-m", "hanode", "status", "--socket", path], capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
        assert mine.returncode == 0 and mine.stdout.startswith("node1 (generation "), mine
    finally:
        if proc is not None:
            stop_daemon(proc)
        os.close(master)
        os.close(slave)
        shutil.rmtree(base, ignore_errors=True)
