"""Address conflicts after the probe (issue 13 finding 5, RFC 5227 section 2.4), on a
simulated clock (also run under MicroPython).

Two boxes that each think the other dead can both probe, hear nothing and add the VIP.
The runner keeps listening while it holds the address and reports every ARP from another
MAC that claims it (``Node.conflict``); these tests pin the core's side: the preferred node
keeps the address and defends it, at most once per DEFEND_INTERVAL_MS; the other drops the
address at once and releases the group through the ownership table, and probes again later.
"""

from tests.support.sim import make_config
from hanode.core import ownership
from hanode.core.node import Node, DEFEND_INTERVAL_MS

KEY = "192.0.2.100"
INITDEAD_MS = 2000   # make_config's initdead


def kinds(out):
    return [o.kind for o in out]


def at(node, now, when):
    """Tick ``node`` every 50 ms from ``now`` to ``when`` (a node that is not called for longer
    than the dead time counts itself stalled); the outputs of the ticks are dropped."""
    while now + 50 < when:
        now += 50
        node.tick(now)
    return when


def alone(me, until_state=ownership.RUNNING):
    """A node whose peer was never heard, taken to ``until_state`` of the group; (node, now)."""
    node = Node(make_config(me=me), me=me)
    node.start(0)
    now = 0
    out = []
    while "probe" not in kinds(out):
        now += 25
        assert now < INITDEAD_MS + 1000, "no probe after initdead"
        out = node.tick(now)
    out = node.probed(KEY, False, now, "nobody answered")
    assert "acquire" in kinds(out)
    if until_state == ownership.RUNNING:
        node.completed(KEY, True, now)
    assert node.groups[0].state == until_state
    return node, now


def test_the_preferred_node_keeps_the_address_and_defends_it_once_per_interval():
    node, now = alone("node1")
    out = node.conflict(KEY, now + 10, "192.0.2.100 is claimed by 02:00:00:00:00:02 on eth0")
    assert "defend" in kinds(out) and "release" not in kinds(out)
    logs = [o.text for o in out if o.kind == "log"]
    assert len(logs) == 1 and "02:00:00:00:00:02" in logs[0] and "preferred" in logs[0]
    # the rival's next announcements, within the interval: no second defence, no second line
    t = now + 10
    for dt in (200, 400, 800, DEFEND_INTERVAL_MS - 1):
        t = at(node, t, now + 10 + dt)
        out = node.conflict(KEY, t, "again")
        assert kinds(out).count("defend") == 0 and kinds(out).count("log") == 0, out
    assert node.groups[0].state == ownership.RUNNING
    out = node.conflict(KEY, at(node, t, now + 10 + DEFEND_INTERVAL_MS), "again")
    assert kinds(out).count("defend") == 1
    assert node.counters["vip_conflicts"] == 6


def test_the_other_node_releases_and_probes_again_later():
    node, now = alone("node2")
    out = node.conflict(KEY, now + 10, "192.0.2.100 is claimed by 02:00:00:00:00:01 on eth0")
    assert "defend" not in kinds(out)
    # the address first (the scripts' stop takes time), then the group
    assert kinds(out).index("drop_addresses") < kinds(out).index("release")
    assert node.groups[0].state == ownership.STOPPING
    assert any("node1 keeps it" in o.text for o in out if o.kind == "log")
    out = node.conflict(KEY, now + 20, "again")          # more of its announcements
    assert kinds(out).count("release") == 0 and kinds(out).count("log") == 0
    assert kinds(out).count("drop_addresses") == 0
    node.completed(KEY, True, now + 30)
    assert node.groups[0].state == ownership.STOPPED
    # not at once: the address answers on the LAN now; the probe comes after the retry time
    t = now + 30
    probe_at = None
    while t < now + 2000:
        t += 10
        if "probe" in kinds(node.tick(t)):
            probe_at = t
            break
    assert probe_at is not None and probe_at - (now + 10) >= node._probe_retry_ms(node.groups[0])
    out = node.probed(KEY, True, probe_at, "192.0.2.100 is answered by 02:00:00:00:00:01")
    assert node.groups[0].state == ownership.STOPPED and "acquire" not in kinds(out)
    assert node.groups[0].unlisted == 0


def test_a_conflict_heard_while_starting_gives_the_start_up_and_releases():
    node, now = alone("node2", until_state=ownership.STARTING)
    out = node.conflict(KEY, now + 5, "a rival probe from 02:00:00:00:00:01")
    assert "drop_addresses" in kinds(out) and "release" not in kinds(out)   # not under its own start
    assert node.groups[0].state == ownership.STARTING
    out = node.conflict(KEY, now + 6, "again")
    assert kinds(out).count("drop_addresses") == 0
    # the runner's acquire gives up at its next step: a failure that is not counted as one
    out = node.completed(KEY, False, now + 50)
    assert "release" in kinds(out) and node.groups[0].state == ownership.STOPPING
    assert not any("failed start" in o.text for o in out if o.kind == "log")
    assert node.counters["start_failures"] == 0 and not node.intents[0].failed
    node.completed(KEY, True, now + 60)
    assert node.groups[0].state == ownership.STOPPED and not node.intents[0].conflict_pending


def test_a_start_that_ended_before_it_could_give_up_is_released():
    node, now = alone("node2", until_state=ownership.STARTING)
    node.conflict(KEY, now + 5, "192.0.2.100 is claimed by 02:00:00:00:00:01 on eth0")
    out = node.completed(KEY, True, now + 50)
    assert "release" in kinds(out) and node.groups[0].state == ownership.STOPPING
    node.completed(KEY, True, now + 60)
    assert node.groups[0].state == ownership.STOPPED and node.groups[0].unlisted == 0


def test_a_conflict_for_a_group_we_do_not_hold_is_ignored():
    node = Node(make_config(me="node2"), me="node2")
    node.start(0)
    out = node.conflict(KEY, 100, "someone")
    assert kinds(out).count("release") == 0 and kinds(out).count("defend") == 0
    assert node.counters["vip_conflicts"] == 0 and node.groups[0].unlisted == 0


def test_a_stranger_claiming_the_address_while_the_peer_is_alive_is_defended():
    from tests.support.sim import Sim
    sim = Sim()
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    # node2 holds it (auto_failback off would leave it there; here: node1 goes standby)
    n1 = sim.box("node1")
    n1.handle(n1.node.standby(sim.now))
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    n2 = sim.box("node2").node
    out = n2.conflict(KEY, sim.now, "192.0.2.100 is claimed by 02:00:00:00:00:99 on eth0")
    assert "defend" in kinds(out) and "release" not in kinds(out)
    assert any("not node1" in o.text for o in out if o.kind == "log")


def test_a_stale_node_yields_though_the_peers_last_frame_before_the_stall_claims_nothing():
    """Our loop stalled past the dead time; the peer took over meanwhile. After the stall the
    conflict with its address can reach the core before the peer's newer frames do (the agent
    reads the LAN and the serial line apart): the frame we have from before the stall, which
    claims nothing, must not make the peer a stranger to defend against (found by the lab:
    vip_probe off, SIGSTOP/SIGCONT of the holder)."""
    from tests.support.sim import Sim
    sim = Sim()
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    n1 = sim.box("node1").node
    stalled_until = sim.now + 3 * n1.config.deadtime_ms
    out = n1.conflict(KEY, stalled_until, "192.0.2.100 is claimed by 02:00:00:00:00:02 on eth0")
    assert n1.stale
    assert "release" in kinds(out) and "defend" not in kinds(out), out
    assert any("our loop stalled" in o.text for o in out if o.kind == "log")


def test_a_stale_preferred_node_yields_instead_of_defending():
    node, now = alone("node1")
    # our loop stalls past the dead time: the peer may have taken over meanwhile
    out = node.conflict(KEY, now + 3000, "192.0.2.100 is claimed by 02:00:00:00:00:02 on eth0")
    assert node.stale
    assert "release" in kinds(out) and "defend" not in kinds(out)
    assert any("our loop stalled" in o.text for o in out if o.kind == "log")


def test_with_vip_probe_off_a_yielded_address_is_probed_before_it_is_retaken():
    node = Node(make_config(me="node2", probe="off"), me="node2")
    node.start(0)
    now, out = 0, []
    while "acquire" not in kinds(out):     # peer never heard: taken blind after initdead
        now += 25
        out = node.tick(now)
    node.completed(KEY, True, now)
    node.conflict(KEY, now + 10, "192.0.2.100 is claimed by 02:00:00:00:00:01 on eth0")
    node.completed(KEY, True, now + 20)
    t, out = now + 20, []
    while t < now + 3000 and not ({"probe", "acquire"} & set(kinds(out))):
        t += 25
        out = node.tick(t)
    assert "probe" in kinds(out) and "acquire" not in kinds(out), out
    node.probed(KEY, True, t, "192.0.2.100 is answered by 02:00:00:00:00:01")
    out = node.probed(KEY, False, t + 500, "nobody answered")   # not probing: ignored
    # once the address is free again the next probe lets it be taken, and later takeovers are
    # blind again (vip_probe off)
    while "probe" not in kinds(out):
        t += 25
        out = node.tick(t)
    assert "acquire" in kinds(node.probed(KEY, False, t, "nobody answered"))
    assert not node.intents[0].yielded
