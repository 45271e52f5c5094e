"""The state tables in the docstrings are the documentation: they must say exactly
what the code's transition dicts do.  (CPython only: MicroPython drops docstrings.)"""

from hanode.core import liveness, ownership


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


def test_unlisted_pairs_keep_the_state():
    g = ownership.GroupOwnership(type("G", (), {"key": "k"})(), 0)
    assert g.fire(ownership.RELEASE) is None and g.state == ownership.STOPPED
    g.state = ownership.STARTING
    assert g.fire(ownership.RELEASE) is None and g.state == ownership.STARTING
    assert liveness.step(liveness.UP, liveness.HEARD) == liveness.UP
