"""The probe made when the peer is late (warntime), on a simulated clock (also run under
MicroPython).

Issue 17: the ARP probe (~40 ms when nobody answers) came after the dead time, before the
VIP.  Now the node probes as soon as the peer is late; if nobody answered and the peer stayed
silent, the group is taken at the dead time without a second probe.  Anything else - the
address answers, no answer yet, a frame from the peer in between - leaves the probe at the
dead time as it was.
"""

from tests.core.test_deadline import Pair

TIMING = {"keepalive": "50ms", "warntime": "100ms", "deadtime": "150ms"}


class ProbingPair(Pair):
    """Pair whose probes are answered as ``answer`` says ("free", "busy", or None: held back),
    recording (time, node, kind) of every probe and acquire."""

    def __init__(self, answer="free", **timing):
        self.answer = answer
        self.events = []
        self.held_back = []
        self.muted = None   # a node whose frames the line loses (it is late to the other)
        Pair.__init__(self, **timing)

    def handle(self, name, outputs):
        node = self.nodes[name]
        rest = []
        for o in outputs:
            if o.kind == "send" and name == self.muted:
                continue
            if o.kind in ("probe", "acquire"):
                self.events.append((self.now, name, o.kind))
            if o.kind == "probe":
                if self.answer is None:
                    self.held_back.append((name, o.group))
                else:
                    self.handle(name, node.probed(o.group, self.answer == "busy", self.now))
            else:
                rest.append(o)
        Pair.handle(self, name, rest)

    def after(self, name, since):
        return [(t, kind) for t, n, kind in self.events if n == name and t >= since]


def settled(answer="free", **timing):
    pair = ProbingPair(answer, **(timing or TIMING))
    pair.run_until(3000)   # initdead 2 s: node1 holds the group, node2 hears it
    assert pair.nodes["node1"].groups[0].held() and not pair.nodes["node2"].groups[0].held()
    return pair


def power_loss(pair):
    """node1 loses power; (when node2 declared it dead, node2's probes and acquires since)."""
    off = pair.now
    pair.power_off("node1")
    pair.run_until(off + 400)
    dead = pair.first_log("node2", "is dead")
    assert dead is not None
    return dead, pair.after("node2", off)


def test_probed_when_the_peer_is_late_and_taken_at_the_dead_time_without_a_second_probe():
    pair = settled("free")
    dead, seen = power_loss(pair)
    probes = [t for t, kind in seen if kind == "probe"]
    acquires = [t for t, kind in seen if kind == "acquire"]
    assert len(probes) == 1 and probes[0] < dead, (seen, dead)   # at warntime, before the dead time
    assert acquires == [dead], (seen, dead)                          # at the dead time itself
    assert pair.nodes["node2"].counters["probes_ahead"] == 1


def test_an_address_that_answers_is_probed_again_at_the_dead_time():
    pair = settled("busy")
    dead, seen = power_loss(pair)
    assert [kind for t, kind in seen if t < dead] == ["probe"], seen
    assert [kind for t, kind in seen if t == dead] == ["probe"], seen   # not taken blind
    assert "acquire" not in [kind for _t, kind in seen], seen


def test_no_answer_by_the_dead_time_means_the_usual_probe():
    pair = settled(None)
    dead, seen = power_loss(pair)
    assert [kind for t, kind in seen if t == dead] == ["probe"], (seen, dead)
    assert "acquire" not in [kind for _t, kind in seen]


def test_a_free_answer_counts_for_its_own_silence_only():
    """The peer is late, the probe finds nobody, then the peer is heard again: when it later
    dies, that old answer does not stand for the new silence."""
    pair = settled(None, keepalive="50ms", warntime="100ms", deadtime="250ms")
    node2 = pair.nodes["node2"]
    pair.muted = "node1"   # the peer is silent long enough to be late, not dead
    while not pair.held_back:
        pair.step()
    assert pair.first_log("node2", "is dead") is None
    name, key = pair.held_back.pop()
    pair.handle(name, node2.probed(key, False, pair.now))   # free, while the peer is late
    pair.muted = None   # heard again: its frames resume
    pair.run_until(pair.now + 500)
    assert pair.first_log("node2", "is dead") is None
    assert pair.nodes["node2"].intents[0].ahead_free_for is not None   # kept, for a silence now over
    dead, seen = power_loss(pair)
    assert [kind for t, kind in seen if t == dead] == ["probe"], (seen, dead)


def test_the_holder_and_a_node_with_probing_off_probe_nothing_ahead():
    pair = settled("free")
    pair.muted = "node2"   # node1, the holder, finds node2 late: nothing to probe
    start = pair.now
    pair.run_until(start + 140)
    assert pair.first_log("node1", "is dead") is None
    assert pair.nodes["node1"].counters["probes_ahead"] == 0
    assert not [k for t, n, k in pair.events if n == "node1" and t >= start and k == "probe"]
