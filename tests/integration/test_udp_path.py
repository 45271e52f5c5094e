"""The second heartbeat path: with `ucast` on the LAN, a pulled serial cable is a dead
link, not a dead peer; power loss (every path silent) still fails over."""
import time

import pytest

from hanode.lab.bed import Lab, ADDRS

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
