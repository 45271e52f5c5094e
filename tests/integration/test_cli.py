"""The `hanode` command line as a user runs it: the demo's JSON, and the control commands'
answers when no agent is there.

Theory of operation: every test runs ``python3 -m hanode ...`` as a subprocess
(the repository on PYTHONPATH) and reads only its exit code, stdout and stderr.
The demo builds its own namespaces (root only) and must remove them again; its
prefix is ``hn<its pid>x1``, which is how the test checks that nothing is left.
The other tests need no privileges: they point the commands at sockets in a
temporary directory.
"""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hanode(*args, timeout=30):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("HANODE_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "hanode"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def demo_json(*args):
    """Run ``hanode demo --json --hold 0.5 ARGS``; (the finished process, its JSON summary)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "hanode", "demo", "--json", "--hold", "0.5"] + list(args),
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    return proc, json.loads(out)   # --json: stdout is the summary and nothing else


@pytest.mark.integration
def test_demo_json_shows_failover_and_failback_without_double_vip():
    if os.geteuid() != 0:
        pytest.skip("the demo needs root (network namespaces)")
    proc, summary = demo_json()
    assert summary["double_holder_ms"] == 0
    assert summary["heartbeat_frame_bytes"] == 24
    assert summary["timing"] == "tight"
    assert summary["clean_exit"] is True
    assert summary["cold_start_ms"] > 0
    # a failover and a failback happened, each with a short, real outage
    assert 0 < summary["failover_outage_ms"] < 5000
    assert 0 <= summary["failback_outage_ms"] < 5000   # may fall between two fetches
    # power loss is noticed by silence: not before deadtime (500 ms) minus one keepalive (the last
    # frame may have come up to 100 ms before the plug was pulled); 5 s allows for a loaded box
    assert 400 <= summary["detection_ms"] < 5000
    assert summary["frames_on_cable"] > 20
    left = [n for n in os.listdir("/run/netns") if re.match(r"^hn%dx\d+-" % proc.pid, n)] \
        if os.path.isdir("/run/netns") else []
    assert not left, "the demo left namespaces behind: %s" % left


@pytest.mark.integration
def test_demo_lan_story_moves_the_service_on_a_lan_loss_and_nothing_when_both_lose_it():
    if os.geteuid() != 0:
        pytest.skip("the demo needs root (network namespaces)")
    proc, summary = demo_json("--story", "lan")
    assert summary["story"] == "lan" and summary["double_holder_ms"] == 0 and summary["clean_exit"] is True
    assert 0 < summary["lan_loss_outage_ms"] < 5000
    # the loss counts after the loss settle time (deadtime/5 = 100 ms), not before
    assert 100 <= summary["detection_ms"] < 5000
    # back only once the link has been up for the gain settle time (2 x deadtime = 1 s)
    assert 1000 <= summary["lan_back_to_served_ms"] < 10000
    assert summary["both_down_moves"] == 0


@pytest.mark.parametrize("command", ["status", "standby", "takeover"])
def test_control_commands_say_when_no_agent_runs(tmp_path, command):
    missing = str(tmp_path / "control.sock")
    r = hanode(command, "--socket", missing)
    assert r.returncode == 3   # LSB: not running
    assert r.stdout == ""
    assert r.stderr.strip() == "hanode %s: hanode is not running (no control socket at %s)" % (command, missing)

    # a socket file left by a killed agent: nobody listens on it
    stale = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    r = hanode(command, "--socket", stale)
    assert r.returncode == 3
    assert r.stderr.strip() == "hanode %s: hanode is not running (%s refuses connections)" % (command, stale)


@pytest.mark.parametrize("command,option", [("run", "--config-dir"), ("status", "--json"),
                                            ("standby", "--wait"), ("takeover", "--wait"),
                                            ("demo", "--classic")])
def test_every_command_has_help(command, option):
    r = hanode(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: hanode %s" % command)
    assert option in r.stdout
