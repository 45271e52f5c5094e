"""Agent restart without failover (issue 15): the leaving agent's NOTICE, the peer's hold-off, the
next agent's adoption.  Simulated pair, simulated clock; also run under MicroPython (tools/mpytest).

``Sim.restart_agent`` is ``hanode restart`` (the node announces, then stops; the box's resources
stay up); ``Sim.agent_back`` starts the next agent on the same box (a new generation) with what
still runs.
"""

from tests.support.sim import Sim
from tests.core.util import record, settled_pair
from hanode.core.auth import Auth
from hanode.core.frame import Decoder, Notice, TYPE_NOTICE, cobs_decode, decode_one, encode
from hanode.core.limits import CONTROL_WIRE_BYTES
from hanode.core.node import NOTICE_GAP_MS, RESTART_NOTICES

GROUP = "192.0.2.100"     # preferred by node1
TWO_GROUPS = "node1 192.0.2.100 httpd\nnode2 192.0.2.101 db\n"
GRACE = "restart_grace 3\n"


def pair(**kw):
    kw.setdefault("extra", GRACE)
    sim = Sim(**kw)
    return settled_pair(sim)


def frame_type(data):
    return (cobs_decode(data[:-1])[0] >> 4) & 3


class Watch:
    """Over a run: did the group ever have no server, or two holders; did node2 start anything?"""

    def __init__(self, sim, key=GROUP):
        self.sim, self.key = sim, key
        self.unserved = self.double = 0

    def run(self, ms):
        end = self.sim.now + ms
        while self.sim.now < end:
            self.sim.step()
            if not self.sim.servers(self.key):
                self.unserved += self.sim.tick_ms
            if len(self.sim.holders(self.key)) > 1:
                self.double += self.sim.tick_ms


def test_notice_round_trip_and_size():
    auth = Auth(1, {1: ("hmac-sha256", b"0123456789abcdef")})
    n = Notice(src=1, target=0, gen=7, seq=42, restarting=True, grace_ms=30000, revision=0xabcdef012345,
               held=0x05, want=0x01)
    wire = encode(n, auth)
    assert len(wire) == CONTROL_WIRE_BYTES
    assert frame_type(wire) == TYPE_NOTICE
    got, reason = decode_one(wire[:-1], auth)
    assert reason == "ok" and got == n and got.restarting and got.revision == 0xabcdef012345
    plain = Notice(src=0, target=1, gen=1, seq=1, revision=1)
    assert decode_one(encode(plain, auth)[:-1], auth)[0] == plain
    assert Decoder(auth).feed(wire) == [n]


def test_restart_of_the_holder_keeps_the_group_and_the_peer_holds_off():
    sim = pair()
    before = sim.box("node1").node.gen
    node2 = sim.box("node2")
    sent = record(sim.box("node1"))
    starts = node2.starts
    watch = Watch(sim)
    sim.restart_agent("node1")
    watch.run(400)
    notices = [o for _, o in sent if frame_type(o.data) == TYPE_NOTICE]
    assert len(notices) == RESTART_NOTICES
    assert [t for t, o in sent][-1] - [t for t, o in sent][0] == (RESTART_NOTICES - 1) * NOTICE_GAP_MS
    assert sim.box("node1").stopped
    watch.run(2000)          # silent 2.4 s: four dead times; the grace is 3 s
    assert "not taking over for up to 3000 ms" in node2.log_text()
    assert "restarting its agent: holding off" in node2.log_text()
    assert node2.node.live.alive() and node2.starts == starts
    new = sim.agent_back("node1")
    watch.run(1500)
    assert new.node.gen == before + 1
    assert sim.holders() == ["node1"] and node2.starts == starts
    assert watch.unserved == 0 and watch.double == 0
    text = node2.log_text()
    assert "Heartbeat restart on node node1" in text and "restarted its agent in" in text
    assert "it kept 192.0.2.100" in text
    assert "is dead" not in text and node2.node.peer_restart is None
    assert node2.node.counters["peer_restarts_held"] == 1
    # the adopted group: its start ran again (skips what runs) and it is running, not released
    assert new.node.running_groups() == [GROUP] and "adopting it" in new.log_text()


def test_a_restart_that_does_not_come_back_fails_over_after_the_grace():
    sim = pair()
    node2 = sim.box("node2")
    sim.restart_agent("node1")
    t0 = sim.now
    # the box's resources stay up (no agent there); at the grace's end the restart guard
    # releases them (or the watchdog resets the box): modelled as a power-off
    assert sim.run_until(lambda: node2.node.peer_restart is not None, 200) is not None
    assert sim.run_until(lambda: node2.node.peer_restart is None, 5000) is not None
    assert 3000 <= sim.now - t0 <= 3000 + 100   # from the notice's arrival
    assert "did not come back within its restart grace (3000 ms)" in node2.log_text()
    assert sim.holders() == ["node1"]       # probed first: the address still answers there
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.servers() == ["node2"], 3000) is not None
    assert node2.node.counters["peer_restart_timeouts"] == 1


def test_a_replayed_notice_buys_no_grace():
    sim = pair()
    node1 = sim.box("node1")
    sent = record(node1)
    sim.restart_agent("node1")
    sim.run(300)
    recorded = [o.data for _, o in sent if frame_type(o.data) == TYPE_NOTICE]
    sim.agent_back("node1")
    sim.run(1500)
    node2 = sim.box("node2")
    assert node2.node.peer_restart is None
    # node1 dies; somebody plays node1's recorded notices (of its earlier life) to node2
    sim.power_off("node1")
    for data in recorded:
        node2.handle(node2.node.receive(data, sim.now))
    assert node2.node.peer_restart is None
    t0 = sim.now
    assert sim.run_until(lambda: not node2.node.live.alive(), 3000) is not None
    assert sim.now - t0 <= sim.cfg.deadtime_ms + 2 * sim.cfg.keepalive_ms
    assert sim.run_until(lambda: sim.servers() == ["node2"], 3000) is not None


def test_grace_is_the_shorter_of_the_two_boxes():
    sim = Sim(extra=GRACE)
    sim.configs["node2"].restart_grace_ms = 1000
    settled_pair(sim)
    node2 = sim.box("node2")
    sim.restart_agent("node1")
    t0 = sim.now
    assert sim.run_until(lambda: not node2.node.live.alive(), 5000) is not None
    assert 1000 <= sim.now - t0 <= 1000 + 100


def test_restart_refused_while_a_group_is_busy():
    sim = Sim(extra=GRACE)
    sim.power_on("node1")
    sim.power_on("node2")
    node1 = sim.box("node1")
    assert sim.run_until(lambda: node1.node.groups[0].busy(), 5000) is not None
    ok, why = node1.node.can_restart()
    assert not ok and "try again" in why
    node1.handle(node1.node.restart(sim.now))
    assert node1.node.restarting is None and "restart refused" in node1.log_text()


def test_both_boxes_restart_at_the_same_instant():
    sim = pair(haresources=TWO_GROUPS)
    assert sim.run_until(lambda: sim.holders("192.0.2.101") == ["node2"] and sim.settled("192.0.2.101"),
                         5000) is not None
    one, two = Watch(sim, GROUP), Watch(sim, "192.0.2.101")
    sim.restart_agent("node1")
    sim.restart_agent("node2")
    for _ in range(40):
        sim.step()
        for w in (one, two):
            w.run(0)
    sim.run(1000)
    sim.agent_back("node1")
    sim.agent_back("node2")
    end = sim.now + 3000
    while sim.now < end:
        sim.step()
        for key, w in ((GROUP, one), ("192.0.2.101", two)):
            if not sim.servers(key):
                w.unserved += sim.tick_ms
            if len(sim.holders(key)) > 1:
                w.double += sim.tick_ms
    assert sim.holders(GROUP) == ["node1"] and sim.holders("192.0.2.101") == ["node2"]
    assert one.unserved == two.unserved == 0 and one.double == two.double == 0
    for name in ("node1", "node2"):
        assert sim.box(name).node.live.alive()


def test_the_peer_dies_during_the_grace():
    sim = pair(haresources=TWO_GROUPS)
    assert sim.run_until(lambda: sim.holders("192.0.2.101") == ["node2"], 5000) is not None
    sim.run(500)
    watch = Watch(sim)
    sim.restart_agent("node1")
    watch.run(500)
    sim.power_off("node2")
    watch.run(500)
    new = sim.agent_back("node1")
    # node2 never heard by the new agent: it keeps what it adopted, and takes node2's group
    # after initdead (probing first)
    watch.run(sim.cfg.initdead_ms + 2000)
    assert watch.unserved == 0
    assert sim.servers(GROUP) == ["node1"] and sim.servers("192.0.2.101") == ["node1"]
    assert new.node.running_groups() == [GROUP, "192.0.2.101"]


def test_a_restart_with_the_state_wiped_still_adopts_and_rejoins():
    sim = Sim(extra=GRACE)
    sim.persist_floors = True
    settled_pair(sim)
    sim.restart_agent("node1")      # a first, ordinary restart: node1 runs generation 2
    sim.run(500)
    sim.agent_back("node1")
    sim.run(1000)
    node2 = sim.box("node2")
    starts = node2.starts
    watch = Watch(sim)
    sim.restart_agent("node1")
    watch.run(1000)
    new = sim.agent_back("node1", forget=True)      # generation 1 again, below node2's floor 2
    watch.run(3000)
    assert new.node.counters["generation_jumps"] == 1
    assert node2.node.counters["rejoins"] == 1 and node2.node.live.alive()
    assert sim.holders() == ["node1"] and node2.starts == starts
    assert watch.unserved == 0 and watch.double == 0


def test_the_revision_goes_to_the_peer_and_into_status():
    sim = Sim()
    sim.power_on("node1")
    b1 = sim.box("node1")
    b1.handle(b1.node.set_revision(0x0123456789ab, sim.now))
    sim.power_on("node2")
    b2 = sim.box("node2")
    b2.handle(b2.node.set_revision(0xba9876543210, sim.now))
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    sim.run(500)
    assert b2.node.status()["peer_revision"] == "0123456789ab"
    assert b1.node.status()["peer_revision"] == "ba9876543210"
    assert b1.node.status()["revision"] == "0123456789ab"
    # a reload on node1: the new revision reaches node2 at once
    b1.handle(b1.node.set_revision(0x111111111111, sim.now))
    sim.run(200)
    assert b2.node.status()["peer_revision"] == "111111111111"
    assert "ours is ba9876543210" in b2.log_text()


def test_a_restarting_peer_that_keeps_nothing_gets_no_grace():
    sim = pair()
    node1 = sim.box("node1")
    sim.restart_agent("node2")          # holds nothing: its silence is an ordinary death
    t0 = sim.now
    assert sim.run_until(lambda: not node1.node.live.alive(), 3000) is not None
    assert sim.now - t0 <= sim.cfg.deadtime_ms + 2 * sim.cfg.keepalive_ms
    assert node1.node.peer_restart is None and node1.node.counters["peer_restarts_held"] == 0
    assert sim.servers() == ["node1"]


def test_restart_grace_is_checked_with_its_line():
    from hanode.core.config import ConfigError
    from tests.support.sim import make_config
    assert make_config().restart_grace_ms == 30000
    assert make_config(extra="restart_grace 2500ms\n").restart_grace_ms == 2500
    for bad in ("restart_grace 0\n", "restart_grace 601\n"):
        try:
            make_config(extra=bad)
        except ConfigError as e:
            errors = [str(p) for p in e.problems if p.level == "error"]
            assert len(errors) == 1 and "ha.cf:12: error: restart_grace" in errors[0], errors
        else:
            raise AssertionError("accepted " + bad)
