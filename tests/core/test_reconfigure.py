"""Node.reconfigure on the simulated pair (also run under MicroPython): what a reload puts in force.

Key rotation, changed timings and changed resources of a running group, each on a live pair
whose line and resources are simulated; the daemon's side (which changes are allowed at all)
is tests/adapters/test_reload.py.
"""

from tests.support.sim import HA_CF, HARESOURCES, Sim
from hanode.core.config import parse

KEY1 = "1 hmac-sha256 0123456789abcdef0123456789abcdef\n"
KEY2 = "2 hmac-sha256 fedcba9876543210fedcba9876543210\n"


def config(me, auth=1, keys=KEY1, keepalive="100ms", warntime="300ms", deadtime="500ms",
           haresources=HARESOURCES):
    text = HA_CF.format(keepalive=keepalive, warntime=warntime, deadtime=deadtime, initdead="2",
                        failback="on", probe="on")
    return parse(text, "auth %d\n%s" % (auth, keys), haresources, me=me)


def pair():
    sim = Sim()
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    sim.run(1000)
    return sim


def reload(sim, name, **kwargs):
    box = sim.box(name)
    box.handle(box.node.reconfigure(config(name, **kwargs), sim.now))


def rejected(sim, name):
    c = sim.box(name).node.status()["counters"]["dropped"]
    return c["unknown_key"] + c["bad_tag"]


def quiet(sim, ms=2000):
    """Run ms; the pair must stay whole: nobody declared dead, one holder, no late heartbeat."""
    before = [sim.box(n).node.status()["counters"] for n in ("node1", "node2")]
    sim.run(ms)
    after = [sim.box(n).node.status()["counters"] for n in ("node1", "node2")]
    for b, a in zip(before, after):
        assert a["failovers"] == b["failovers"] and a["late_heartbeats"] == b["late_heartbeats"], (b, a)
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0
    assert all(sim.box(n).node.live.alive() for n in ("node1", "node2"))


def test_key_rotation_by_the_documented_procedure_drops_no_frame():
    sim = pair()
    steps = [  # (node, auth, keys): add the new key on both, switch on both, remove the old
        ("node1", 1, KEY1 + KEY2), ("node2", 1, KEY1 + KEY2),
        ("node1", 2, KEY1 + KEY2), ("node2", 2, KEY1 + KEY2),
        ("node1", 2, KEY2), ("node2", 2, KEY2),
    ]
    for name, auth, keys in steps:
        reload(sim, name, auth=auth, keys=keys)
        quiet(sim, 700)
        assert rejected(sim, "node1") == 0 and rejected(sim, "node2") == 0
    assert sim.box("node1").node.status()["auth_index"] == 2
    quiet(sim)


def test_a_key_switched_before_the_peer_knows_it_is_rejected_there():
    # the reason for the procedure's order: node2 does not know key 2 yet
    sim = pair()
    reload(sim, "node1", auth=2, keys=KEY1 + KEY2)
    sim.run(300)
    assert rejected(sim, "node2") > 0


def test_new_timings_take_effect_at_once_without_a_failover():
    sim = pair()
    reload(sim, "node1", deadtime="1500ms", warntime="700ms")
    reload(sim, "node2", deadtime="1500ms", warntime="700ms")
    quiet(sim, 1000)
    reload(sim, "node1", keepalive="400ms", deadtime="1500ms", warntime="700ms")
    reload(sim, "node2", keepalive="400ms", deadtime="1500ms", warntime="700ms")
    sent = sim.box("node1").node.counters["frames_sent"]
    quiet(sim, 4000)
    assert sim.box("node1").node.counters["frames_sent"] - sent <= 4000 // 400 + 2
    st = sim.box("node2").node.status()
    assert st["timings"]["keepalive_ms"] == 400 and st["timings"]["deadtime_ms"] == 1500
    # and the new deadtime is the one that judges: node1 silent for 1 s is still alive
    sim.set_cut(True)
    sim.run(1000)
    assert sim.box("node2").node.live.alive()
    assert sim.run_until(lambda: not sim.box("node2").node.live.alive(), 1000) is not None


def test_a_running_group_keeps_its_definition_until_its_next_hand_over():
    sim = pair()
    changed = "node1 192.0.2.100 httpd mysql\n"
    for name in ("node1", "node2"):
        reload(sim, name, haresources=changed)
    n1, n2 = sim.box("node1").node, sim.box("node2").node
    assert n1.status()["groups"][0]["pending"] == ["192.0.2.100", "httpd", "mysql"]
    assert [r.token for r in n1.groups[0].group.resources] == ["192.0.2.100", "httpd"]
    assert n2.status()["groups"][0]["pending"] is None   # stopped on node2: in force at once
    assert [r.token for r in n2.groups[0].group.resources] == ["192.0.2.100", "httpd", "mysql"]
    box1 = sim.box("node1")
    box1.handle(n1.standby(sim.now))
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 3000) is not None
    assert n1.status()["groups"][0]["pending"] is None
    assert [r.token for r in n1.groups[0].group.resources] == ["192.0.2.100", "httpd", "mysql"]
    assert "reloaded definition in force" in box1.log_text()
    assert sim.doubles_ms == 0
