"""Whoever keeps a VIP after a heal announces it again (issue 13 finding 11).

Simulated pair, simulated clock; also run under MicroPython (tools/mpytest).
"""

from hanode.core.node import MIN_FRAME_GAP_MS
from tests.support.sim import Sim
from tests.core.util import record, settled_pair

GROUP = "192.0.2.100"   # preferred by node1


def cold_start(**kwargs):
    return settled_pair(Sim(**kwargs))


def test_keeper_announces_once_when_a_healed_split_brain_is_resolved():
    sim = cold_start(probe="off")
    n1, n2 = sim.box("node1"), sim.box("node2")
    announced1 = record(n1, "announce")
    announced2 = record(n2, "announce")
    sim.set_cut(True)
    assert sim.run_until(lambda: sim.holders() == ["node1", "node2"], 3000) is not None   # vip_probe off
    sim.run(1000)
    sim.set_cut(False)
    healed = sim.now
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 3000) is not None
    released = sim.now
    sim.run(2000)
    assert [o.group for _, o in announced1] == [GROUP], announced1
    assert announced2 == []                                     # the loser announces nothing
    at = announced1[0][0]
    # (node2's frame saying so may wait MIN_FRAME_GAP_MS behind the one it sent with node1's)
    assert healed < at <= released + sim.delay_ms + 2 * sim.tick_ms + 13 + MIN_FRAME_GAP_MS, (
        healed, at, released)
    assert "node2 released resource group %s, which we hold: announcing" % GROUP in n1.log_text()


def test_an_ordinary_failback_needs_no_extra_announcement():
    """The node that takes a group over announces it as part of the acquire; the peer releasing
    a group we are still starting is not a "keep"."""
    sim = cold_start()
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    sim.power_on("node1")
    n1, n2 = sim.box("node1"), sim.box("node2")
    a1, a2 = record(n1, "announce"), record(n2, "announce")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    sim.run(1000)
    assert a1 == [] and a2 == []


def test_keeper_announces_when_the_loser_released_before_its_first_frame_arrived():
    """The heal reaches the loser first: it hears the keeper, releases, and only then does its
    first frame reach the keeper - a frame that never showed the group held.  The keeper must
    still announce (seen on the lab pair under CI load: the client stayed on the loser's MAC)."""
    sim = cold_start(probe="off")
    n1 = sim.box("node1")
    announced1 = record(n1, "announce")
    sim.set_cut(True)
    assert sim.run_until(lambda: sim.holders() == ["node1", "node2"], 3000) is not None
    sim.run(1000)
    sim.set_muted("node2", True)       # node2 hears node1 again; node1 does not hear node2 yet
    sim.set_cut(False)
    assert sim.run_until(lambda: sim.holders() == ["node1"], 3000) is not None
    sim.run(300)
    assert announced1 == []
    sim.set_muted("node2", False)
    heard = sim.now
    assert sim.run_until(lambda: announced1 != [], 1000) is not None
    assert [o.group for _, o in announced1] == [GROUP]
    assert announced1[0][0] <= heard + sim.cfg.keepalive_ms + sim.delay_ms + 2 * sim.tick_ms + 13
    assert "node2 is back and does not hold resource group %s, which we hold: announcing" % GROUP \
        in n1.log_text()
    sim.run(2000)
    assert len(announced1) == 1 and sim.holders() == ["node1"]


def test_a_partition_without_a_split_brain_announces_once_on_heal():
    """vip_probe on: the loser found the address answered and took nothing.  The keeper's one
    announcement on heal is harmless (it owns the address); the loser announces nothing."""
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    announced1, announced2 = record(n1, "announce"), record(n2, "announce")
    sim.set_cut(True)
    sim.run(3000)
    assert sim.holders() == ["node1"]
    sim.set_cut(False)
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 3000) is not None
    sim.run(1000)
    assert [o.group for _, o in announced1] == [GROUP] and announced2 == []
