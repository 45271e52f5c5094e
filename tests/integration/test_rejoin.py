"""Issue 13 finding 1 on real processes: a box whose state directory was wiped rejoins.

lab (hanode.lab): two ``hanode run`` processes in network namespaces, the paced
19200-baud null-modem between real PTYs, real VIPs.  node2 prefers a second
group; it is powered off, its state directory wiped (an RMA swap, a reflash,
the image's tmpfs /data), and powered on again: it must rejoin within deadtime
+ 1 s of its start and get its group back (auto_failback on), and node1 must
say what happened, in its log and in ``hanode status``.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from test_faults import LAB_SLACK_S, diagnose, make_lab, status, wait

VIP2 = "192.0.2.101"
HARESOURCES = "node1 192.0.2.100/24/eth0 webapp\nnode2 %s/24/eth0\n" % VIP2


def power_off_node2(lab):
    """Power loss: every address goes (the lab removes the main VIP; this one is ours)."""
    lab.power_off("node2")
    subprocess.run(["ip", "-n", lab.ns("node2"), "addr", "del", "%s/24" % VIP2, "dev", "eth0"],
                   capture_output=True)


def holders(lab):
    """(holder of group 0, holder of group 1) as both nodes agree, else None."""
    a, b = status(lab, "node1"), status(lab, "node2")
    if not a or not b or a["peer_state"] != "active" or b["peer_state"] != "active":
        return None
    ha = tuple(g["held_by"] for g in a["groups"])
    hb = tuple(g["held_by"] for g in b["groups"])
    running = all(g["state"] in ("running", "stopped") for g in a["groups"] + b["groups"])
    return ha if ha == hb and running else None


def log_time(lab, node, pattern):
    """Time of the last log line of ``node`` matching ``pattern`` (its log spans every power
    cycle), or None."""
    found = None
    for stamp, _level, text in lab.log_lines(node):
        if re.search(pattern, text):
            found = stamp
    return found


@pytest.mark.integration
def test_lab_box_with_wiped_state_rejoins_within_deadtime_plus_1s_and_fails_back():
    lab = make_lab(timing="tight", haresources=HARESOURCES)
    deadtime_s = 0.5
    try:
        lab.start("node1")
        lab.start("node2")
        wait(lambda: holders(lab) == ("node1", "node2"), 30, "the pair settles, each with its group")
        # node2 restarts once with its state (generation 2), so node1 persists 2 as its floor
        power_off_node2(lab)
        lab.power_on("node2")
        wait(lambda: holders(lab) == ("node1", "node2") and status(lab, "node2")["generation"] == 2, 30,
             "node2 back at generation 2")
        floor = status(lab, "node1")["peer_generation"]
        assert floor == 2
        power_off_node2(lab)
        wait(lambda: status(lab, "node1")["groups"][1]["state"] == "running", 10, "node1 takes node2's group")
        state = os.path.join(lab.node_dir("node2"), "state")
        shutil.rmtree(state)                  # the whole state directory: a new box
        os.makedirs(state)
        lab.power_on("node2")
        wait(lambda: log_time(lab, "node1", r"node2 rejoined with generation") is not None,
             30, "node1 logs the rejoin")
        started = log_time(lab, "node2", r"Heartbeat generation: 1$")
        first_below = log_time(lab, "node1", r"Authentic frames from node2 .* below its floor")
        jumped = log_time(lab, "node2", r"Rejoining node1 with boot generation")
        rejoined = log_time(lab, "node1", r"node2 rejoined with generation")
        assert None not in (started, first_below, jumped, rejoined), diagnose(lab)
        took = rejoined - started
        print("rejoin: node2 core start -> node1 accepts its new generation %.3f s "
              "(first below-floor frame -> rejoined %.3f s)" % (took, rejoined - first_below))
        assert took <= deadtime_s + 1.0, (took, diagnose(lab))
        new_gen = floor + (1 << 16)
        with open(os.path.join(state, "generation")) as f:
            assert int(f.read()) == new_gen    # persisted before use
        back = wait(lambda: holders(lab) == ("node1", "node2"), 10 + LAB_SLACK_S, "failback of node2's group")
        print("failback of node2's group %.2f s after the rejoin was logged" % back)
        st1, st2 = status(lab, "node1"), status(lab, "node2")
        assert st1["peer_generation"] == new_gen and st2["generation"] == new_gen
        c = st1["counters"]
        assert c["below_floor"] >= 1 and c["rejoins"] == 1 and c["challenges_sent"] >= 1
        assert st1["rejoin"]["state"] == "idle" and st1["rejoin"]["last"]["how"] == "rejoined"
        assert st2["counters"]["generation_jumps"] == 1
        log1 = lab.log_text("node1")
        assert len(re.findall(r"Authentic frames from node2 .* below its floor", log1)) == 1
        text = lab.cli("node1", "status")
        assert text.returncode == 0 and "node2 rejoined with generation %d" % new_gen in text.stdout, text
        # the VIPs never doubled
        assert lab.double_holder_ms() == 0
    finally:
        lab.close()
