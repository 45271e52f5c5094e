"""The quiet tick (Node.tick's short path while the node is settled, and next_deadline's cached
answer) against the full pass: the simulated pair plays the same seeded program of field
events twice, once with Node and once with a Node that always takes the full pass, and every
output, its time and every next deadline must be the same (also run under MicroPython).

The sim ticks every node every 5 ms, so each program compares thousands of quiet ticks with
full ones, across the events that end a settled spell (a frame that changes the view, a
silence limit, a retry, a check, a LAN change, an operator's command) and the ones that start
one again.
"""

from hanode.core.node import Node
from tests.support.sim import Box, Rng, Sim

KEY = "192.0.2.100"
MONITOR = "monitor_interval 300ms\nmonitor_failures 2\nmonitor_window 30\n"
NODES = ("node1", "node2")


class FullNode(Node):
    """Always the full pass: what the quiet one must match."""

    def tick(self, now):
        self.quiet_until = None
        return Node.tick(self, now)

    def receive(self, data, now, link=None):
        self.quiet_until = None
        return Node.receive(self, data, now, link)

    def next_deadline(self):
        kept, self.quiet_until = self.quiet_until, None
        try:
            return Node.next_deadline(self)
        finally:
            self.quiet_until = kept

    def may_acquire_soon(self, now):
        kept, self.quiet_until = self.quiet_until, None
        try:
            return Node.may_acquire_soon(self, now)
        finally:
            self.quiet_until = kept


def _event(sim, rng):
    """One field event, chosen by ``rng``; returns what it did (for a failing program's story)."""
    name = NODES[rng.below(2)]
    box = sim.boxes.get(name)
    kind = rng.below(16)
    if kind == 0 and box.powered:
        sim.power_off(name)
        return "power_off " + name
    if kind == 1 and (not box.powered or (box.stopped and box.node.restarting is None)):
        (sim.power_on_blank if rng.chance(0.25) else sim.power_on)(name)
        return "power_on " + name
    if kind == 2:
        sim.set_cut(not sim.cut)
        return "cut %s" % sim.cut
    if kind == 3:
        sim.set_lan_link(name, not sim.lan_links.get(name, True))
        return "lan_link %s %s" % (name, sim.lan_links[name])
    if kind == 4:
        sim.set_ping(name, not sim.pings.get(name, True))
        return "ping %s %s" % (name, sim.pings[name])
    if kind == 5:
        (sim.thaw if box.frozen else sim.freeze)(name)
        return "frozen %s %s" % (name, box.frozen)
    if kind == 6:
        sim.drop = 0.0 if sim.drop else 0.05
        sim.jitter_ms = 0 if sim.jitter_ms else 40
        return "noise %s" % sim.drop
    live = box.powered and not box.frozen and not box.stopped
    if kind == 7 and live:
        box.handle(box.node.standby(sim.now))
        return "standby " + name
    if kind == 8 and live:
        box.handle(box.node.takeover(sim.now))
        return "takeover " + name
    if kind == 9 and live and rng.chance(0.3):
        box.handle(box.node.shutdown(sim.now))
        return "shutdown " + name
    if kind == 10 and live and rng.chance(0.5):
        sim.restart_agent(name)
        return "restart " + name
    if kind == 11 and box.powered and box.stopped and box.node.restarting is not None:
        sim.agent_back(name, forget=rng.chance(0.25))
        return "agent_back " + name
    if kind == 12:
        box.fail_start = set() if box.fail_start else {KEY}
        return "fail_start %s %s" % (name, bool(box.fail_start))
    if kind == 13:
        box.fail_stop = set() if box.fail_stop else {KEY}
        return "fail_stop %s %s" % (name, bool(box.fail_stop))
    if kind == 14 and live:
        box.crash(KEY)
        return "crash " + name
    if kind == 15:
        sim.set_lan(not sim.lan_up)
        return "lan %s" % sim.lan_up
    return None


def _compare(seed, events=24):
    """Play program ``seed`` on two pairs side by side, one of Node and one of FullNode, and
    compare what they did after each stretch (so that MicroPython's heap holds one stretch)."""
    traces = {}
    deadlines = {}   # (sim, box) -> the last deadline traced (each change is)
    original = Box.handle

    def handle(box, outputs):
        trace = traces[id(box.sim)]
        if outputs:
            trace.append((box.sim.now, box.name, [repr(o) for o in outputs]))
        original(box, outputs)
        node = box.node
        deadline = None if node.stopped else node.next_deadline()
        key = (id(box.sim), box.name)
        if deadline != deadlines.get(key):
            deadlines[key] = deadline
            trace.append((box.sim.now, box.name, "deadline", deadline))
        soon = None if node.stopped else node.may_acquire_soon(box.sim.now)   # (the agent's warm-up)
        if soon != deadlines.get(key + ("soon",)):
            deadlines[key + ("soon",)] = soon
            trace.append((box.sim.now, box.name, "may acquire soon", soon))

    def stretch(ms):
        for sim in pair:
            sim.run(ms)
        quiet, full = traces[id(pair[0])], traces[id(pair[1])]
        for i in range(min(len(quiet), len(full))):
            assert quiet[i] == full[i], ("seed %d: quiet %r, full %r; events %r"
                                         % (seed, quiet[i], full[i], story))
        assert len(quiet) == len(full), (seed, quiet[len(full):], full[len(quiet):], story)
        del quiet[:]
        del full[:]

    Box.handle = handle
    story = []
    try:
        pair = []
        for node_class in (Node, FullNode):
            sim = Sim(seed=seed, action_ms=50 + 400 * (seed % 3), extra=MONITOR)
            sim.node_class = node_class
            traces[id(sim)] = []
            pair.append(sim)
        programs = [Rng(seed * 7919 + 1) for _ in pair]   # the events' own streams (the sims' drive the line)
        for sim in pair:
            sim.power_on("node1")
            sim.power_on("node2")
        for _ in range(events):
            for program in programs:
                pause = 100 + program.below(3000)
            stretch(pause)
            did = [_event(sim, program) for sim, program in zip(pair, programs)]
            assert did[0] == did[1], (seed, did)
            if did[0]:
                story.append((pair[0].now, did[0]))
        stretch(5000)
        status = [[repr(sim.boxes[name].node.status()) for name in NODES] for sim in pair]
        assert status[0] == status[1], (seed, status)
    finally:
        Box.handle = original


def test_the_quiet_tick_does_what_the_full_pass_does():
    for seed in range(1, 13):
        _compare(seed)


def test_a_settled_pair_takes_the_quiet_path():
    """Settled, the nodes take the short paths (else the comparison above proves nothing):
    for a second the frames go out a keepalive apart and are read, and no call of either node
    takes the full pass."""
    sim = Sim()
    sim.power_on("node1")
    sim.power_on("node2")
    sim.run(5000)
    nodes = [sim.box(name).node for name in NODES]
    assert all(n.quiet_until is not None and n.quiet_until > sim.now for n in nodes)
    sent = [n.counters["frames_sent"] for n in nodes]
    heard = [n.counters["frames_received"] for n in nodes]
    calls = []
    full = Node._finish

    def counted(node, now, out):
        calls.append((now, node.me))
        return full(node, now, out)

    Node._finish = counted
    try:
        sim.run(1000)
    finally:
        Node._finish = full
    for i in range(2):
        assert nodes[i].counters["frames_sent"] - sent[i] >= 9
        assert nodes[i].counters["frames_received"] - heard[i] >= 9
    assert calls == []


def test_read_patience_follows_what_each_node_runs_and_whether_it_is_settled():
    """read_patience: the active node, settled, may read the standby's frames at its next
    deadline; the standby, settled, on the active's schedule; neither while a hand-over is under
    way (both read every frame as it comes); after it the roles have swapped."""
    from hanode.core.node import READ_AT_DEADLINE, READ_ON_SCHEDULE, READ_PROMPTLY
    sim = Sim()
    sim.power_on("node1")
    sim.power_on("node2")
    sim.run(5000)
    one, two = sim.box("node1"), sim.box("node2")

    def patience():
        return one.node.read_patience(), two.node.read_patience()
    assert one.holds(KEY) and not two.holds(KEY)
    assert patience() == (READ_AT_DEADLINE, READ_ON_SCHEDULE)
    one.handle(one.node.standby(sim.now))
    seen = []
    for _ in range(400):
        sim.run(5)
        seen.append(patience())
        if seen[-1] == (READ_ON_SCHEDULE, READ_AT_DEADLINE):
            break
    assert seen[-1] == (READ_ON_SCHEDULE, READ_AT_DEADLINE) and two.holds(KEY) and not one.holds(KEY)
    # while the group moved, no node left the peer's answers for its deadline, node1 read
    # promptly from the command on, and node2 from the moment it heard of the change
    assert all(READ_AT_DEADLINE not in p for p in seen[:-1]), seen
    assert seen[0][0] == READ_PROMPTLY and (READ_PROMPTLY, READ_PROMPTLY) in seen, seen
    sim.run(3000)
    assert patience() == (READ_ON_SCHEDULE, READ_AT_DEADLINE)
    sim.power_off("node2")   # the active's silence: node1 takes the group, then reads at its deadlines
    assert sim.run_until(lambda: one.holds(KEY) and one.node.read_patience() == READ_AT_DEADLINE,
                         10000) is not None
