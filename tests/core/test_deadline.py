"""Node.next_deadline on a simulated clock (also run under MicroPython).

The agent sleeps until the core's next deadline instead of ticking every few ms; these
stories drive two nodes *only* at their deadlines and at frame arrivals, and check that
nothing is lost by it: frames keep their period, silence is declared at the dead time to
the millisecond, and a deadline is never in the past.
"""

from tests.support.sim import make_config
from hanode.core.node import Node

KEY = "192.0.2.100"
DELAY_MS = 13   # 24 bytes at 19200 baud


class Pair:
    """Two nodes joined by an instant-action, fixed-delay line, driven event by event."""

    def __init__(self, node2_at=0, jitter=None, **timing):
        self.cfg = {n: make_config(me=n, **timing) for n in ("node1", "node2")}
        self.nodes = {n: Node(self.cfg[n], me=n, generation=1) for n in ("node1", "node2")}
        self.now = 0
        self.in_flight = []      # (arrival time, to, data)
        self.powered = {"node1": True, "node2": True}
        self.calls = {"node1": 0, "node2": 0}
        self.ticks = {"node1": 0, "node2": 0}
        self.logs = {"node1": [], "node2": []}
        self.jitter = jitter   # ms more on the line for node1's frame sent at a time
        self.handle("node1", self.nodes["node1"].start(0))
        self.powered["node2"] = False
        self.run_until(node2_at)   # node2 starts ``node2_at`` ms after node1
        self.powered["node2"] = True
        self.handle("node2", self.nodes["node2"].start(self.now))

    def other(self, name):
        return "node2" if name == "node1" else "node1"

    def handle(self, name, outputs):
        node = self.nodes[name]
        for o in outputs:
            if o.kind == "send":
                late = self.jitter(self.now) if self.jitter and name == "node1" else 0
                self.in_flight.append((self.now + DELAY_MS + late, self.other(name), o.data))
            elif o.kind == "log":
                self.logs[name].append((self.now, o.text))
            elif o.kind == "probe":
                self.handle(name, node.probed(o.group, False, self.now))
            elif o.kind in ("acquire", "release"):
                self.handle(name, node.completed(o.group, True, self.now))

    def step(self):
        """Advance to the next event (a deadline or an arrival) and run it."""
        times = [t for t, _to, _d in self.in_flight if self.powered[_to]]
        for name, node in self.nodes.items():
            if self.powered[name]:
                deadline = node.next_deadline()
                assert deadline is None or deadline > node.now, (name, deadline, node.now)
                if deadline is not None:
                    times.append(deadline)
        self.now = min(times)
        for name, node in self.nodes.items():
            if self.powered[name] and node.next_deadline() == self.now:
                self.ticks[name] += 1
                self.handle(name, node.tick(self.now))
        arriving = [f for f in self.in_flight if f[0] == self.now]
        self.in_flight = [f for f in self.in_flight if f[0] != self.now]
        for _t, to, data in arriving:
            if self.powered[to]:
                self.calls[to] += 1
                self.handle(to, self.nodes[to].receive(data, self.now))

    def power_off(self, name):
        """Off, and its frames still on the line delivered: the peer's silence starts after them."""
        self.powered[name] = False
        self.run_until(self.now + DELAY_MS + 1)

    def run_until(self, t):
        while self.now < t:
            self.step()

    def first_log(self, name, text):
        for t, line in self.logs[name]:
            if text in line:
                return t
        return None


def test_an_idle_pair_wakes_once_per_frame_each_way():
    pair = Pair()
    pair.run_until(2000)
    assert pair.nodes["node1"].running_groups() == [KEY] and pair.nodes["node2"].held_groups() == []
    sent = {n: pair.nodes[n].counters["frames_sent"] for n in pair.nodes}
    ticks = dict(pair.ticks)
    pair.run_until(12000)
    for name, node in pair.nodes.items():
        frames = node.counters["frames_sent"] - sent[name]
        # an absolute schedule: exactly one frame per keepalive (100 ms), no drift
        assert 99 <= frames <= 101, (name, frames)
        # one tick per frame sent, and nothing else: the silence timers never come due
        assert pair.ticks[name] - ticks[name] <= frames + 1, (name, pair.ticks[name] - ticks[name], frames)
        assert node.live.alive()


def calls_of(node):
    """Record the times of ``node``'s tick and receive calls, and of those that sent a frame."""
    seen = {"tick": [], "receive": [], "sent": [], "sent_by_tick": []}
    for name in ("tick", "receive"):
        real = getattr(node, name)

        def call(*args, _real=real, _name=name):
            out = _real(*args)
            now = args[1] if _name == "receive" else args[0]
            seen[_name].append(now)
            if [o for o in out if o.kind == "send"]:
                seen["sent"].append(now)
                if _name == "tick":
                    seen["sent_by_tick"].append(now)
            return out
        setattr(node, name, call)
    return seen


def test_the_follower_sends_with_the_peers_frame_and_keeps_a_schedule_without_it():
    """node2 (its name sorts after node1's) sends its status frame when node1's arrives - one
    wake-up for both in its agent - while node1 keeps its own schedule, whatever the phase node2
    started at, and when node1's frames come a little later for good (node2's deadline then
    falls just before them: it moves to the frame after, it does not send a frame time ahead of
    each one with a wake-up of its own); once node1 is silent, node2 goes on every keepalive,
    the first one FOLLOW_SLACK_MS later."""
    from hanode.core.node import FOLLOW_SLACK_MS
    # node1's frames take 0-2 ms more on some keepalives (its wake-up, the line), or 1-2 ms more
    # from some time on (node2's reads then come after a deadline that tied with them)
    jitters = [lambda now: (now * 7919 // 100) % 3] + [
        lambda now, step=step, more=more: more if now >= step else 0 for step in (300, 1200) for more in (1, 2)]
    cases = [(at, jitters[0]) for at in (0, 37, 61, 88)] + [(at, j) for at in (0, 50) for j in jitters[1:]]
    for node2_at, jitter in cases:
        pair = Pair(node2_at=node2_at, jitter=jitter)
        pair.run_until(2000)
        n1, n2 = pair.nodes["node1"], pair.nodes["node2"]
        assert n2.follows_peer and not n1.follows_peer
        seen1, seen2 = calls_of(n1), calls_of(n2)
        pair.run_until(12000)
        assert 99 <= len(seen2["sent"]) <= 101, node2_at   # still one frame a keepalive
        merged = [t for t in seen2["sent"] if t in seen2["receive"]]
        assert len(merged) >= len(seen2["sent"]) - 1, (node2_at, len(merged), len(seen2["sent"]))
        assert len(set(seen2["tick"]) - set(seen2["receive"])) <= 1, node2_at   # no wake-up of its own
        assert len(seen2["sent_by_tick"]) <= 1, (node2_at, seen2["sent_by_tick"][:5])   # (not even a tie)
        assert [t for t in seen1["sent"] if t in seen1["receive"]] == [], node2_at
        gaps = [b - a for a, b in zip(seen1["sent"], seen1["sent"][1:])]
        assert set(gaps) == {100}, (node2_at, set(gaps))   # node1's schedule is its own
    pair.power_off("node1")
    last = n2.last_send
    sent = len(seen2["sent"])
    pair.run_until(last + 1000)
    # its own schedule again: the first frame at most FOLLOW_SLACK_MS past a keepalive after its
    # last (which went with node1's last), then a keepalive apart (and one more at once when it
    # declares node1 dead: its state changed)
    times = [last] + seen2["sent"][sent:]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 100 <= gaps[0] <= 100 + FOLLOW_SLACK_MS and len(gaps) >= 9, gaps
    assert all(g <= 100 for g in gaps[1:]), gaps


def test_silence_is_declared_at_the_dead_time_to_the_millisecond():
    pair = Pair()
    pair.run_until(3000)
    pair.power_off("node1")
    last_heard = pair.nodes["node2"].live.peer.last_heard
    pair.run_until(last_heard + 1000)
    dead_at = pair.first_log("node2", "node node1: is dead")
    assert dead_at == last_heard + pair.cfg["node2"].deadtime_ms + 1, (dead_at, last_heard)
    # the failover went on from there, driven by the deadlines alone
    assert pair.nodes["node2"].held_groups() == pair.nodes["node2"].running_groups() == [KEY]


def test_frames_go_out_on_an_absolute_schedule():
    node = Node(make_config(), me="node1", generation=1)
    node.start(0)
    assert node.next_deadline() == 100
    out = node.tick(103)   # woken 3 ms late: the frame goes, the next one stays due at 200
    assert [o.kind for o in out if o.kind == "send"] == ["send"]
    assert node.next_deadline() == 200
    node.tick(450)         # a stall longer than a keepalive: the schedule restarts from now
    assert node.next_deadline() == 550


def test_the_peer_turning_late_is_a_deadline_and_peer_late_says_so():
    pair = Pair()
    pair.run_until(1000)
    pair.power_off("node1")
    node = pair.nodes["node2"]
    since = node.live.peer.since
    warn = pair.cfg["node2"].warntime_ms
    assert not node.peer_late(since + warn)
    pair.run_until(since + warn + 1)
    assert node.now == since + warn + 1   # a tick came exactly then
    assert node.peer_late(node.now)


def test_no_deadline_once_stopped():
    node = Node(make_config(), me="node1", generation=1)
    node.start(0)
    node.shutdown(10)
    assert node.stopped and node.next_deadline() is None


def test_a_peer_never_heard_is_late_only_near_initdead():
    cfg = make_config(initdead="2")   # initdead 2 s, deadtime 500 ms, warntime 300 ms
    node = Node(cfg, me="node1", generation=1)
    node.start(0)
    assert not node.peer_late(1000)   # slow to boot, not yet worth preparing for
    assert node.peer_late(2000 - 500 + 300 + 1)


def test_an_acquire_is_near_when_a_group_is_wanted_and_not_held():
    pair = Pair()
    node1, node2 = pair.nodes["node1"], pair.nodes["node2"]
    near = {"node1": False, "node2": False}
    while not node1.held_groups():   # node1 (preferred) wants its group, waits for node2's ack
        for name, node in pair.nodes.items():
            near[name] = near[name] or node.may_acquire_soon(pair.now)
        pair.step()
    assert near == {"node1": True, "node2": False}, near
    pair.run_until(3000)   # node1 holds it; node2, the standby, never expects to acquire
    assert not node1.may_acquire_soon(pair.now) and not node2.may_acquire_soon(pair.now)
