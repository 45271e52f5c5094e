"""Two real agent loops in one process: cold start, cut cable, failover, failback.

Theory of operation
-------------------
This is the proof that the core and the agent loop run on MicroPython: both
nodes' ``hanode.agent.Agent`` run unchanged on one asyncio loop, talking over an
in-memory 19200-baud cable, driving in-memory resources (``memio``), on real
asyncio time with short timings (keepalive 50 ms, deadtime 250 ms).  A sampler
task looks at both boxes every 2 ms, and every resource start and stop lands in
one event list, so "never two holders" is checked both at sampled moments and
exactly (in event order).  The story:

1. cold start: both boxes boot; node1 (preferred in haresources) holds the
   group well before initdead, node2 runs nothing;
2. cut cable, LAN up: node2 declares node1 dead but its probe finds the VIP in
   use, so it takes nothing; the cable comes back and the pair is whole again;
3. power loss of node1 (its agent stops dead, its VIP vanishes): node2 holds
   the group within deadtime plus a bound, not before deadtime minus a keepalive;
4. node1 returns (new Node, higher generation, new Agent): auto_failback moves
   the group back, node2 stopping everything before node1 starts anything;
5. clean shutdown of both: node1 stops right to left, both loops end.

Run it as ``micropython tests/mpy/pair.py`` (MICROPYPATH=<repo>:.frozen),
``python3 tests/mpy/pair.py``, or import it and call ``main()``.  It prints the
timings, and exits 1 (raises AssertionError from ``run_story``) on any failure.
"""

import sys

try:
    import hanode  # noqa: F401
except ImportError:   # started as a script from elsewhere: the repository is two levels up
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, _here + "/../..")

import gc

# Compiling from source needs big contiguous blocks: the largest modules go first, while
# the heap is still in one piece (this alone moves the smallest working heap by ~40 KB)
from hanode.core.config import parse
gc.collect()
from hanode.core.node import Node  # noqa: E402  (after the collect, on purpose)
gc.collect()
from hanode import aio  # noqa: E402
from hanode.agent import Agent  # noqa: E402

HEAP = hasattr(gc, "mem_alloc")    # MicroPython: report the live heap

try:
    from tests.mpy import memio
except ImportError:   # run as a script: memio sits next to it
    import memio

KEEPALIVE_MS = 50
WARNTIME_MS = 150
DEADTIME_MS = 250
INITDEAD_MS = 1000
SAMPLE_MS = 2
ACTION_MS = 3        # each resource start/stop
PROBE_MS = 5         # an ARP probe's wait
# failover may take deadtime, then one agent tick, a probe, the starts and scheduling slop
FAILOVER_SLACK_MS = 150

HA_CF = """
keepalive %dms
warntime %dms
deadtime %dms
initdead %dms
baud 19200
serial /dev/ttyS0
auto_failback on
node node1
node node2
""" % (KEEPALIVE_MS, WARNTIME_MS, DEADTIME_MS, INITDEAD_MS)
AUTHKEYS = "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n"
HARESOURCES = "node1 192.0.2.100 httpd\n"
KEY = "192.0.2.100"
NAMES = ("node1", "node2")


class Pair:
    def __init__(self, quiet=False):
        self.quiet = quiet
        self.clock = memio.Clock()
        self.line = memio.Line("node1", "node2", 19200, self.clock)
        self.lan = memio.Lan()
        self.events = []
        self.configs = {}
        self.boxes = {}
        for name in NAMES:
            cfg = parse(HA_CF, AUTHKEYS, HARESOURCES, me=name)
            self.configs[name] = cfg
            self.boxes[name] = memio.Box(name, cfg, self.lan, self.events, self.clock,
                                         ACTION_MS, PROBE_MS)
        self.resources = [r.token for r in self.configs["node1"].groups[0].resources]
        self.generation = {"node1": 0, "node2": 0}
        self.agents = {}
        self.runs = {}
        self.logs = []
        self.doubles = []          # (t_ms, holders) sampled with more than one holder
        self.samples = 0
        self.sampling = True
        self.heap_live_max = 0

    # ----------------------------------------------------------------- output
    def say(self, text):
        if not self.quiet:
            print("%6d ms  %s" % (self.clock.ms(), text))

    def log_fn(self, name):
        def log(level, text):
            self.logs.append((self.clock.ms(), name, level, text))
        return log

    def log_text(self):
        return "\n".join("%6d %s %-8s %s" % entry for entry in self.logs)

    # ----------------------------------------------------------------- boxes
    def power_on(self, name):
        self.generation[name] += 1
        box = self.boxes[name]
        box.power_on()
        self.line.end(name).power(True)
        node = Node(self.configs[name], me=name, generation=self.generation[name])
        agent = Agent(node, [self.line.end(name)], box, self.log_fn(name))
        self.agents[name] = agent
        self.runs[name] = aio.create_task(agent.run())
        return agent

    async def power_off(self, name):
        """Power loss: the loop stops dead (no shutdown, no goodbye), resources vanish."""
        agent = self.agents[name]
        self.line.end(name).power(False)
        self.boxes[name].power_off()
        for task in agent.tasks:        # acquire/release/probe in progress die with the box
            task.cancel()
        # Agent.run cancels its reader and ticker tasks once `stopped` is set; cancelling the
        # run() task itself would leave them running (they are not awaited in a finally)
        agent.is_stopped = True
        agent.stopped.set()
        await self.runs[name]
        del self.agents[name]

    def holders(self):
        return [n for n in NAMES if self.boxes[n].holds(KEY)]

    def running(self, name):
        return list(self.boxes[name].up)

    def settled_on(self, name):
        """name runs every resource of the group and the other box holds nothing."""
        other = NAMES[1] if name == NAMES[0] else NAMES[0]
        agent = self.agents.get(name)
        return (self.running(name) == self.resources and not self.boxes[other].holding
                and agent is not None and not agent.node.groups[0].busy())

    async def sampler(self):
        while self.sampling:
            h = self.holders()
            self.samples += 1
            if len(h) > 1:
                self.doubles.append((self.clock.ms(), h))
            if HEAP and self.samples % 50 == 0:
                # the live heap (code included) every ~100 ms: a collection takes well under 1 ms
                gc.collect()
                live = gc.mem_alloc()
                if live > self.heap_live_max:
                    self.heap_live_max = live
            await aio.sleep_ms(SAMPLE_MS)

    async def until(self, predicate, limit_ms):
        """Wait until predicate() holds; elapsed ms, or None after limit_ms."""
        start = self.clock.ms()
        while True:
            elapsed = self.clock.ms() - start
            if predicate():
                return elapsed
            if elapsed > limit_ms:
                return None
            await aio.sleep_ms(1)

    async def steady(self, name, ms):
        """For ms, the group stays settled on name at every look."""
        start = self.clock.ms()
        while self.clock.ms() - start < ms:
            self.check(self.settled_on(name), "group left %s during a steady period: %s holds, %s runs %s"
                       % (name, self.holders(), name, self.running(name)))
            await aio.sleep_ms(SAMPLE_MS)

    def check(self, ok, message):
        if not ok:
            raise AssertionError("%s\n--- events ---\n%s\n--- logs ---\n%s"
                                 % (message, self.events_text(), self.log_text()))

    def events_text(self):
        return "\n".join("%6d %s %-8s %s" % e for e in self.events)

    def exact_overlaps(self):
        """Walk the start/stop events in order: moments where two boxes ran something of the group."""
        up = {}
        bad = []
        for t, box, what, token in self.events:
            if what == "start":
                up.setdefault(box, []).append(token)
            elif what in ("stop", "lost"):
                if token in up.get(box, []):
                    up[box].remove(token)
            elif what == "conflict":
                bad.append((t, box, "conflict on " + token))
            active = [b for b in up if up[b]]
            if len(active) > 1:
                bad.append((t, box, "%s %s while %s run" % (what, token, active)))
        return bad

    def peer_alive(self, name):
        agent = self.agents.get(name)
        return agent is not None and agent.node.peer_state() == "active"


async def run_story(quiet=False):
    p = Pair(quiet)
    timings = {}
    sampler = aio.create_task(p.sampler())
    try:
        # 1. cold start ------------------------------------------------------------
        p.say("cold start: node1 and node2 boot")
        p.power_on("node1")
        await aio.sleep_ms(20)
        p.power_on("node2")
        took = await p.until(lambda: p.settled_on("node1"), 3 * INITDEAD_MS)
        p.check(took is not None, "cold start: node1 never held the group alone")
        timings["cold_start_ms"] = took
        p.say("node1 holds %s after %d ms (initdead %d ms: it did not wait for it)"
              % (" ".join(p.running("node1")), took, INITDEAD_MS))
        p.check(took < INITDEAD_MS, "cold start took %d ms: the nodes did not agree before initdead" % took)
        p.check(not [c for c in p.boxes["node2"].calls if c[0] != "release"],
                "node2 acted on the group at cold start: %r" % p.boxes["node2"].calls)
        await p.steady("node1", 300)
        st = p.agents["node2"].node.status()
        p.check(st["groups"][0]["held_by"] == "node1" and st["peer_state"] == "active",
                "node2's view of node1: %r" % st)

        # 2. serial cable cut, LAN up: the probe keeps node2 off the VIP --------------
        p.say("serial cable cut (LAN still up)")
        p.line.set_cut(True)
        cut_at = p.clock.ms()
        took = await p.until(lambda: p.agents["node2"].node.peer_state() == "dead", 2 * DEADTIME_MS)
        p.check(took is not None, "node2 never declared node1 dead with the cable cut")
        p.say("node2 declares node1 dead after %d ms" % took)
        await p.steady("node1", 400)
        probes = len([c for c in p.boxes["node2"].calls if c[0] == "probe"])
        p.check(probes >= 1, "node2 never probed the VIP after losing node1: %r" % p.boxes["node2"].calls)
        p.check(not p.boxes["node2"].holding, "node2 took the group with node1's VIP answering")
        p.say("node2 probed %d times, found the VIP in use and took nothing" % probes)
        p.line.set_cut(False)
        took = await p.until(lambda: p.peer_alive("node1") and p.peer_alive("node2"), 2 * DEADTIME_MS)
        p.check(took is not None, "the pair did not come together after the cable was reconnected")
        p.say("cable reconnected %d ms after the cut; both see each other %d ms later"
              % (p.clock.ms() - cut_at - took, took))
        await p.steady("node1", 200)
        timings["cut_probes"] = probes

        # 3. power loss of node1 ------------------------------------------------------
        p.say("node1 loses power")
        await p.power_off("node1")
        took = await p.until(lambda: p.settled_on("node2"), DEADTIME_MS + 10 * FAILOVER_SLACK_MS)
        p.check(took is not None, "node2 never took the group after node1's power loss")
        timings["failover_ms"] = took
        p.say("node2 holds %s after %d ms (deadtime %d ms)" % (" ".join(p.running("node2")), took, DEADTIME_MS))
        p.check(took >= DEADTIME_MS - KEEPALIVE_MS,
                "failover after %d ms: before deadtime (%d ms) minus a keepalive" % (took, DEADTIME_MS))
        p.check(took <= DEADTIME_MS + FAILOVER_SLACK_MS,
                "failover took %d ms: more than deadtime + %d ms" % (took, FAILOVER_SLACK_MS))
        await p.steady("node2", 100)

        # 4. node1 returns: failback, release before acquire --------------------------
        p.say("node1 powers up again (generation %d)" % (p.generation["node1"] + 1))
        mark = len(p.events)
        p.power_on("node1")
        took = await p.until(lambda: p.settled_on("node1"), 3 * INITDEAD_MS)
        p.check(took is not None, "node1 never got its group back")
        timings["failback_ms"] = took
        p.check(took < INITDEAD_MS, "failback took %d ms: node1 waited for initdead instead of node2" % took)
        moves = [(e[1], e[2], e[3]) for e in p.events[mark:]]
        expected = ([("node2", "stop", t) for t in reversed(p.resources)]
                    + [("node1", "start", t) for t in p.resources])
        p.check(moves == expected, "failback moves %r, expected %r" % (moves, expected))
        stopped = p.events[mark + len(p.resources) - 1][0]
        started = p.events[mark + len(p.resources)][0]
        timings["failback_gap_ms"] = started - stopped
        p.say("failback: node2 stopped %s, then node1 started %s (%d ms between); %d ms in all"
              % (" ".join(reversed(p.resources)), " ".join(p.resources), started - stopped, took))
        await p.steady("node1", 200)

        # 5. clean shutdown of both -----------------------------------------------------
        p.say("shutdown: node2, then node1")
        for name in ("node2", "node1"):
            mark = len(p.events)
            p.agents[name].shutdown()
            done = await p.until(lambda: p.runs[name].done(), 2 * DEADTIME_MS)
            p.check(done is not None, "%s's loop did not end after shutdown" % name)
            moves = [(e[1], e[2], e[3]) for e in p.events[mark:]]
            if name == "node1":
                p.check(moves == [("node1", "stop", t) for t in reversed(p.resources)],
                        "node1's shutdown moves: %r" % moves)
            else:
                p.check(moves == [], "node2 holding nothing still moved: %r" % moves)
        p.check(not p.holders() and not p.lan.vips, "after shutdown: holders %r, VIPs %r"
                % (p.holders(), p.lan.vips))
    finally:
        p.sampling = False
        await sampler
        for name in list(p.runs):
            if not p.runs[name].done():
                p.runs[name].cancel()

    # everything, exactly and sampled -------------------------------------------------
    p.check(not p.doubles, "two holders at sampled moments: %r" % p.doubles[:5])
    overlaps = p.exact_overlaps()
    p.check(not overlaps, "two boxes ran the group at once: %r" % overlaps[:5])
    errors = [entry for entry in p.logs if entry[2] == "error"]
    p.check(not errors, "the agents logged errors: %r" % errors[:5])
    timings["samples"] = p.samples
    if HEAP:
        timings["heap_live_max"] = p.heap_live_max
        timings["heap_total"] = gc.mem_alloc() + gc.mem_free()
    p.say("%d samples, never two holders; %d resource starts/stops in order"
          % (p.samples, len(p.events)))
    return timings


def main(quiet=False):
    timings = aio.run(run_story(quiet))
    print("pair ok: " + " ".join("%s=%s" % (k, timings[k]) for k in sorted(timings)))
    return timings


if __name__ == "__main__":
    main()
