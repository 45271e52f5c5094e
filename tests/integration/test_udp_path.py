"""The second heartbeat path: with `ucast` on the LAN, a pulled serial cable is a dead
link, not a dead peer; power loss (every path silent) still fails over."""
import os
import subprocess
import time

import pytest

from hanode.lab.bed import Lab, ADDRS, NODES
from hanode.lab.cable import NullModem, PtyEndpoint
from hanode.links import REOPEN_MAX_MS

pytestmark = pytest.mark.integration

UCAST = "ucast eth0 %s\nucast eth0 %s\n" % (ADDRS["node1"], ADDRS["node2"])   # the same lines on both nodes


def link_states(lab, node):
    st = lab.status(node)
    return {link["name"]: link["state"] for link in st["links"]} if st else {}


def test_cable_pulled_with_udp_path_is_only_a_dead_link():
    with Lab(extra_ha_cf=UCAST) as lab:
        lab.start_client(0.05)
        lab.start("node1")
        lab.start("node2")
        assert lab.wait_for(lambda: lab.holder("node2") == "node1", 30), lab.log_text("node1")
        assert lab.wait_for(lambda: link_states(lab, "node2").get("eth0") == "up", 10)
        log = lab.log_text("node1")
        assert "ucast eth0 %s: that is this box's own address; ignored" % ADDRS["node1"] in log
        lab.cable.cut()
        cut_at = time.time()
        # the serial link dies after deadtime, the peer does not
        assert lab.wait_for(lambda: "dead" in link_states(lab, "node2").values(), 10)
        time.sleep(1.0)
        st = lab.status("node2")
        assert st["peer_state"] == "active"
        assert st["counters"]["failovers"] == 0
        assert st["groups"][0]["held_by"] == "node1"
        assert "is dead" not in lab.log_text("node2")
        assert lab.double_holder_ms() == 0
        assert not [w for w in lab.outages(cut_at) if w[1] - w[0] > 0.2]
        lab.cable.reconnect()
        assert lab.wait_for(lambda: set(link_states(lab, "node2").values()) == {"up"}, 10)
        # power loss: both paths go silent, node2 takes over
        lab.power_off("node1")
        assert lab.wait_for(lambda: lab.holder("node2") == "node2", 10), lab.log_text("node2")
        assert lab.double_holder_ms() == 0


# links.py: a lost port or interface is tried again after 100 ms, doubling to every REOPEN_MAX_MS;
# the core calls a link up at its first frame after that (keepalive 100 ms), so both ends see it
# up again within REOPEN_MAX_MS + a keepalive + a frame time of its return; 0.5 s is left for load
BACK_WITHIN_S = REOPEN_MAX_MS / 1000 + 0.5


def serial_name(lab, node):
    return os.path.join(lab.node_dir(node), "ttyS0")


def test_serial_device_that_disappears_and_returns_is_reopened_without_a_restart():
    with Lab(extra_ha_cf=UCAST) as lab:
        lab.start("node1")
        lab.start("node2")
        pids = {n: lab.procs[n].pid for n in NODES}
        tty = {n: serial_name(lab, n) for n in NODES}
        assert lab.wait_for(lambda: all(set(link_states(lab, n).values()) == {"up"} for n in NODES), 30)
        ends = [PtyEndpoint(link=tty[n]) for n in NODES]
        lab.cable.close()     # both PTYs hang up and their device nodes and links disappear
        assert lab.wait_for(lambda: all(link_states(lab, n).get(tty[n]) == "dead" for n in NODES), 10)
        time.sleep(3.0)       # away long enough for the retries to have slowed to their cap
        lab.cable = NullModem(ends[0], ends[1], baud=19200).start()   # the same names, new devices
        back = time.monotonic()
        took = lab.wait_for(lambda: all(link_states(lab, n).get(tty[n]) == "up" for n in NODES), 10)
        assert took is not None, lab.log_text("node1")
        took = time.monotonic() - back
        assert took < BACK_WITHIN_S, took
        for n in NODES:
            log = lab.log_text(n)
            assert log.count("serial link %s lost" % tty[n]) == 1, log      # said once, not every second
            assert log.count("serial link %s reopened" % tty[n]) == 1, log
            assert lab.procs[n].pid == pids[n] and lab.procs[n].poll() is None   # no restart
            assert lab.status(n)["counters"]["failovers"] == 0
        print("serial link up again %.2f s after the device returned" % took)


def test_udp_interface_that_disappears_and_returns_is_rebound_without_a_restart():
    with Lab(extra_ha_cf=UCAST) as lab:
        lab.start("node1")
        lab.start("node2")
        assert lab.wait_for(lambda: all(link_states(lab, n).get("eth0") == "up" for n in NODES), 30)
        ns, lan = lab.ns("node2"), lab.ns("lan")
        subprocess.run(["ip", "-n", ns, "link", "del", "eth0"], check=True)   # its veth peer p1 goes too
        assert lab.wait_for(lambda: all(link_states(lab, n).get("eth0") == "dead" for n in NODES), 10)
        time.sleep(3.0)
        for cmd in (["-n", lan, "link", "add", "p1", "type", "veth", "peer", "name", "eth0", "netns", ns],
                    ["-n", lan, "link", "set", "p1", "master", "br0"], ["-n", lan, "link", "set", "p1", "up"],
                    ["-n", ns, "addr", "add", "%s/24" % ADDRS["node2"], "dev", "eth0"],
                    ["-n", ns, "link", "set", "eth0", "up"]):
            subprocess.run(["ip"] + cmd, check=True)
        back = time.monotonic()
        took = lab.wait_for(lambda: all(link_states(lab, n).get("eth0") == "up" for n in NODES), 10)
        assert took is not None, lab.log_text("node2")
        took = time.monotonic() - back
        assert took < BACK_WITHIN_S, took
        log = lab.log_text("node2")
        assert log.count("interface eth0 gone") == 1 and log.count("interface eth0 back") == 1, log
        assert lab.procs["node2"].poll() is None
        for n in NODES:
            assert lab.status(n)["counters"]["failovers"] == 0   # the serial link carried on
        print("UDP link up again %.2f s after the interface returned" % took)
