"""`hanode status` in text: a second box with our node name is shown, not only counted
(issue 13 finding 6).  CPython only (hanode.control is an adapter)."""

from hanode.control import format_status
from tests.core.test_node import _twins


def test_status_text_shows_an_identity_conflict():
    sim, a, twin = _twins(3, 1, 500)
    sim.run(3000)
    text = format_status(a.node.status())
    assert ("CONFLICT: another box also calls itself node1 (its generation 1, on /dev/ttyS0): give "
            "each box its own node name; taking no resource group meanwhile") in text, text
    sim, a, twin = _twins(3, 1, 500)
    assert "CONFLICT" not in format_status(a.node.status())   # before the twin is heard


def test_status_text_shows_timings_pending_resources_and_differing_keys():
    from tests.core.test_reconfigure import KEY1, KEY2, config, pair
    sim = pair()
    text = format_status(sim.box("node2").node.status())
    assert "keepalive 100 ms, warntime 300 ms, deadtime 500 ms, initdead 2000 ms, sending with key 1" in text
    assert "WARNING" not in text and "pending" not in text
    box = sim.box("node1")
    box.handle(box.node.reconfigure(config("node1", auth=2, keys=KEY1 + KEY2,
                                           haresources="node1 192.0.2.100 httpd mysql\n"), sim.now))
    sim.run(300)   # node2 does not have key 2 yet: the half-done rotation shows
    text = format_status(sim.box("node2").node.status())
    assert "signed with a key this box does not have" in text and "authkeys differ" in text, text
    text = format_status(box.node.status())
    assert "pending until its next hand-over: 192.0.2.100 httpd mysql" in text, text


def test_status_text_leads_with_the_alarms_of_findings_3_and_7():
    from hanode.core import wants
    from tests.core.test_escalation import KEY, both_failing_for_ten_minutes, cold_start
    sim, n1, n2 = both_failing_for_ten_minutes()
    text = format_status(n1.node.status())
    assert text.splitlines()[1] == ("ALARM: %s failed to start %d times here: given up until 'hanode takeover' "
                                    "or 'hanode standby' (either box) or a restart" % (KEY, wants.START_ROUNDS))
    assert "stopped (given up)" in text
    sim = cold_start()
    n1 = sim.box("node1")
    n1.fail_stop.add(KEY)
    n1.handle(n1.node.standby(sim.now))
    sim.run_until(lambda: n1.escalations, 20000)
    st = n1.node.status()
    st["agent"] = {"pid": 1, "uptime_s": 1, "watchdog": "/dev/watchdog (1 s)", "stop_failure": {
        "configured": "fence", "escalated": {"group": KEY, "action": "fence", "at": "2026-11-29 02:00:00",
                                             "what": "SELF-FENCING: no more watchdog pets"}}}
    lines = format_status(st).splitlines()
    assert lines[1].startswith("ALARM: %s failed to stop %d times" % (KEY, wants.STOP_RETRIES + 1)), lines
    assert lines[2] == "ALARM: stop_failure fence since 2026-11-29 02:00:00: SELF-FENCING: no more watchdog pets"


def test_status_text_shows_a_peer_below_its_floor_and_its_rejoin():
    """issue 13 finding 1: the episode while it lasts, then how it ended."""
    from tests.core.test_rejoin import cold_start, lose_state_while_down
    sim = cold_start()
    lose_state_while_down(sim, restarts=1)
    sim.power_on("node1", forget=True)
    n1 = sim.box("node1")
    n1.node.receive = lambda data, now, link=None: []          # deaf: no rejoin yet
    sim.run(500)
    text = format_status(sim.box("node2").node.status())
    assert "BELOW FLOOR: " in text and "authentic frames of node1 with generation 1, below its floor 2/" in text, text
    assert "challenged" in text
    del n1.node.receive                                         # hears again: rejoins
    assert sim.run_until(lambda: sim.box("node2").node.counters["rejoins"] == 1, 3000) is not None
    text = format_status(sim.box("node2").node.status())
    assert "BELOW FLOOR" not in text and "node1 rejoined with generation 65538" in text, text
    assert "lost its state and rejoined node2 1 time(s)" in format_status(n1.node.status())


def test_status_text_shows_the_peer_revision_and_a_restart_held_off():
    from tests.support.sim import Sim
    from tests.core.util import settled_pair
    sim = settled_pair(Sim(extra="restart_grace 3\n"))
    for name, revision in (("node1", 0x0123456789ab), ("node2", 0xba9876543210)):
        box = sim.box(name)
        box.handle(box.node.set_revision(revision, sim.now))
    sim.run(500)
    st = sim.box("node2").node.status()
    st["config"] = {"revision": "ba9876543210", "last_reload": None}   # what the daemon adds
    text = format_status(st)
    assert "config revision ba9876543210\nnode1 runs config revision 0123456789ab (differs)" in text, text
    sim.restart_agent("node1")
    sim.run(1000)
    st = sim.box("node2").node.status()
    # (the notice took ~40 ms)
    assert st["peer_restart"]["held"] == ["192.0.2.100"] and 0 < st["peer_restart"]["left_ms"] <= 2100


def test_status_text_shows_both_lan_healths_why_and_a_pending_verdict():
    from tests.core.test_node import cold_start
    sim = cold_start()
    text = format_status(sim.box("node1").node.status())
    assert "LAN: node1 2 (sim); node2 2" in text and "LAN health equal (2 on both)" in text, text
    sim.set_lan_link("node1", False)
    sim.run(150)      # counted (5 + 100 ms), not yet for the verdict delay (100 ms for a carrier)
    text = format_status(sim.box("node1").node.status())
    assert "LAN: node1 0 (sim); node2 2" in text, text
    assert "LAN of node1 is worse (0 vs 2): groups go to node2" in text
    assert "nothing moves for" in text, text
    sim.run(2000)
    text = format_status(sim.box("node2").node.status())
    assert "LAN: node2 2 (sim); node1 0" in text and "nothing moves for" not in text, text
