"""Hypothesis drives LAN events through the simulated pair (issue 14, tests/support/sim.py).

Invariants, checked on every generated schedule:

* **never two holders** while the boxes hear each other over the cable (the cable is fine in
  all of these);
* **a lone LAN loss on the active box moves the group within the bound**: loss settle time +
  verdict delay + the frames both ways + a stop and a start + 100 ms, whatever the phase;
* **both boxes lose the LAN -> nothing moves**, when the second loss follows the first by less
  than the verdict delay minus a frame's round trip;
* **flapping -> bounded moves**: node1's port flaps on a random schedule; the group leaves node1
  at most once, plus twice per "up" spell long enough to count (the gain settle time).
"""
from hypothesis import given, settings, strategies as st

from hanode.core import health
from tests.core.test_node import cold_start
from tests.core.test_lan import MOVE_BOUND_MS, moves

DEADTIME_MS, KEEPALIVE_MS = 500, 100
SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(phase=st.integers(0, 99), ping=st.booleans())
def test_a_lone_lan_loss_on_the_active_moves_the_group_within_the_bound(phase, ping):
    sim = cold_start()
    sim.run(1000 + phase)
    if ping:
        sim.set_ping("node1", False)
    else:
        sim.set_lan_link("node1", False)
    took = sim.run_until(lambda: sim.servers() == ["node2"], 5000)
    assert took is not None and took <= MOVE_BOUND_MS, (took, sim.box("node1").log_text())
    assert sim.double_while_hearing_ms == 0 and sim.doubles_ms == 0


@SETTINGS
@given(apart_ms=st.integers(0, 60), first=st.sampled_from(["node1", "node2"]), ping=st.booleans())
def test_both_boxes_losing_the_lan_moves_nothing(apart_ms, first, ping):
    sim = cold_start()
    sim.run(1000)
    second = "node2" if first == "node1" else "node1"
    lose = sim.set_ping if ping else sim.set_lan_link
    lose(first, False)
    sim.run(apart_ms)
    lose(second, False)
    assert moves(sim, 3000) == 0 and sim.servers() == ["node1"], sim.box("node1").log_text()
    assert sim.doubles_ms == 0


def up_periods(spells, loss_settle_ms):
    """The up periods the box can act on, from alternating down/up spells: a down spell shorter
    than the loss settle time never counts as a loss, so the up spells around it are one period
    (the adapter may even miss it: 220/685/5/470 ms moved the group home after 1160 ms up)."""
    periods, current = [], None
    for i, spell in enumerate(spells):
        if i % 2 == 1:
            current = (current or 0) + spell
        elif current is not None and spell < loss_settle_ms:
            current += spell
        elif current is not None:
            periods.append(current)
            current = None
    return periods + ([current] if current is not None else [])


@SETTINGS
@given(spells=st.lists(st.integers(5, 1500), min_size=2, max_size=30))
def test_a_flapping_port_moves_the_group_a_bounded_number_of_times(spells):
    sim = cold_start()
    gain = health.gain_settle_ms(DEADTIME_MS)
    count = 0
    for i, spell in enumerate(spells):   # down, up, down, up ...
        sim.set_lan_link("node1", i % 2 == 1)
        count += moves(sim, spell)
    long_ups = sum(1 for ms in up_periods(spells, health.loss_settle_ms(DEADTIME_MS)) if ms >= gain)
    assert count <= 1 + 2 * long_ups, (count, long_ups, spells)
    assert sim.double_while_hearing_ms == 0 and sim.doubles_ms == 0
    sim.set_lan_link("node1", True)
    assert sim.run_until(lambda: sim.servers() == ["node1"], gain + 2000) is not None   # home once stable
