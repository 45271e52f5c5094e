"""Tests of ``hanode check-config``, run as users run it: ``python3 -m hanode check-config ...``."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hanode.checkconfig import summary
from hanode.core.config import parse

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIGHT_KEY = (EXAMPLES / "tight" / "authkeys").read_text().split()[-1]


def hanode(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "hanode", "check-config", *args], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60)


def example(name: str, tmp_path: Path, mode: int = 0o600) -> Path:
    d = tmp_path / name
    shutil.copytree(EXAMPLES / name, d)
    os.chmod(d / "authkeys", mode)
    return d


def test_classic_is_usable_and_explained(tmp_path):
    d = example("classic", tmp_path)
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "%s:6: warning: auth method crc authenticates nothing" % (d / "authkeys") in out
    assert "usable (0 errors, 1 warning)" in out
    assert "node1 (this node, wire id 0) and node2 (peer, wire id 1)" in out
    assert "serial /dev/ttyS0 at 19200 baud 8N1: a 20-byte frame takes 10.4 ms" in out  # crc frames are shorter
    for fragment in ("keepalive    1000 ms", "warntime     5000 ms", "deadtime    15000 ms", "initdead    60000 ms",
                     "after 15 s of silence", "wait up to 60 s"):
        assert fragment in out, fragment
    assert "signs with key 1 (crc)" in out
    assert "group 0: 192.0.2.100 (prefers node1, haresources line 4)" in out
    lines = out.splitlines()
    first = [i for i, ln in enumerate(lines) if "1) 192.0.2.100" in ln]
    second = [i for i, ln in enumerate(lines) if "2) httpd" in ln]
    assert first and second and first[0] < second[0]  # start order
    assert "%s/resource.d then /etc/init.d" % d in out
    assert "Failback  on: a group goes back to its preferred node" in out


def test_tight_json(tmp_path):
    d = example("tight", tmp_path)
    r = hanode("--config-dir", str(d), "--node", "NODE2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == []
    c = doc["config"]
    assert (c["keepalive_ms"], c["warntime_ms"], c["deadtime_ms"], c["initdead_ms"]) == (100, 300, 500, 10000)
    assert c["me"] == "node2" and c["peer"] == "node1"
    assert c["auth"] == {"index": 1, "method": "hmac-sha256", "methods": {"1": "hmac-sha256"}}
    assert [g["key"] for g in c["groups"]] == ["192.0.2.100"]
    assert TIGHT_KEY not in r.stdout


def test_broken_config_lists_every_problem_and_exits_1(tmp_path):
    d = tmp_path / "ha.d"
    d.mkdir()
    (d / "ha.cf").write_text("baud 12345\nkeepalive 1\ndeadtime 2\nserial /dev/ttyS0\nnode node1 node2\n"
                             "auto_failback maybe\n")
    (d / "authkeys").write_text("auth 1\n1 md5\n")
    os.chmod(d / "authkeys", 0o600)
    (d / "haresources").write_text("node1 192.0.2.1/40 httpd\nnode3 x\n")
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 1
    out = r.stdout.splitlines()
    expected = [
        "%s/ha.cf:1: error: invalid baud rate [12345]; use one of 9600 19200 38400 57600 115200 230400 460800" % d,
        "%s/ha.cf:3: error: Dead time [2000 ms] is too small compared to keepalive [1000 ms]" % d,
        "%s/ha.cf:6: error: invalid auto_failback [maybe]; use on, off or legacy" % d,
        "%s/authkeys:2: error: Auth method [md5] requires a key" % d,
        "%s/haresources:1: error: resource [192.0.2.1/40]: prefix [40]" % d,
        "%s/haresources:2: error: preferred node [node3] is not a node in ha.cf" % d,
    ]
    errors = [ln for ln in out if ": error: " in ln]
    assert len(errors) == len(expected)
    for want, got in zip(expected, errors):
        assert got.startswith(want), (want, got)
    assert "NOT usable (6 errors, " in r.stdout
    assert "Timing" not in r.stdout  # no summary of a configuration that cannot run


def test_broken_config_json(tmp_path):
    d = example("tight", tmp_path)
    (d / "haresources").write_text("node1 192.0.2.999\n")
    r = hanode("--config-dir", str(d), "--node", "node1", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["config"] is None
    assert len(doc["problems"]) == 1
    p = doc["problems"][0]
    assert p["path"] == str(d / "haresources") and p["line"] == 1 and p["level"] == "error"
    assert "[192.0.2.999] is not an IPv4 address" in p["message"]
    assert TIGHT_KEY not in r.stdout


@pytest.mark.parametrize("mode,code", [(0o644, 1), (0o640, 1), (0o600, 0), (0o400, 0)])
def test_authkeys_mode(tmp_path, mode, code):
    d = example("tight", tmp_path, mode)
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == code, r.stdout
    path = d / "authkeys"
    refused = "%s: error: Bad permissions on keyfile [%s], 600 recommended. Fix: chmod 600 %s" % (path, path, path)
    assert (refused in r.stdout) == (code == 1)


def test_default_node_is_uname(tmp_path):
    d = example("tight", tmp_path)
    name = os.uname().nodename.lower()
    (d / "ha.cf").write_text((d / "ha.cf").read_text().replace("node            node2", "node " + name))
    r = hanode("--config-dir", str(d))
    assert r.returncode == 0, r.stdout
    assert "as node %s: usable" % name in r.stdout
    # and when this machine is not listed, the hint says how to check as a listed node
    r = hanode("--config-dir", str(example("classic", tmp_path / "other")))
    if name not in ("node1", "node2"):
        assert r.returncode == 1
        assert "Current node [%s] not in configuration!" % name in r.stdout
        assert "use --node NAME" in r.stdout


def test_missing_directory_exits_1(tmp_path):
    r = hanode("--config-dir", str(tmp_path / "nope"), "--node", "node1")
    assert r.returncode == 1
    assert "%s: error: configuration directory does not exist" % (tmp_path / "nope") in r.stdout


def test_help():
    r = hanode("--help")
    assert r.returncode == 0
    for opt in ("--config-dir", "--node", "--json"):
        assert opt in r.stdout


def test_summary_spells_out_the_media_and_failback_modes():
    ak = "auth 1\n1 sha1 0123456789abcdef01\n"
    for mode, fragment in [("on", "goes back to its preferred node"), ("off", "stay where they are"),
                           ("legacy", "legacy (no auto_failback line)")]:
        cfg = parse("serial /dev/ttyS0 /dev/ttyS1\nucast eth1 192.0.2.2\nbaud 38400\nnode a b\n"
                    "auto_failback %s\nwatchdog /dev/watchdog\nkeepalive 200ms\ndeadtime 1\n" % mode,
                    ak, "a IPaddr2::192.0.2.5/24/eth0:3 svc::x::y\n", me="b")
        text = "\n".join(summary(cfg))
        assert fragment in text
        assert "serial /dev/ttyS1 at 38400 baud 8N1: a 24-byte frame takes 6.2 ms, 3% of the line" in text
        assert "ucast eth1 -> 192.0.2.2, UDP port 694" in text
        assert "the peer is dead only when every link is silent" in text
        assert "/dev/watchdog, timeout 2 s" in text
        assert "address 192.0.2.5/24 on eth0, label eth0:3 via IPaddr2" in text
        assert "svc x y start|stop|status" in text
        assert "b (this node, wire id 1) and a (peer, wire id 0)" in text
