"""Issue 14, LAN half, on real processes: the active box's LAN loss moves the service.

lab (hanode.lab: namespaces, the paced null-modem, the demo's web service), tight timing
(deadtime 500 ms: a LAN loss counts after 100 ms, a return after 1 s stable).  The client GETs
the VIP every 20 ms from its own namespace; "served by" is the body of its answers.

- carrier: ``ip link set eth0 down`` in node1's namespace with hanode running: node2 serves
  within 1 s, no double VIP; ``ip link set eth0 up``: back on node1 (auto_failback on) once the
  link has been up for the gain settle time, not before;
- a ping node (192.0.2.1 on the LAN's bridge) blackholed in node1's namespace only: the same;
- both boxes' links down: nothing moves for 5 s and status says why;
- a mixed pair, one box from the previous release (``git worktree add`` of be2c06e): settles,
  no failover, no double VIP; the LAN moves nothing; a failover still works.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import test_faults
from test_faults import diagnose, make_lab, settled, start_pair, status, vip_on, wait

from hanode.core import health
from hanode.lab.netns import ip

BOUND_S = 1.0
DEADTIME_MS = 500
GAIN_S = health.gain_settle_ms(DEADTIME_MS) / 1000.0
PREVIOUS_RELEASE = "be2c06e"
GATEWAY = "192.0.2.1"


def link(lab, node, state):
    subprocess.run(["ip", "-n", lab.ns(node), "link", "set", "eth0", state], check=True)


def served_by(lab, body, since):
    """When the client was first served by ``body`` after ``since`` (and stayed: the last answer
    is from it too), or None."""
    events = [e for e in lab.client_events() if e["t"] >= since]
    first = None
    for e in events:
        if e["ok"] and e["body"].strip() == body:
            if first is None:
                first = e["t"]
        elif e["ok"]:
            first = None
    return first


def wait_served(lab, body, since, timeout, what):
    wait(lambda: served_by(lab, body, since) is not None, timeout, what)
    return served_by(lab, body, since) - since


def lan_of(lab, node):
    return status(lab, node)["lan"]


@pytest.mark.integration
def test_lab_active_box_link_down_moves_the_service_within_1s_and_back_when_stable():
    lab = make_lab(timing="tight")
    try:
        start_pair(lab)
        lab.start_client(interval=0.02)
        wait_served(lab, "node1", time.time(), 10, "the client is served by node1")
        down = time.time()
        link(lab, "node1", "down")
        took = wait_served(lab, "node2", down, 10, "node2 serves after node1's link went down")
        vip_up = [t for t, _ in lab.vip_intervals("node2") if t >= down]
        print("link down on the active box: the client was served by node2 %.3f s later (VIP on node2 "
              "after %.3f s; load average %s)" % (took, vip_up[0] - down if vip_up else -1,
                                                 open("/proc/loadavg").read().split()[0]))
        if took > BOUND_S:
            print(diagnose(lab, lines=80))   # whole, where an assertion message would be cut
        assert took <= BOUND_S, took
        wait(lambda: lan_of(lab, "node2")["peer"] == 0, 5, "node2 sees node1's LAN health 0")
        st = lan_of(lab, "node1")
        assert st["own"]["health"] == 0 and "eth0" in st["own"]["detail"], st
        assert "LAN of node1 is worse" in st["why"], st
        text = lab.cli("node1", "status").stdout
        assert "LAN: node1 0 (no carrier on eth0)" in text and "groups go to node2" in text, text
        up = time.time()
        link(lab, "node1", "up")
        back = wait_served(lab, "node1", up, 15, "node1 serves again after its link is back and stable")
        print("link back: the group returned to node1 %.3f s later (gain settle %.1f s)" % (back, GAIN_S))
        assert GAIN_S <= back <= GAIN_S + 2 * BOUND_S, (back, diagnose(lab))
        assert lab.double_holder_ms(since=down) == 0, diagnose(lab)
        wait(lambda: settled(lab), 10, "settled on node1")
    finally:
        lab.close()


@pytest.mark.integration
def test_lab_a_ping_node_lost_by_the_active_box_only_moves_the_service():
    lab = make_lab(timing="tight", extra_ha_cf="ping %s\n" % GATEWAY)
    try:
        ip("-n", lab.ns("lan"), "addr", "add", "%s/24" % GATEWAY, "dev", "br0")
        start_pair(lab)
        wait(lambda: lan_of(lab, "node1")["own"]["health"] == 2 and lan_of(lab, "node1")["peer"] == 2, 10,
             "both boxes reach the ping node")
        lab.start_client(interval=0.02)
        wait_served(lab, "node1", time.time(), 10, "the client is served by node1")
        lost = time.time()
        ip("-n", lab.ns("node1"), "route", "add", "blackhole", "%s/32" % GATEWAY)
        took = wait_served(lab, "node2", lost, 10, "node2 serves once node1 lost its ping node")
        print("ping node lost by the active box: served by node2 %.3f s later (deadping %d ms)" % (
            took, DEADTIME_MS))
        # deadping (the dead time) + the loss settle time + the hand-over
        assert took <= DEADTIME_MS / 1000.0 + BOUND_S, (took, diagnose(lab))
        st = lan_of(lab, "node1")
        assert st["own"]["health"] == 1 and "ping node %s lost" % GATEWAY in st["own"]["detail"], st
        assert st["watch"]["ping_nodes"] == {GATEWAY: False}
        ip("-n", lab.ns("node1"), "route", "del", "blackhole", "%s/32" % GATEWAY)
        back_from = time.time()
        back = wait_served(lab, "node1", back_from, 15, "node1 serves again once it reaches its ping node")
        print("ping node back: the group returned to node1 %.3f s later" % back)
        assert back >= GAIN_S
        assert lab.double_holder_ms(since=lost) == 0, diagnose(lab)
    finally:
        lab.close()


@pytest.mark.integration
def test_lab_both_boxes_losing_the_lan_moves_nothing_and_status_says_why():
    lab = make_lab(timing="tight")
    try:
        start_pair(lab)
        since = time.time()
        link(lab, "node1", "down")
        link(lab, "node2", "down")
        wait(lambda: lan_of(lab, "node1")["peer"] == 0 and lan_of(lab, "node2")["peer"] == 0, 5,
             "both see both LANs down")
        time.sleep(5)
        assert vip_on(lab, "node1") and not vip_on(lab, "node2"), diagnose(lab)
        assert lab.vip_intervals("node2") == [] and lab.double_holder_ms(since=since) == 0
        for node in ("node1", "node2"):
            st = status(lab, node)
            assert "both LANs down" in st["lan"]["why"], st["lan"]
            assert st["counters"]["failovers"] == 0
        assert "(both down: nothing moves)" in status(lab, "node2")["summary"]
        assert "both LANs down (no carrier on either box): nothing moves" in lab.cli("node2", "status").stdout
    finally:
        lab.close()


@pytest.fixture
def previous_release():
    """A checkout of the release before LAN health (``git worktree add``), removed afterwards."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if shutil.which("git") is None:
        pytest.skip("git is needed for the previous release's checkout")
    where = tempfile.mkdtemp(prefix="hanode-previous-")
    os.rmdir(where)
    subprocess.run(["git", "-C", root, "worktree", "add", "--detach", where, PREVIOUS_RELEASE],
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", root, "worktree", "remove", "--force", where], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def _mixed_lab(old_tree, old):
    from hanode.lab.bed import Lab, LabError

    class MixedLab(Lab):
        def hanode_argv(self, node, *args):
            if node != old:
                return Lab.hanode_argv(self, node, *args)
            # the old checkout's hanode: its tree alone on PYTHONPATH, and -P so that -m does not
            # put the current directory (maybe this checkout) first
            return ["env", "PYTHONPATH=%s" % old_tree, sys.executable, "-P", "-m", "hanode"] + list(args)

    lab = MixedLab(timing="tight")
    try:
        lab.__enter__()
    except LabError as e:
        pytest.skip(str(e))
    test_faults._CURRENT_LAB[:] = [lab]   # what test_faults.wait watches for a dead agent
    return lab


@pytest.mark.integration
@pytest.mark.parametrize("old", ["node2", "node1"])
def test_lab_a_peer_of_the_previous_release_keeps_working(previous_release, old):
    lab = _mixed_lab(previous_release, old)
    new = "node1" if old == "node2" else "node2"
    try:
        start_pair(lab)
        assert "lan" not in status(lab, old)        # it really is the previous release
        since = time.time()
        time.sleep(3)
        assert settled(lab) and lab.double_holder_ms(since=0) == 0, diagnose(lab)
        for node in ("node1", "node2"):
            assert status(lab, node)["counters"]["failovers"] == 0, diagnose(lab)
        st = lan_of(lab, new)
        assert st["peer_version"] == 1 and st["peer"] is None, st
        assert "speaks frame version 1 only" in lab.log_text(new)
        link(lab, "node1", "down")                  # its LAN health is unknown to the old box
        time.sleep(3)
        assert vip_on(lab, "node1") and not vip_on(lab, "node2"), diagnose(lab)
        link(lab, "node1", "up")
        lab.power_off("node1")                      # a failover still works, either way round
        wait(lambda: vip_on(lab, "node2"), 10, "node2 takes over from a dead node1")
        assert lab.double_holder_ms(since=since) == 0, diagnose(lab)
    finally:
        lab.close()
