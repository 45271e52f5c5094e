"""LAN health (issue 14): the active box's LAN loss moves its groups, decided over the cable.

Plain ``test_*`` functions on the simulated pair (also run under MicroPython).  The settle times
are health.py's, derived from the dead time (500 ms here): a loss counts after 100 ms, a gain
after 1000 ms.
"""

from hanode.core import health
from hanode.core.frame import VERSION, VERSION_LAN
from hanode.core.node import Node
from tests.core.test_node import cold_start
from tests.support.sim import Sim

DEADTIME_MS = 500
# A lone LAN loss on the holder moves the group within: the adapter's report, the loss settle
# time, the frames both ways (a keepalive each, the line's delay), the old holder's stop and the
# new one's start (50 ms each in the sim), plus 100 ms.
MOVE_BOUND_MS = (5 + health.loss_settle_ms(DEADTIME_MS) + health.verdict_delay_ms(DEADTIME_MS, 100)
                 + 2 * (100 + 13) + 2 * 50 + 100)     # (the ping node's verdict delay: the longer one)


def moves(sim, ms, step_ms=5):
    """Run ``ms``; count the times the group's server changed (to a new server, not to nobody)."""
    count, last = 0, sim.servers()
    for _ in range(ms // step_ms):
        sim.step()
        now = sim.servers()
        if now and now != last:
            if last:
                count += 1
            last = now
    return count


def test_health_counts_only_after_its_settle_time_and_ignores_a_flap():
    h = health.LanHealth()
    assert h.report(3, 0) and h.counted == 3 and h.state == health.STEADY   # the first report counts
    assert not h.report(0, 1000)
    assert h.state == health.SETTLING and h.due(DEADTIME_MS) == 1100
    assert not h.tick(1099, DEADTIME_MS) and h.counted == 3
    assert not h.report(3, 1050) and h.state == health.STEADY and h.flaps == 1   # back in time
    assert not h.tick(2000, DEADTIME_MS) and h.counted == 3
    h.report(0, 3000)
    assert h.tick(3100, DEADTIME_MS) and h.counted == 0 and h.changes == 1
    h.report(3, 4000)
    assert h.due(DEADTIME_MS) == 5000          # a gain waits twice the dead time
    assert not h.tick(4999, DEADTIME_MS) and h.tick(5000, DEADTIME_MS) and h.counted == 3
    assert h.unlisted == 0


def test_health_values_and_the_rule():
    assert health.health_of(False, 3) == 0 and health.health_of(True, 0) == 1
    assert health.health_of(True, 99) == health.MAX_HEALTH
    assert health.lan_rule(None, 2) is None and health.lan_rule(2, None) is None
    assert health.lan_rule(1, 1) is None and health.lan_rule(0, 0) is None
    assert health.lan_rule(2, 1) is True and health.lan_rule(0, 1) is False
    assert "both LANs down" in health.why(0, 0, "node1", "node2")
    assert "LAN of node1 is worse" in health.why(0, 1, "node1", "node2")


def test_a_lone_lan_loss_on_the_active_moves_the_group_within_the_bound():
    sim = cold_start()
    sim.run(2000)
    assert sim.servers() == ["node1"]
    sim.set_lan_link("node1", False)
    took = sim.run_until(lambda: sim.servers() == ["node2"], 5000)
    assert took is not None and took <= MOVE_BOUND_MS, (took, MOVE_BOUND_MS, sim.box("node1").log_text())
    assert sim.doubles_ms == 0
    st = sim.box("node1").node.status()
    assert st["lan"]["own"]["health"] == 0 and st["lan"]["peer"] == 2   # carrier + its ping node
    assert "LAN of node1 is worse" in st["lan"]["why"], st["lan"]
    assert st["lan"]["verdict"] == "peer's" and sim.box("node2").node.status()["lan"]["verdict"] == "ours"
    assert "LAN node2 2 > node1 0" in sim.box("node2").node.status()["summary"]


def test_the_group_comes_back_on_auto_failback_once_the_lan_is_stable():
    sim = cold_start()
    sim.set_lan_link("node1", False)
    assert sim.run_until(lambda: sim.servers() == ["node2"], 5000) is not None
    sim.run(500)
    sim.set_lan_link("node1", True)
    took = sim.run_until(lambda: sim.servers() == ["node1"], 5000)
    gain = health.gain_settle_ms(DEADTIME_MS)
    assert took is not None and gain <= took <= gain + MOVE_BOUND_MS, (took, gain)
    # (equal health again: auto_failback decides, no verdict delay)
    assert sim.doubles_ms == 0


def test_with_auto_failback_off_the_group_stays_on_the_box_it_moved_to():
    sim = cold_start(failback="off")
    sim.set_lan_link("node1", False)
    assert sim.run_until(lambda: sim.servers() == ["node2"], 5000) is not None
    sim.set_lan_link("node1", True)
    sim.run(5000)
    assert sim.servers() == ["node2"] and sim.doubles_ms == 0


def test_both_boxes_losing_the_lan_moves_nothing_and_status_says_why():
    sim = cold_start()
    sim.set_lan(False)     # the switch: both boxes lose their carrier
    assert moves(sim, 5000) == 0
    assert sim.servers() == ["node1"] and sim.box("node2").node.status()["counters"]["failovers"] == 0
    for name in ("node1", "node2"):
        st = sim.box(name).node.status()["lan"]
        assert st["own"]["health"] == 0 and st["peer"] == 0
        assert "both LANs down" in st["why"], st


def test_the_peer_losing_its_lan_moves_nothing():
    sim = cold_start()
    sim.set_lan_link("node2", False)
    assert moves(sim, 5000) == 0 and sim.servers() == ["node1"]


def test_a_lost_ping_node_on_the_active_only_moves_the_group():
    sim = cold_start()
    sim.set_ping("node1", False)
    took = sim.run_until(lambda: sim.servers() == ["node2"], 5000)
    assert took is not None and took <= MOVE_BOUND_MS, took
    assert sim.box("node1").node.status()["lan"]["own"]["health"] == 1   # carrier, no ping node
    assert sim.doubles_ms == 0


def test_a_flapping_port_moves_the_group_at_most_once_per_gain_settle_time():
    sim = cold_start()
    count = 0
    for i in range(40):    # 300 ms down, 300 ms up, for 24 s: never stable for the gain time
        sim.set_lan_link("node1", i % 2 == 1)
        count += moves(sim, 300)
    assert count <= 1, count
    assert sim.doubles_ms == 0
    sim.set_lan_link("node1", True)
    assert sim.run_until(lambda: sim.servers() == ["node1"], 5000) is not None   # stable: it returns


def test_a_blip_shorter_than_the_loss_settle_time_moves_nothing():
    sim = cold_start()
    sim.set_lan_link("node1", False)
    sim.run(health.loss_settle_ms(DEADTIME_MS) // 2)
    sim.set_lan_link("node1", True)
    assert moves(sim, 3000) == 0 and sim.servers() == ["node1"]
    assert sim.box("node1").node.status()["lan"]["own"]["flaps"] == 1


def test_a_box_alone_takes_its_groups_whatever_its_lan():
    sim = Sim()
    sim.set_lan_link("node2", False)
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.servers() == ["node2"], 5000) is not None


def test_a_box_with_a_dead_lan_does_not_take_the_group_from_a_peer_with_a_good_one():
    sim = Sim()
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.servers() == ["node2"], 5000) is not None
    sim.set_lan_link("node1", False)
    sim.power_on("node1")     # the preferred box, booted with its cable out
    assert moves(sim, 5000) == 0 and sim.servers() == ["node2"]


class PreviousRelease(Node):
    """A node of the release before LAN health: it sends version 1 only and drops version 2."""

    def _versions(self):
        return (VERSION,)

    def lan(self, value, now, detail=""):
        return []

    def _on_frame(self, f, link, now, out):
        if f.version != VERSION:
            return   # its decoder dropped these as "version"
        Node._on_frame(self, f, link, now, out)


def _mixed(old):
    sim = Sim()
    for name in ("node1", "node2"):
        sim.node_class = PreviousRelease if name == old else Node   # the class the box is built with
        sim.power_on(name)
    sim.node_class = Node
    assert isinstance(sim.box(old).node, PreviousRelease)
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    return sim


def test_a_peer_of_the_previous_release_keeps_working_and_the_lan_moves_nothing():
    for old in ("node1", "node2"):
        sim = _mixed(old)
        new = sim.other(old)
        assert moves(sim, 3000) == 0 and sim.doubles_ms == 0
        assert sim.box(old).node.status()["counters"]["failovers"] == 0
        assert new.node.status()["lan"]["peer_version"] == VERSION
        sim.set_lan_link("node1", False)
        sim.set_lan_link("node2", False)
        assert moves(sim, 3000) == 0 and sim.servers() == ["node1"]
        sim.set_lan_link("node1", True)
        sim.set_lan_link("node2", True)
        sim.power_off(old)
        assert sim.run_until(lambda: sim.servers() == [new.name], 5000) is not None


def test_two_new_boxes_speak_version_2():
    sim = cold_start()
    for name in ("node1", "node2"):
        st = sim.box(name).node.status()["lan"]
        assert st["peer_version"] == VERSION_LAN and st["peer"] == 2


def test_both_boxes_losing_the_lan_a_little_apart_moves_nothing():
    for apart_ms in (0, 20, 60, 95, 190):
        sim = cold_start()
        sim.run(1000)
        sim.set_lan_link("node1", False)       # the holder first: for a moment node2 looks better
        sim.run(apart_ms)
        sim.set_lan_link("node2", False)
        assert moves(sim, 3000) == 0 and sim.servers() == ["node1"], (apart_ms, sim.box("node1").log_text())
        assert sim.doubles_ms == 0


def test_a_ping_node_both_boxes_lose_a_keepalive_apart_moves_nothing():
    sim = cold_start()
    sim.set_ping("node1", False)
    sim.run(190)      # the same ping node, lost a little under two probe rounds apart
    sim.set_ping("node2", False)
    assert moves(sim, 3000) == 0 and sim.servers() == ["node1"]
    st = sim.box("node2").node.status()["lan"]
    assert st["own"]["health"] == 1 and st["peer"] == 1 and "equal" in st["why"]


def test_the_verdict_delay_is_short_for_a_carrier_and_two_probe_rounds_for_a_ping_node():
    assert health.verdict_delay_ms(500, 100, 0, 2) == health.loss_settle_ms(500) == 100
    assert health.verdict_delay_ms(500, 100, 1, 2) == 200
    assert health.verdict_delay_ms(15000, 1000, 1, 2) == 3000
    assert health.verdict_delay_ms(500, 100) == 200


def test_the_verdict_waits_its_delay():
    c = health.Comparison()
    assert c.rule(2, 1, 0, 100) == health.PENDING and c.due(100) == 100
    assert c.rule(2, 1, 99, 100) == health.PENDING and c.rule(2, 1, 100, 100) is True
    assert c.rule(1, 1, 150, 100) is None and c.due(100) is None     # equal: no verdict to wait for
    assert c.rule(0, 1, 200, 100) == health.PENDING and c.rule(0, 1, 300, 100) is False
    assert c.rule(None, 1, 400, 100) is None
