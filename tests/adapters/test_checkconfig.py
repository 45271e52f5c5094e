"""Tests of ``hanode check-config``, run as users run it: ``python3 -m hanode check-config ...``."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from hanode.checkconfig import summary
from hanode.configdir import check_dir
from hanode.core.config.authkeys import EXAMPLE_KEYS
from hanode.core.config import parse

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIGHT_KEY = (EXAMPLES / "tight" / "authkeys").read_text().split()[-1]
FRESH_KEY = "5c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f"   # what the user makes with openssl rand


def hanode(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "hanode", "check-config", *args], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60)


SERIAL: List[str] = []   # this test's serial port: a real PTY (the files name /dev/ttyS0)


@pytest.fixture(autouse=True)
def serial_port():
    master, slave = os.openpty()
    SERIAL[:] = [os.ttyname(slave)]
    yield SERIAL[0]
    os.close(master)
    os.close(slave)


def example(name: str, tmp_path: Path, mode: int = 0o600) -> Path:
    """An example made ready for this machine, as a user would: its own key, its serial port, and
    the httpd script its haresources names."""
    d = tmp_path / name
    shutil.copytree(EXAMPLES / name, d)
    keys = (d / "authkeys").read_text()
    if name == "tight":
        keys = keys.replace(TIGHT_KEY, FRESH_KEY)
    (d / "authkeys").write_text(keys)
    os.chmod(d / "authkeys", mode)
    (d / "ha.cf").write_text((d / "ha.cf").read_text().replace("/dev/ttyS0", SERIAL[0]))
    (d / "resource.d").mkdir()
    script(d / "resource.d" / "httpd")
    return d


def script(path: Path, mode: int = 0o755) -> None:
    # (a status action: a script without one is warned about, see test_monitoring.py)
    path.write_text("#!/bin/sh\n[ \"$1\" = status ] && exit 3\nexit 0\n")
    os.chmod(path, mode)


def test_classic_is_usable_and_explained(tmp_path):
    d = example("classic", tmp_path)
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "%s:6: warning: auth method crc authenticates nothing" % (d / "authkeys") in out
    assert "usable (0 errors, 1 warning)" in out
    assert "node1 (this node, wire id 0) and node2 (peer, wire id 1)" in out
    assert "serial %s at 19200 baud 8N1: a 20-byte frame takes 10.4 ms" % SERIAL[0] in out  # crc frames are shorter
    for fragment in ("keepalive    1000 ms", "warntime     5000 ms", "deadtime    15000 ms", "initdead    60000 ms",
                     "after 15 s of silence", "wait up to 60 s"):
        assert fragment in out, fragment
    assert "signs with key 1 (crc)" in out
    assert "group 0: 192.0.2.100 (prefers node1, haresources line 4)" in out
    lines = out.splitlines()
    first = [i for i, ln in enumerate(lines) if "1) 192.0.2.100" in ln]
    second = [i for i, ln in enumerate(lines) if "2) httpd" in ln]
    assert first and second and first[0] < second[0]  # start order
    assert "httpd start|stop|status, run as %s/resource.d/httpd" % d in out
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


@pytest.mark.parametrize("argv", [["-m", "hanode.checkconfig"], ["-m", "hanode", "check-config"]])
def test_help_without_docstrings(argv):
    # the appliance runs python3 -OO (no docstrings): the help must not be read from __doc__
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-OO", *argv, "--help"], cwd=str(REPO), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "check /etc/ha.d (ha.cf, authkeys, haresources) and report every problem" in r.stdout


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


def test_a_typo_makes_the_config_unusable(tmp_path):
    # issue 13 finding 9: 'deadtim 500ms' left the default 30 s dead time in force, with a warning
    d = example("tight", tmp_path)
    lines = (d / "ha.cf").read_text().splitlines()
    line = [i for i, text in enumerate(lines) if text.startswith("deadtime ")][0] + 1
    lines[line - 1] = "deadtim 500ms"
    (d / "ha.cf").write_text("\n".join(lines) + "\n")
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 1, r.stdout
    assert ("%s:%d: error: unknown directive [deadtim] - did you mean [deadtime]?" % (d / "ha.cf", line)
            in r.stdout), r.stdout
    assert "NOT usable (" in r.stdout and "Timing" not in r.stdout


def test_an_unprobed_group_on_a_serial_only_pair_is_warned_about(tmp_path):
    # issue 13 finding 8: a group without an address is never probed
    d = example("tight", tmp_path)
    (d / "haresources").write_text("node1 192.0.2.100 httpd\nnode2 nfsserver\n")
    script(d / "resource.d" / "nfsserver")
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 0, r.stdout
    assert ("%s:2: warning: group [nfsserver] has no IP address, so nothing can probe whether the silent peer "
            "still runs it" % (d / "haresources")) in r.stdout, r.stdout
    assert "usable (0 errors, 1 warning)" in r.stdout
    with open(d / "ha.cf", "a") as f:
        f.write("ucast lo 192.0.2.2\n")
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 0 and "no IP address" not in r.stdout, r.stdout


def test_what_the_files_name_must_exist_on_this_machine(tmp_path):
    # issue 13 finding 7: a missing or non-executable script made both boxes fail the group's start
    # in turn (VIP ping-pong) while check-config said "found"; likewise a missing port or interface
    d = example("tight", tmp_path)
    os.chmod(d / "resource.d" / "httpd", 0o644)
    (d / "resource.d" / "lister").write_text("#!/bin/sh\n")
    (d / "haresources").write_text("node1 192.0.2.100 httpd\n"
                                   "node2 IPaddr::192.0.2.101/24/nosuch0:1 mailer\n"
                                   "node2 IPaddr2::192.0.2.102/24/lo lister\n")
    not_a_port = tmp_path / "ttyS9"
    not_a_port.write_text("")
    ha_cf = (d / "ha.cf").read_text()
    ha_cf += "serial %s\nserial %s\nucast nosuch1 192.0.2.2\nucast lo 192.0.2.3\n" % (tmp_path / "ttyUSB7",
                                                                                         not_a_port)
    (d / "ha.cf").write_text(ha_cf)
    n = len(ha_cf.splitlines())
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 1, r.stdout
    ha, hr = d / "ha.cf", d / "haresources"
    expected = [
        "%s:%d: error: serial port [%s]: No such file or directory; hanode could not open its heartbeat link"
        % (ha, n - 3, tmp_path / "ttyUSB7"),
        "%s:%d: error: serial port [%s] is not a character device" % (ha, n - 2, not_a_port),
        "%s:%d: error: ucast interface [nosuch1] does not exist on this machine" % (ha, n - 1),
        "%s:1: error: resource [httpd]: %s is not executable, so the group could not start; fix: chmod +x %s"
        % (hr, d / "resource.d" / "httpd", d / "resource.d" / "httpd"),
        "%s:2: error: resource [IPaddr::192.0.2.101/24/nosuch0:1]: interface [nosuch0] does not exist on "
        "this machine; hanode could not add 192.0.2.101" % hr,
        "%s:2: error: resource [mailer]: no script named mailer in %s/resource.d or /etc/init.d, so the group "
        "could not start" % (hr, d),
        "%s:3: error: resource [lister]: %s is not executable" % (hr, d / "resource.d" / "lister"),
    ]
    errors = [ln for ln in r.stdout.splitlines() if ": error: " in ln]
    assert len(errors) == len(expected), r.stdout
    for want, got in zip(expected, errors):
        assert got.startswith(want), (want, got)
    assert "NOT usable (7 errors" in r.stdout and "found in" not in r.stdout
    # the files alone are fine: --files-only says so, and that the machine was not checked
    r = hanode("--config-dir", str(d), "--node", "node1", "--files-only")
    assert r.returncode == 0, r.stdout
    assert "usable (0 errors, 0 warnings); this machine not checked (--files-only)" in r.stdout
    assert "httpd start|stop|status, looked up in %s/resource.d then /etc/init.d" % d in r.stdout


def test_the_agent_does_not_make_the_machine_checks(tmp_path):
    # hanode run reads the same files; a device or interface may appear after it starts
    d = example("tight", tmp_path)
    os.unlink(d / "resource.d" / "httpd")
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is not None and problems == []
    cfg, problems = check_dir(str(d), "node1", system=True)
    assert cfg is None and [(p.path, p.line) for p in problems] == [(str(d / "haresources"), 4)]  # the group


def published_keys(base: str) -> List[str]:
    """Every key written in an authkeys file shipped with hanode under base (examples/, board/)."""
    keys = []
    for root, _, files in os.walk(REPO / base):
        for name in files:
            if name != "authkeys":
                continue
            for line in (Path(root) / name).read_text().splitlines():
                words = line.split("#")[0].split()
                if len(words) == 3 and words[0].isdigit():
                    keys.append(words[2])
    return keys


def test_every_published_key_is_known_and_the_image_ships_none():
    keys = published_keys("examples")
    assert TIGHT_KEY in keys, keys
    assert sorted(set(keys) - set(EXAMPLE_KEYS)) == []
    # the boards' authkeys are templates: image/build appends a key made for the pair
    assert published_keys("board") == []
    for board in ("qemu-x86_64", "qemu-sabrelite"):
        template = REPO / "board" / board / "data" / "etc" / "ha.d" / "authkeys"
        assert "image/build" in template.read_text()


def test_the_board_template_alone_is_not_a_usable_key_file(tmp_path):
    d = example("tight", tmp_path)
    shutil.copy(REPO / "board" / "qemu-x86_64" / "data" / "etc" / "ha.d" / "authkeys", d / "authkeys")
    os.chmod(d / "authkeys", 0o600)
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is None and [p.message.split(" in keyfile")[0] for p in problems if p.level == "error"] == [
        "Auth Key [1] not found"], problems


def test_a_published_key_is_refused_by_check_config_and_run_with_how_to_make_one(tmp_path):
    # issue 13 finding 12: the image's example key was accepted as if it were a secret
    d = example("tight", tmp_path)
    path = d / "authkeys"
    path.write_text("auth 1\n1 hmac-sha256 example-pair-key-change-me\n")
    os.chmod(path, 0o600)
    remedy = ("printf 'auth 1\\n1 hmac-sha256 %%s\\n' \"$(openssl rand -hex 32)\" > %s; chmod 600 %s"
              % (path, path))
    where = "%s:2: error: key 1 is the published example key of an older factory image" % path
    r = hanode("--config-dir", str(d), "--node", "node1")
    assert r.returncode == 1, r.stdout
    assert where in r.stdout and remedy in r.stdout, r.stdout
    assert "example-pair-key-change-me" not in r.stdout      # the key itself is never printed
    # the agent refuses it too: a real `hanode run`, configuration error (exit 6), nothing started
    run = subprocess.run([sys.executable, "-m", "hanode", "run", "--config-dir", str(d), "--node", "node1"],
                         cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 6, (run.returncode, run.stderr)
    assert where in run.stderr and remedy in run.stderr, run.stderr
    assert "hanode not started: configuration error." in run.stderr
    assert "example-pair-key-change-me" not in run.stderr
    # a reader that only translates the configuration (the export) still gets it, with the warning
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is not None and [p.level for p in problems] == ["warning"]
    assert "published example key" in problems[0].message
    # the made key is accepted
    made = subprocess.run(["sh", "-c", problems[0].message.split("other: ")[1]], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert hanode("--config-dir", str(d), "--node", "node1").returncode == 0


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    # issue 13 finding 12: 'hanode check-config | head' ended in a BrokenPipeError traceback
    d = example("classic", tmp_path)
    for extra in ((), ("--json",)):
        proc = subprocess.Popen([sys.executable, "-m", "hanode", "check-config", "--config-dir", str(d),
                                 "--node", "node1", *extra], cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()          # like head after its lines, before the report is written
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1 and err == "", err
    r = subprocess.run("%s -m hanode check-config --config-dir %s --node node1 | head -n 2"
                       % (sys.executable, d), shell=True, cwd=str(REPO), capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert r.stderr == "" and len(r.stdout.splitlines()) == 2, r


def test_the_explanation_says_what_a_stop_that_keeps_failing_leads_to(tmp_path: Path) -> None:
    # issue 13 finding 3: the default is fence with a watchdog, block without; reboot names its command
    d = example("tight", tmp_path)
    out = hanode("--config-dir", str(d), "--node", "node1").stdout
    assert "Stop fail block: a stop that still fails after 2 releases 5 s apart" in out, out
    ha_cf = (d / "ha.cf").read_text()
    (d / "ha.cf").write_text(ha_cf + "watchdog /dev/watchdog\n")
    out = hanode("--config-dir", str(d), "--node", "node1", "--files-only").stdout
    assert "Stop fail fence: " in out and "the box resets within 1 s" in out, out
    (d / "ha.cf").write_text(ha_cf + "stop_failure reboot /usr/local/sbin/hard-reset now\n")
    result = hanode("--config-dir", str(d), "--node", "node1", "--json")
    assert json.loads(result.stdout)["config"]["stop_failure"] == "reboot", result.stdout
    out = hanode("--config-dir", str(d), "--node", "node1").stdout
    assert "Stop fail reboot: " in out and "runs /usr/local/sbin/hard-reset now" in out, out


def test_summary_explains_the_lan_health_and_its_ping_nodes():
    from hanode.checkconfig import summary
    from tests.support.sim import make_config
    cfg = make_config(extra="ping 192.0.2.1\nping_group routers 192.0.2.2 192.0.2.3\n")
    text = "\n".join(summary(cfg))
    assert "carrier on every interface with a VIP" in text
    assert "192.0.2.1, routers (any of 192.0.2.2 192.0.2.3), ICMP echo every 0.1 s, lost after deadping 0.5 s" in text
    assert "a loss counts after 0.1 s, a return after 1 s stable" in text
    assert "(no ping/ping_group nodes)" in "\n".join(summary(make_config()))
