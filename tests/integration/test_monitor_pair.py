"""Resource monitoring on real processes (issue 14): the lab's web service killed with SIGKILL on
the active box is restarted in place within monitor_interval + its start time; killed again and
again past monitor_failures it moves to the peer, never on both boxes.

The lab (hanode.lab.bed): two ``hanode run`` in network namespaces, the paced 19200-baud cable
between real PTYs, the VIP watched through netlink, a client namespace fetching the VIP over
HTTP every 50 ms.  The webapp's ``status`` is LSB: 1 when its process is dead and its pid file
left behind (a SIGKILL), 3 when stopped.
"""
import os
import signal
import time

import pytest

from tests.integration.test_faults import LAB_SLACK_S, diagnose, make_lab, settled, status, wait

INTERVAL_MS = 500
MONITOR = "monitor_interval %dms\nmonitor_failures 2\nmonitor_window 120\n" % INTERVAL_MS


def webapp_pid(lab, node):
    try:
        with open(os.path.join(lab.node_dir(node), "state", "webapp.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kill_webapp(lab, node):
    """SIGKILL the web service (its pid from its pid file: a process the lab's script started)."""
    pid = webapp_pid(lab, node)
    assert pid is not None, diagnose(lab)
    os.kill(pid, signal.SIGKILL)
    lab.mark("webapp (pid %d) on %s killed" % (pid, node))
    return pid, time.time()


def served_by(lab, node, since):
    """The client got a page from ``node`` after ``since``."""
    return any(e["ok"] and e["body"] == node and e["t"] > since for e in lab.client_events())


def restart_seconds(lab, node):
    """How long each restart in place took on ``node``, from its log (stop + start)."""
    began, spans = None, []
    for t, _level, text in lab.log_lines(node):
        if text.startswith("Restarting resource group"):
            began = t
        elif text.startswith("Resource group") and "restarted from" in text and began is not None:
            spans.append(t - began)
            began = None
    return spans


def monitor_of(lab, node):
    st = status(lab, node)
    return st["groups"][0]["monitor"] if st else {}


def start_monitored_pair(lab):
    lab.start("node1")
    lab.start("node2")
    wait(lambda: settled(lab), 30, "the pair settles with node1 holding")
    lab.start_client(0.05)
    wait(lambda: served_by(lab, "node1", 0), 10, "the client is served by node1")
    # the first check (an interval after the start) has passed: the service is watched
    wait(lambda: monitor_of(lab, "node1")["resources"][1]["result"] == "running", 5, "node1 checks webapp")


@pytest.mark.integration
def test_lab_webapp_killed_is_restarted_in_place_within_interval_plus_start():
    lab = make_lab(timing="tight", extra_ha_cf=MONITOR)
    try:
        start_monitored_pair(lab)
        old, killed_at = kill_webapp(lab, "node1")
        took = wait(lambda: served_by(lab, "node1", killed_at + 0.001) and webapp_pid(lab, "node1") != old,
                    INTERVAL_MS / 1000.0 + 5 + LAB_SLACK_S, "node1 serves again after the kill")
        # (the start script returns once the port answers: the client may be served a moment before)
        wait(lambda: restart_seconds(lab, "node1"), 5, "node1 logs the restart's end")
        restarts = restart_seconds(lab, "node1")
        assert len(restarts) == 1, diagnose(lab)
        print("webapp SIGKILLed: served again by node1 after %.0f ms (monitor_interval %d ms, restart "
              "(stop + start) %.0f ms)" % (took * 1000, INTERVAL_MS, restarts[0] * 1000))
        # detection within an interval (plus the status run), then the restart
        assert took <= INTERVAL_MS / 1000.0 + restarts[0] + LAB_SLACK_S, diagnose(lab)
        m = monitor_of(lab, "node1")
        webapp = m["resources"][1]
        assert (webapp["failures"], webapp["restarts"]) == (1, 1), m
        assert m["resources"][0]["restarts"] == 0        # the address stayed up
        assert len(lab.vip_intervals("node1")) == 1 and lab.vip_intervals("node2") == []
        assert lab.double_holder_ms() == 0
        log = lab.log_text("node1")
        assert "webapp of group 192.0.2.100/24/eth0 failed its check (exit 1 (dead, pid file exists)" in log, \
            log[-3000:]
    finally:
        lab.close()


@pytest.mark.integration
def test_lab_webapp_killed_past_the_limit_moves_to_the_peer_never_on_both():
    lab = make_lab(timing="tight", extra_ha_cf=MONITOR)
    try:
        start_monitored_pair(lab)
        for n in (1, 2):   # within monitor_failures: restarted in place
            old, killed_at = kill_webapp(lab, "node1")
            wait(lambda: served_by(lab, "node1", killed_at + 0.001) and webapp_pid(lab, "node1") != old,
                 10, "restart %d in place" % n)
            wait(lambda: monitor_of(lab, "node1")["state"] == "waiting", 5, "node1 watches again")
        _, killed_at = kill_webapp(lab, "node1")
        took = wait(lambda: served_by(lab, "node2", killed_at), 15, "node2 serves after the third kill")
        print("webapp SIGKILLed a third time (limit 2 restarts): served by node2 after %.0f ms" % (took * 1000))
        st1, st2 = status(lab, "node1"), status(lab, "node2")
        assert st1["groups"][0]["held_by"] == "node2" and st2["groups"][0]["held_by"] == "node2"
        assert st1["groups"][0]["given"] and st1["groups"][0]["monitor"]["handed_over"] == 1
        assert st1["counters"]["monitor_restarts"] == 2 and st1["counters"]["monitor_handovers"] == 1
        assert lab.double_holder_ms() == 0, (lab.vip_intervals("node1"), lab.vip_intervals("node2"))
        assert "giving group 192.0.2.100/24/eth0 to node2" in lab.log_text("node1")
        time.sleep(2.0)   # it stays there (auto_failback on does not undo the hand-over)
        assert status(lab, "node2")["groups"][0]["held_by"] == "node2"
        assert lab.double_holder_ms() == 0
    finally:
        lab.close()
