"""Tests for hanode.notify: a real AF_UNIX datagram socket plays systemd's notification socket
(path and abstract namespace), a real subprocess plays hanode, and the sender's PID is checked
with SO_PASSCRED as systemd does for NotifyAccess=main."""
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import uuid

import pytest

from hanode.notify import SystemdNotifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# hanode's side: report what the notifier decided, prove children do not inherit the variables,
# then send what the agent sends over a life: READY, STATUS, two watchdog pets, STOPPING.
AGENT = textwrap.dedent("""
    import json, os, subprocess, sys
    from hanode.notify import SystemdNotifier
    logs = []
    n = SystemdNotifier(log=lambda lvl, text: logs.append((lvl, text)))
    child_env = subprocess.run(["env"], capture_output=True, text=True).stdout.split("\\n")
    results = [n.ready("node1: waiting for node2 (initdead 30 s)"),
               n.status("node1 holds 192.0.2.100 httpd \\u2192 active\\nsecond line"),
               n.watchdog(), n.watchdog(),
               n.extend_timeout(12.5),
               n.stopping("releasing resources")]
    print(json.dumps({
        "pid": os.getpid(), "mainpid": n.mainpid, "enabled": n.enabled,
        "watchdog_enabled": n.watchdog_enabled, "interval": n.watchdog_interval_s,
        "results": results, "logs": logs,
        "sdnotify_imported": "sdnotify" in sys.modules,
        "child_env": [l.split("=", 1)[0] for l in child_env if l],
    }))
""")


def run_agent(env_extra, set_watchdog_pid_to_self=False):
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra)
    argv = [sys.executable, "-c", AGENT]
    if set_watchdog_pid_to_self:
        # systemd sets WATCHDOG_PID to the PID it forked; exec keeps the PID, as under ExecStart=.
        argv = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"'] + argv
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET, checking sender credentials like PID 1 does."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.settimeout(0)

    def drain(self):
        """[(sender_pid, text)] in arrival order."""
        out = []
        ucred = struct.Struct("iII")
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(ucred.size))
            except BlockingIOError:
                return out
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = ucred.unpack(cdata[:ucred.size])[0]
            out.append((pid, data.decode("utf-8")))

    def close(self):
        self.sock.close()


@pytest.fixture
def path_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = FakeSystemd(path)
    try:
        yield path, s
    finally:
        s.close()


@pytest.fixture
def abstract_socket():
    name = "hanode-test-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
    s = FakeSystemd("\0" + name)
    try:
        yield "@" + name, s
    finally:
        s.close()


def check_lifecycle(address, fake):
    info = run_agent({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"}, set_watchdog_pid_to_self=True)
    msgs = fake.drain()
    pid = info["pid"]
    assert info["mainpid"] == pid and info["enabled"] and info["watchdog_enabled"]
    assert info["interval"] == 2.0, "half of WATCHDOG_USEC"
    assert info["results"] == [True] * 6 and info["logs"] == []
    assert all(sender == pid for sender, _ in msgs), "every message must come from the main PID"
    texts = [t for _, t in msgs]
    assert texts == [
        "READY=1\nMAINPID=%d\nSTATUS=node1: waiting for node2 (initdead 30 s)" % pid,
        "STATUS=node1 holds 192.0.2.100 httpd \u2192 active second line",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=12500000",
        "STOPPING=1\nSTATUS=releasing resources",
    ]
    # the order systemd relies on
    assert texts.index("WATCHDOG=1") > 0 and texts[0].startswith("READY=1")
    assert texts[-1].startswith("STOPPING=1")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        assert key not in info["child_env"], "resource scripts must not inherit %s" % key


def test_lifecycle_on_a_path_socket(path_socket):
    check_lifecycle(*path_socket)


def test_lifecycle_on_an_abstract_socket(abstract_socket):
    check_lifecycle(*abstract_socket)


def test_watchdog_for_another_pid_is_not_ours(path_socket):
    address, fake = path_socket
    info = run_agent({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    texts = [t for _, t in fake.drain()]
    assert not info["watchdog_enabled"] and info["interval"] is None
    assert info["results"][2:4] == [False, False]
    assert "WATCHDOG=1" not in texts
    assert texts[0].startswith("READY=1") and texts[-1].startswith("STOPPING=1")
    assert "WATCHDOG_USEC" not in info["child_env"]


def test_no_watchdog_usec_means_no_watchdog(path_socket):
    address, fake = path_socket
    info = run_agent({"NOTIFY_SOCKET": address})
    assert not info["watchdog_enabled"] and info["interval"] is None
    assert "WATCHDOG=1" not in [t for _, t in fake.drain()]


def test_without_notify_socket_everything_is_a_noop():
    info = run_agent({"WATCHDOG_USEC": "4000000"})
    assert info["enabled"] is False and info["watchdog_enabled"] is False
    assert info["results"] == [False] * 6
    assert info["sdnotify_imported"] is False, "sdnotify is imported only under systemd"
    assert info["logs"] == []


def test_vanished_socket_is_logged_once_and_never_raises(tmp_path):
    path = str(tmp_path / "gone.sock")
    fake = FakeSystemd(path)
    fake.close()
    os.unlink(path)
    info = run_agent({"NOTIFY_SOCKET": path})
    assert info["results"] == [False] * 6
    assert len(info["logs"]) == 1
    level, text = info["logs"][0]
    assert level == "warning" and path in text and "notifications disabled" in text


def test_watchdog_due_schedule():
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "10000000",
                                 "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval_s == 5.0
    assert n.watchdog_due(100.0)
    n._last_watchdog = 100.0
    assert not n.watchdog_due(104.9)
    assert n.watchdog_due(105.0)
    off = SystemdNotifier(environ={})
    assert not off.watchdog_due(100.0)


def test_malformed_watchdog_usec_is_a_warning():
    logs = []
    n = SystemdNotifier(environ={"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "ten"},
                        log=lambda lvl, t: logs.append((lvl, t)))
    assert not n.watchdog_enabled
    assert logs and logs[0][0] == "warning" and "WATCHDOG_USEC" in logs[0][1]


def test_environment_is_cleared_only_when_asked():
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}
    SystemdNotifier(environ=env, unset_environment=False)
    assert "NOTIFY_SOCKET" in env
    SystemdNotifier(environ=env)
    assert env == {"PATH": "/bin"}


def test_sent_is_bounded_however_long_the_agent_pets(tmp_path):
    """Issue 13, finding 12: every WATCHDOG=1 was appended to `sent`, forever (a pet a second is
    31 million entries a year). It keeps the latest SENT_KEPT messages; pets are counted."""
    import tracemalloc
    from hanode.notify import SENT_KEPT
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    try:
        n = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        assert n.ready("up")
        for _ in range(1000):
            assert n.watchdog()
            fake.drain()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(20000):
            n.watchdog()
            fake.drain()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")
                    if s.traceback[0].filename.endswith("notify.py"))
        tracemalloc.stop()
        assert n.status("still here")
        assert len(n.sent) == SENT_KEPT and n.sent[-1] == "STATUS=still here" and n.sent[-2] == "WATCHDOG=1"
        assert n.watchdogs_sent == 21000 and n.info()["watchdogs_sent"] == 21000
        assert grown < 10000, grown   # bytes kept by notify.py after 20 000 more pets
    finally:
        fake.close()
        n.close()
