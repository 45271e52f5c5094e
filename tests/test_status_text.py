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
