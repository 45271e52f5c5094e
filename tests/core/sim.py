"""A simulated pair: two Nodes, a serial line and two boxes' worth of resources.

Runs on CPython and MicroPython alike (no sleep, no threads, no random
module: a small LCG).  Time is an integer millisecond counter advanced by
``step``/``run``.  The line delivers bytes after a delay, paced at the baud
rate, and can drop, corrupt or be cut.  Each box runs its Acquire/Release
actions after a configurable delay and answers Probes from what really runs
on the other box.  ``doubles_ms`` accumulates the time any group was active
on both boxes at once.
"""

from hanode.core.config import parse
from hanode.core.node import Node

HA_CF = """
keepalive {keepalive}
warntime {warntime}
deadtime {deadtime}
initdead {initdead}
baud 19200
serial /dev/ttyS0
auto_failback {failback}
node node1
node node2
vip_probe {probe}
"""

AUTHKEYS = "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n"

HARESOURCES = "node1 192.0.2.100 httpd\n"


def make_config(keepalive="100ms", warntime="300ms", deadtime="500ms", initdead="2",
                failback="on", probe="on", haresources=HARESOURCES, me="node1", extra=""):
    text = HA_CF.format(keepalive=keepalive, warntime=warntime, deadtime=deadtime,
                        initdead=initdead, failback=failback, probe=probe) + extra
    return parse(text, AUTHKEYS, haresources, me=me)


class Rng:
    """Deterministic LCG, the same on both interpreters."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF

    def next(self):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state

    def chance(self, p):
        return (self.next() % 1000000) < p * 1000000

    def below(self, n):
        return self.next() % n


class Box:
    def __init__(self, sim, name, generation):
        self.sim = sim
        self.name = name
        self.generation = generation
        self.powered = True
        self.frozen = False
        self.node = Node(sim.configs[name], me=name, generation=generation,
                         peer_generation=sim.peer_generation_floor.get(name, 0))
        self.active = {}        # group key -> True while resources may be up on this box
        self.pending = []       # [due, kind, key, ok]
        self.logs = []
        self.fail_start = set()  # group keys whose start fails on this box
        self.fail_stop = set()
        self.stopped = False
        self.probe_done = {}    # group key -> when our last probe for it ended
        self.starts = 0         # Acquire outputs: start attempts on this box
        self.escalations = []   # (time, group) of each Escalate output

    def handle(self, outputs):
        sim = self.sim
        for o in outputs:
            if o.kind == "send":
                sim.transmit(self.name, o.data)
            elif o.kind == "acquire":
                self.starts += 1
                self.active[o.group] = True   # from the first start on, it may be up
                self.pending.append([sim.now + sim.action_ms, "acquire", o.group,
                                     o.group not in self.fail_start])
            elif o.kind == "release":
                self.pending.append([sim.now + sim.action_ms, "release", o.group,
                                     o.group not in self.fail_stop])
            elif o.kind == "probe":
                self.pending.append([sim.now + sim.probe_ms, "probe", o.group, None])
            elif o.kind == "log":
                self.logs.append((sim.now, o.level, o.text))
            elif o.kind == "escalate":
                self.escalations.append((sim.now, o.group))
            elif o.kind == "stopped":
                self.stopped = True
            elif o.kind == "need_nonce":
                self.handle(self.node.nonce(sim.rng.next() & 0xFFFFFFFF, sim.now))
            elif o.kind == "new_generation":
                # the box's generation file: written (at once here) before the node may use it
                sim.generations[self.name] = o.generation
                self.handle(self.node.generation_saved(o.generation, True, sim.now))
            elif o.kind == "peer_generation" and sim.persist_floors:
                sim.peer_generation_floor[self.name] = o.generation   # as the daemon's state dir does

    def due_actions(self):
        sim = self.sim
        ready = [p for p in self.pending if p[0] <= sim.now]
        for p in ready:
            self.pending.remove(p)
            due, kind, key, ok = p
            if kind == "probe":
                self.probe_done[key] = due
            if kind == "acquire":
                if not ok:
                    self.active.pop(key, None)   # a failed start rolls itself back
                self.handle(self.node.completed(key, ok, sim.now))
            elif kind == "release":
                if ok:
                    self.active.pop(key, None)
                self.handle(self.node.completed(key, ok, sim.now))
            else:
                other = sim.other(self.name)
                # someone answers for the address, or probes for it at the same time (RFC 5227)
                in_use = bool(sim.lan_up and other is not None and other.powered and other.lan
                              and (other.active.get(key) or other.probing(key, due - sim.probe_ms)))
                self.handle(self.node.probed(key, in_use, sim.now))

    def probing(self, key, since):
        """Was this box probing for key at any time from `since` until now?"""
        return any(p[1] == "probe" and p[2] == key and p[0] - self.sim.probe_ms <= self.sim.now
                   and p[0] >= since for p in self.pending) or self.probe_done.get(key, -1) >= since

    @property
    def lan(self):
        return self.sim.lan_links.get(self.name, True)

    def holds(self, key):
        return bool(self.active.get(key))

    def log_text(self):
        return "\n".join("%d %s %s" % entry for entry in self.logs)


class Sim:
    def __init__(self, seed=1, delay_ms=13, action_ms=50, probe_ms=30, tick_ms=5, **config_args):
        self.now = 1000
        self.rng = Rng(seed)
        self.delay_ms = delay_ms
        self.action_ms = action_ms
        self.probe_ms = probe_ms
        self.tick_ms = tick_ms
        self.config_args = config_args
        self.configs = {"node1": make_config(me="node1", **config_args),
                        "node2": make_config(me="node2", **config_args)}
        self.cfg = self.configs["node1"]
        self.boxes = {}
        self.generations = {"node1": 0, "node2": 0}
        self.peer_generation_floor = {}
        self.persist_floors = False   # True: each box keeps the peer's generation across its restarts
        self.in_flight = []     # [deliver_at, dst, bytes]
        self.line_free_at = {"node1": 0, "node2": 0}
        self.cut = False
        self.drop = 0.0
        self.corrupt = 0.0
        self.lan_up = True
        self.lan_links = {}
        self.doubles_ms = 0
        self.max_double_ms = 0
        self.double_run = 0
        self.double_while_linked_ms = 0
        self.linked_since = self.now

    # ------------------------------------------------------------------ boxes
    def power_on(self, name, forget=False):
        """Start box ``name``; ``forget``: its state is gone (RMA swap, reflash, tmpfs /data):
        it starts at generation 1 and no longer knows the peer's generation."""
        if forget:
            self.generations[name] = 0
            self.peer_generation_floor.pop(name, None)
        self.generations[name] += 1
        box = Box(self, name, self.generations[name])
        self.boxes[name] = box
        box.handle(box.node.start(self.now))
        return box

    def power_off(self, name):
        box = self.boxes[name]
        box.powered = False
        box.active = {}
        box.pending = []

    def freeze(self, name):
        self.boxes[name].frozen = True

    def thaw(self, name):
        self.boxes[name].frozen = False

    def other(self, name):
        return self.boxes.get("node2" if name == "node1" else "node1")

    def box(self, name):
        return self.boxes[name]

    # ------------------------------------------------------------------- line
    def set_cut(self, cut):
        if cut != self.cut and not cut:
            self.linked_since = self.now
        self.cut = cut

    def transmit(self, src, data):
        dst = "node2" if src == "node1" else "node1"
        if self.cut:
            return
        start = max(self.now, self.line_free_at[src])
        byte_ms = 10000.0 / 19200
        self.line_free_at[src] = start + len(data) * byte_ms
        out = bytearray()
        for b in data:
            if self.drop and self.rng.chance(self.drop):
                continue
            if self.corrupt and self.rng.chance(self.corrupt):
                b ^= 1 << self.rng.below(8)
            out.append(b)
        self.in_flight.append([int(self.line_free_at[src]) + self.delay_ms, dst, bytes(out)])

    def deliver(self):
        ready = [m for m in self.in_flight if m[0] <= self.now]
        for m in ready:
            self.in_flight.remove(m)
            box = self.boxes.get(m[1])
            if box is None or not box.powered or self.cut:
                continue
            if box.frozen:
                box.buffer = getattr(box, "buffer", b"") + m[2]   # the UART buffer keeps it
                continue
            box.handle(box.node.receive(m[2], self.now))

    # ------------------------------------------------------------------- time
    def step(self):
        self.now += self.tick_ms
        self.deliver()
        for box in list(self.boxes.values()):
            if not box.powered or box.frozen or box.stopped:
                continue
            pending = getattr(box, "buffer", b"")
            if pending:
                box.buffer = b""
                box.handle(box.node.receive(pending, self.now))
            box.due_actions()
            box.handle(box.node.tick(self.now))
        self.account()

    def account(self):
        for g in self.cfg.groups:
            holders = [b for b in self.boxes.values() if b.powered and b.holds(g.key)]
            if len(holders) > 1:
                self.doubles_ms += self.tick_ms
                self.double_run += self.tick_ms
                self.max_double_ms = max(self.max_double_ms, self.double_run)
                if not self.cut and self.now - self.linked_since > self.cfg.deadtime_ms:
                    self.double_while_linked_ms += self.tick_ms
            else:
                self.double_run = 0

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.step()

    def run_until(self, predicate, limit_ms):
        """Step until predicate() holds; return the elapsed ms, or None on timeout."""
        start = self.now
        while self.now - start <= limit_ms:
            if predicate():
                return self.now - start
            self.step()
        return None

    def holders(self, key=None):
        key = key or self.cfg.groups[0].key
        return sorted(b.name for b in self.boxes.values() if b.powered and b.holds(key))

    def settled(self, key=None):
        """Exactly one powered box holds the group and nothing is in flight on either box."""
        return len(self.holders(key)) == 1 and all(
            not b.pending for b in self.boxes.values() if b.powered)
