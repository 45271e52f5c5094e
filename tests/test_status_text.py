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
