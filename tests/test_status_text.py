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
