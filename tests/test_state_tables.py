"""The state tables in the docstrings are the documentation: they must say exactly
what the code's transition dicts do.  (CPython only: MicroPython drops docstrings.)"""

from hanode.core import liveness, ownership, wants


def rows(doc, first_word_set):
    out = []
    for line in doc.split("\n"):
        words = line.split()
        if len(words) >= 3 and words[0] in first_word_set:
            out.append(words)
    return out


def test_ownership_docstring_is_the_transition_table():
    states = (ownership.STOPPED, ownership.PROBING, ownership.STARTING, ownership.RUNNING,
              ownership.STOPPING, ownership.STOP_FAILED)
    documented = {}
    for words in rows(ownership.__doc__, states):
        state, event, nxt, output = words[0], words[1], words[2], words[3]
        documented[(state, event)] = (nxt, None if output == "-" else output.lower())
    assert documented == ownership.TRANSITIONS


def test_liveness_docstring_is_the_transition_table():
    documented = {}
    for words in rows(liveness.__doc__, (liveness.INIT, liveness.UP, liveness.DEAD)):
        documented[(words[0], words[1])] = words[2]
    assert documented == liveness.TRANSITIONS


def test_unlisted_pairs_keep_the_state_and_are_counted():
    g = ownership.GroupOwnership(type("G", (), {"key": "k"})(), 0)
    assert g.fire(ownership.RELEASE) is None and g.state == ownership.STOPPED
    assert g.unlisted == 1
    assert g.fire(ownership.ADOPT) == ownership.DO_ACQUIRE and g.state == ownership.STARTING
    assert g.fire(ownership.RELEASE) is None and g.state == ownership.STARTING
    assert g.unlisted == 2 and g.transitions == 1
    assert liveness.step(liveness.UP, liveness.HEARD) == liveness.UP
    assert liveness.step(liveness.DEAD, liveness.SILENT) is None
    live = liveness.Liveness("node2", ["ttyS0"], 100, 300, 500, 2000)
    live.start(0)
    assert live.declare_dead() == [("peer_dead", False)] and live.unlisted == 0
    assert live.declare_dead() == [] and live.unlisted == 1      # dead already: no row
    assert live.peer.state == liveness.DEAD


def test_wants_docstring_is_the_event_table():
    documented = {}
    for words in rows(wants.__doc__, (wants.YES, wants.NO)):
        wish, state, peer, when, event = words[:5]
        documented[(wish, state, peer)] = (when, event)
    assert documented == wants.TRANSITIONS


def test_wants_event_follows_the_table_and_its_conditions():
    def never():
        raise AssertionError("agreed() asked although the row does not need it")
    ev = wants.event
    assert ev(True, ownership.STOPPED, False, True, never, ownership.ACQUIRE_LONE) == ownership.ACQUIRE_LONE
    assert ev(True, ownership.STOPPED, False, False, never, ownership.ACQUIRE_LONE) is None
    assert ev(True, ownership.STOPPED, True, True, lambda: True, "x") == ownership.ACQUIRE
    assert ev(True, ownership.STOPPED, True, True, lambda: False, "x") is None
    assert ev(False, ownership.RUNNING, True, False, never, "x") == ownership.RELEASE
    assert ev(False, ownership.STOP_FAILED, False, True, never, "x") == ownership.RETRY
    assert ev(False, ownership.STOP_FAILED, False, False, never, "x") is None
    for state in (ownership.STARTING, ownership.RUNNING, ownership.STOPPING, ownership.PROBING):
        assert ev(True, state, True, True, never, "x") is None      # busy, or already where wanted


def test_docs_states_md_collects_the_same_tables():
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "states.md")
    with open(path) as f:
        doc = f.read()
    documented = {}
    for words in rows(doc, (liveness.INIT, liveness.UP, liveness.DEAD)):
        if words[1] in (liveness.HEARD, liveness.SILENT, liveness.GOODBYE):
            documented[(words[0], words[1])] = words[2]
    assert documented == liveness.TRANSITIONS
    states = (ownership.STOPPED, ownership.PROBING, ownership.STARTING, ownership.RUNNING,
              ownership.STOPPING, ownership.STOP_FAILED)
    documented = {}
    for words in rows(doc, states):
        if len(words) >= 4:
            documented[(words[0], words[1])] = (words[2], None if words[3] == "-" else words[3].lower())
    assert documented == ownership.TRANSITIONS
    documented = {}
    for words in rows(doc, (wants.YES, wants.NO)):
        documented[(words[0], words[1], words[2])] = (words[3], words[4])
    assert documented == wants.TRANSITIONS


def test_rejoin_docstring_is_the_transition_table():
    from hanode.core import rejoin
    documented = {}
    for words in rows(rejoin.__doc__, (rejoin.CHALLENGER, rejoin.REJOINER)):
        role, state, event, nxt, output = words[:5]
        documented[(role, state, event)] = (nxt, None if output == "-" else output)
    assert documented == rejoin.TRANSITIONS


def _monitor_rows(doc):
    from hanode.core import monitor
    states = (monitor.OFF, monitor.WAITING, monitor.CHECKING, monitor.RESTARTING, monitor.BACKOFF)
    documented = {}
    for words in rows(doc, states):
        if len(words) >= 4 and not words[1].startswith("-"):
            documented[(words[0], words[1])] = (words[2], None if words[3] == "-" else words[3])
    return documented


def test_monitor_docstring_is_the_transition_table():
    from hanode.core import monitor
    assert _monitor_rows(monitor.__doc__) == monitor.TRANSITIONS


def test_docs_states_md_has_the_monitor_table():
    import os
    from hanode.core import monitor
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "states.md")
    with open(path) as f:
        assert _monitor_rows(f.read()) == monitor.TRANSITIONS


def test_health_docstring_is_the_transition_table():
    from hanode.core import health
    documented = {}
    for words in rows(health.__doc__, (health.UNKNOWN, health.STEADY, health.SETTLING)):
        state, event, nxt, output = words[:4]
        documented[(state, event)] = (nxt, None if output == "-" else output)
    assert documented == health.TRANSITIONS
