"""The runner's side of resource monitoring (issue 14): LSB status read by hanode.lsb, checks
and restarts in place on real scripts, check-config's look at scripts, status text."""

import os
import sys
import time

import pytest

from hanode.core.monitor import RESULT_FAILED, RESULT_RUNNING, RESULT_UNKNOWN
from hanode.lsb import classify, static_problems

sys.path.insert(0, os.path.dirname(__file__))
from test_resources import Group, Res, World, run, write_script  # noqa: E402


@pytest.mark.parametrize("rc, out, err, result", [
    (0, "webapp is running", "", RESULT_RUNNING),
    (0, "", "", RESULT_RUNNING),
    (0, "webapp is not running", "", RESULT_FAILED),        # Heartbeat's text rule
    (1, "dead but pid file exists", "", RESULT_FAILED),
    (2, "", "", RESULT_FAILED),
    (3, "not running", "", RESULT_FAILED),
    (7, "", "", RESULT_FAILED),                              # OCF_NOT_RUNNING
    (4, "", "", RESULT_UNKNOWN),
    (5, "", "", RESULT_UNKNOWN),                             # not an LSB status code
    (1, "Usage: httpd {start|stop}", "", RESULT_UNKNOWN),    # no status verb: not a crash
    (3, "", "usage: foo start|stop", RESULT_UNKNOWN),
    (-9, "", "", RESULT_UNKNOWN),
    (None, "", "", RESULT_UNKNOWN),
])
def test_lsb_status_codes(rc, out, err, result):
    got, detail = classify(rc, out, err)
    assert got == result, detail
    assert str(rc) in detail or rc is None or rc < 0


def test_static_look_at_a_script(tmp_path):
    with_status = write_script(str(tmp_path), "good")
    without = write_script(str(tmp_path), "bad", body="#!/bin/sh\ncase $1 in start) exit 0;; stop) exit 0;; esac\n")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x7fELF\0\0\0")
    assert static_problems(with_status) is None
    assert "no 'status' action" in static_problems(without)
    assert static_problems(str(binary)) is None and static_problems(str(tmp_path / "none")) is None


def test_check_reads_each_resource_and_restart_restarts_from_the_failed_one(tmp_path):
    w = World(tmp_path)
    for n in ("a", "b", "c"):
        write_script(w.rd, n)
    write_script(w.rd, "nostatus",
                 body="#!/bin/sh\necho \"Usage: $0 start|stop\"; [ \"$1\" = status ] && exit 1; exit 0\n")
    g = Group("node1", [Res("a"), Res("b"), Res("c"), Res("nostatus")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    results = run(r.check(g.key))
    assert [x[0] for x in results] == [RESULT_RUNNING] * 3 + [RESULT_UNKNOWN]
    os.unlink(os.path.join(w.state, "b"))                   # b crashed
    results = run(r.check(g.key))
    assert [x[0] for x in results][:3] == [RESULT_RUNNING, RESULT_FAILED, RESULT_RUNNING]
    assert "exit 3" in results[1][1]
    before = len(w.calls())
    ok, detail = run(r.restart(g.key, 1))
    assert ok, detail
    acted = [c for c in w.calls()[before:] if not c.endswith(" status")]
    # from the failed one on: stopped right to left, started left to right; a stays up
    # (nostatus keeps no record of its calls)
    assert acted == ["c stop", "b stop", "b start", "c start"]
    assert all(w.running(n) for n in "abc")
    assert run(r.release(g.key))[0]
    assert run(r.restart(g.key, 1)) == (False, "not held here")


def test_a_status_that_hangs_past_monitor_timeout_is_a_failure(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "slow", status="sleep 30")
    g = Group("node1", [Res("slow")])
    r = w.runner(g)
    r.monitor_timeout_ms = 300
    started = time.monotonic()
    [(result, detail)] = run(r.check(g.key))
    assert result == RESULT_FAILED and "timed out" in detail
    assert time.monotonic() - started < 3


def test_check_config_flags_a_script_without_status(tmp_path):
    from hanode.configdir import check_dir
    d = tmp_path / "ha.d"
    (d / "resource.d").mkdir(parents=True)
    (d / "ha.cf").write_text("serial /dev/null\nnode node1\nnode node2\nauto_failback on\nmonitor_interval 5\n")
    key = "auth 1\n1 sha1 0123456789abcdef0123456789abcdef-t\n"
    (d / "authkeys").write_text(key)
    os.chmod(str(d / "authkeys"), 0o600)
    (d / "haresources").write_text("node1 nostatus\n")
    write_script(str(d / "resource.d"), "nostatus", body="#!/bin/sh\nexit 0\n")
    cfg, problems = check_dir(str(d), "node1", system=True)
    hits = [p for p in problems if "no 'status' action" in p.message]
    assert len(hits) == 1 and hits[0].line == 1 and hits[0].level == "warning", problems
    assert "monitoring cannot check it" in hits[0].message
    assert str(hits[0]).startswith(str(d / "haresources") + ":1: warning:")
    from hanode.checkconfig import summary
    text = "\n".join(summary(cfg))
    assert "Monitor   every 5 s each resource's status" in text and "up to 3 times within 600 s" in text
    assert cfg.to_dict()["monitor_interval_ms"] == 5000


def test_status_text_shows_each_resources_last_check(tmp_path):
    from hanode.control import format_status
    from tests.core.test_monitor import monitored_pair, KEY
    sim = monitored_pair()
    sim.box("node1").crash(KEY)
    sim.run(700)
    text = format_status(sim.box("node1").node.status())
    assert "httpd" in text and "failures 1, restarts 1" in text
    assert "checked " in text and " ms ago: running" in text


def test_a_status_that_says_running_while_stopped_is_said_once_and_restarted_anyway(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "liar", status='echo "liar is running"; exit 0')   # exit 0 whatever
    g = Group("node1", [Res("liar")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    for _ in range(2):
        ok, detail = run(r.restart(g.key, 0))
        assert ok, detail
    acted = [c for c in w.calls() if not c.endswith(" status")]
    # the acquire skipped the start (status said running); each restart stopped and started it
    assert acted == ["liar stop", "liar start", "liar stop", "liar start"]
    assert w.text().count("not LSB-conformant (exit 0 while stopped)") == 1
