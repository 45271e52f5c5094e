"""A simulated pair: two Nodes, a serial line and two boxes' worth of resources.

Runs on CPython and MicroPython alike (no sleep, no threads, no random
module: a small LCG).  Time is an integer millisecond counter advanced by
``step``/``run``.  The line delivers bytes after a delay, paced at the baud
rate, and can drop, corrupt or be cut.  Each box runs its Acquire/Release
actions after a configurable delay and answers Probes from what really runs
on the other box.  ``doubles_ms`` accumulates the time any group was active
on both boxes at once.

What the model tells apart (issue 13, "the model checker sees none of this"):

* a group *may be up* on a box (``holds``, ``holders``) from the moment its
  Acquire is emitted until a Release of it completes successfully (a failed
  stop, or a failed start whose roll-back stop fails, leaves it up): the
  safety side.  It is *serving* (``serves``, ``servers``) only from the moment
  the acquire COMPLETES successfully until its Release is emitted: the
  liveness side.  Starts and stops take ``action_ms`` plus up to
  ``action_jitter_ms``; either can fail (``fail_start``, ``fail_stop``).
* the address answers ARP (what a peer's probe sees) from ``arp_after_ms``
  after the Acquire on (0: at once; more opens issue 13 finding 5's
  check-then-act window);
* two paths between the boxes, cut independently: the serial cable
  (``set_cut``) and the LAN (``set_lan``, ``set_lan_link``), which carries
  the ARP probe; each box's LAN adapter reports its health to its node
  (``Node.lan``: carrier while its port and the switch are up, ``lan_watch``)
  ``lan_detect_ms`` after a change, and a box whose ping node is lost
  (``set_ping``) reports one reachable ping node less; frames on the cable are delayed by ``delay_ms`` plus up
  to ``jitter_ms`` (in order: it is one wire) and delivered twice with
  probability ``duplicate``;
* a service that crashes on the box that runs it (``crash``: its last resource stops
  running; ``crashy``: it crashes ``crash_after_ms`` after every start or restart there):
  it no longer serves, while the box still holds the group; with ``monitor_interval``
  in the config the node's Check finds it failed (after ``check_ms``) and its Restart
  brings it back (after an action's time);
* a box that loses its state on restart (``power_on_blank``): its generation
  restarts at 1 while the peer keeps the floor it persisted (with
  ``persist_floors``, each box persists the peer's generation when its node
  emits PeerGeneration, as the daemon does).

Bookkeeping for the model checker's invariants (``account`` runs every step):
``double_while_hearing_ms`` is the time two boxes held a group while they had
heard each other over the cable for longer than ``hearing_grace_ms()``;
``double_while_lan_ms`` the same over the LAN only (a double whose loser's stop
failed, or while one box refuses the other's life as a replay, counts in
``double_excused_ms`` instead while "stop failed" / "life refused" is in ``excused``); ``unserved_run_ms`` the current
time nobody served a group while a healthy box existed and nothing excused it
(see ``unserved_excuse``), compared against ``unserved_bound_ms()``.
"""

from hanode.core.config import parse
from hanode.core.health import health_of
from hanode.core.frame import REPLAY
from hanode.core.node import Node
from hanode.core.wants import RETRY_MS

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
        self.node = sim.node_class(sim.configs[name], me=name, generation=generation,
                         peer_generation=sim.peer_generation_floor.get(name, 0))
        self.active = {}        # group key -> True while resources may be up on this box
        self.serving = {}       # group key -> True from a successful acquire's end until a Release
        self.arp_from = {}      # group key -> when its address starts answering ARP here
        self.stop_failed = set()  # group keys whose last stop here failed (until one succeeds)
        self.pending = []       # [due, kind, key, ok]
        self.logs = []
        self.fail_start = set()  # group keys whose start fails on this box
        self.fail_stop = set()
        self.stopped = False
        self.probe_done = {}    # group key -> when our last probe for it ended
        self.starts = 0         # Acquire outputs: start attempts on this box
        self.escalations = []   # (time, group) of each Escalate output
        self.crashed = set()    # group keys whose service (last resource) is not running here
        self.crashy = set()     # group keys whose service crashes crash_after_ms after each start here
        self.restarts = 0       # Restart outputs: restarts in place on this box
        self.lan_reported = None  # the health its LAN adapter last reported
        self.lan_seen = None      # (value, since): what the adapter is about to report

    def handle(self, outputs):
        sim = self.sim
        for o in outputs:
            if o.kind == "send":
                sim.transmit(self.name, o.data)
            elif o.kind == "acquire":
                self.starts += 1
                if not self.active.get(o.group):
                    self.arp_from[o.group] = sim.now + sim.arp_after_ms
                self.active[o.group] = True   # from the first start on, it may be up
                self.pending.append([sim.now + sim.action_time(), "acquire", o.group,
                                     o.group not in self.fail_start])
            elif o.kind == "release":
                self.serving.pop(o.group, None)   # the stop begins: count it unserved from now
                self.pending.append([sim.now + sim.action_time(), "release", o.group,
                                     o.group not in self.fail_stop])
            elif o.kind == "probe":
                self.pending.append([sim.now + sim.probe_ms, "probe", o.group, None])
            elif o.kind == "check":
                self.pending.append([sim.now + sim.check_ms, "check", o.group, None])
            elif o.kind == "restart":
                self.restarts += 1
                self.pending.append([sim.now + sim.action_time(), "restart", o.group, True])
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
                if ok:
                    self.serving[key] = True
                    self._started(key)
                elif key not in self.fail_stop:
                    self.active.pop(key, None)   # a failed start rolls itself back (its stops work)
                self.handle(self.node.completed(key, ok, sim.now))
            elif kind == "release":
                if ok:
                    self.active.pop(key, None)
                    self.serving.pop(key, None)
                    self.stop_failed.discard(key)
                else:
                    self.stop_failed.add(key)
                self.handle(self.node.completed(key, ok, sim.now))
            elif kind == "check":
                group = sim.cfg.group(key)
                results = [("running", "")] * len(group.resources)
                if key in self.crashed or not self.active.get(key):
                    results[-1] = ("failed", "exit 3: not running")
                self.handle(self.node.monitored(key, results, sim.now))
            elif kind == "restart":
                if self.active.get(key):   # (a release that overtook it stopped it for good)
                    self.serving[key] = True
                    self._started(key)
                self.handle(self.node.restarted(key, True, sim.now))
            elif kind == "crash":
                self.crash(key)
            else:
                other = sim.other(self.name)
                # someone answers for the address, or probes for it at the same time (RFC 5227)
                in_use = bool(sim.lan_up and self.lan and other is not None and other.powered
                              and other.lan and (other.answers_arp(key)
                                                 or other.probing(key, due - sim.probe_ms)))
                self.handle(self.node.probed(key, in_use, sim.now))

    def _started(self, key):
        self.crashed.discard(key)
        if key in self.crashy:
            self.pending.append([self.sim.now + self.sim.crash_after_ms, "crash", key, None])

    def crash(self, key):
        """The group's service (its last resource) dies here: the box still holds the group
        (its address is up), but it no longer serves until a restart or a new start."""
        if self.serving.get(key):
            self.crashed.add(key)
            self.serving.pop(key, None)

    def probing(self, key, since):
        """Was this box probing for key at any time from `since` until now?"""
        return any(p[1] == "probe" and p[2] == key and p[0] - self.sim.probe_ms <= self.sim.now
                   and p[0] >= since for p in self.pending) or self.probe_done.get(key, -1) >= since

    @property
    def lan(self):
        return self.sim.lan_links.get(self.name, True)

    def lan_health(self):
        """What this box's LAN is worth right now (health.py): carrier, and its ping node."""
        sim = self.sim
        carrier = sim.lan_up and self.lan
        return health_of(carrier, 1 if carrier and sim.pings.get(self.name, True) else 0)

    def watch_lan(self):
        """The LAN adapter: report a change of health lan_detect_ms after it happened."""
        sim = self.sim
        value = self.lan_health()
        if self.lan_seen is None or self.lan_seen[0] != value:
            self.lan_seen = (value, sim.now)
        if value != self.lan_reported and sim.now - self.lan_seen[1] >= sim.lan_detect_ms:
            self.lan_reported = value
            self.handle(self.node.lan(value, sim.now, "sim"))

    def holds(self, key):
        """The group may be up here (safety): from its Acquire until a successful Release."""
        return bool(self.active.get(key))

    def serves(self, key):
        """The group runs here (liveness): from its acquire's success until its Release."""
        return self.powered and bool(self.serving.get(key))

    def answers_arp(self, key):
        return bool(self.active.get(key)) and self.sim.now >= self.arp_from.get(key, 0)

    def healthy(self, key):
        """Could run ``key`` if asked: powered, its agent running (not frozen, not shut down),
        its start of the group works and it knows its name is its own."""
        n = self.node
        return (self.powered and not self.frozen and not self.stopped and not n.shutting_down
                and key not in self.fail_start and key not in self.crashy and n.identity_conflict is None)


    def log_text(self):
        return "\n".join("%d %s %s" % entry for entry in self.logs)


class Sim:
    def __init__(self, seed=1, delay_ms=13, action_ms=50, probe_ms=30, tick_ms=5, **config_args):
        self.now = 1000
        self.rng = Rng(seed)
        self.node_class = Node      # (a test may run the pair with a Node subclass)
        self.delay_ms = delay_ms
        self.jitter_ms = 0          # a frame takes up to this much longer (in order: one wire)
        self.duplicate = 0.0        # chance that a frame arrives twice
        self.action_ms = action_ms
        self.action_jitter_ms = 0   # a start or stop takes up to this much longer
        self.arp_after_ms = 0       # an added address answers ARP this long after its Acquire
        self.probe_ms = probe_ms
        self.check_ms = 10          # a status check's run time
        self.crash_after_ms = 200   # a crashy service dies this long after each start
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
        self.muted = set()   # boxes whose frames the line loses (one direction of the cable cut)
        self.drop = 0.0
        self.corrupt = 0.0
        self.lan_up = True
        self.lan_links = {}
        self.lan_watch = True      # the boxes' LAN adapters report health (False: a release without them)
        self.lan_detect_ms = 5     # carrier loss reaches the node this long after it happens
        self.pings = {}            # box name -> its ping node answers it (default True)
        self.doubles_ms = 0
        self.max_double_ms = 0
        self.double_run = 0
        self.double_while_linked_ms = 0
        self.linked_since = self.now
        self.hearing_since = None       # cable up, line clean, both agents running: since when
        self.lan_hearing_since = None   # both boxes on an up LAN: since when
        self.double_while_hearing_ms = 0
        self.double_while_lan_ms = 0
        self.double_excused_ms = 0      # doubles while hearing with a failed stop (finding 3)
        self.max_action_ms = action_ms  # the slowest start or stop configured so far
        self.max_jitter_ms = 0
        self.unserved_run_ms = {}       # group key -> ms unserved while a healthy box could serve it
        self.max_unserved_ms = 0
        self.unserved_excuses = {}      # why an unserved group was not counted: excuse -> ms
        # known findings the invariants' bookkeeping excuses (see unserved_excuse, account)
        # ("life refused": finding 1, fixed since; kept to test a build without the fix)
        self.excused = ("frozen holder", "stop failed", "monitor alarm")
        self.holder_count = {}          # group key -> holders at the last step
        self.doubles_begun_on_lan = 0   # a second holder appeared while the LAN carried ARP

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

    def restart_agent(self, name):
        """``hanode restart`` on box ``name``: its node announces the restart and stops; the box's
        resources stay up.  ``agent_back`` starts the next agent."""
        box = self.boxes[name]
        box.handle(box.node.restart(self.now))
        return box

    def agent_back(self, name, forget=False):
        """The next agent on box ``name`` starts (a new generation; ``forget``: its state
        directory was wiped) and finds the old one's resources still up: it adopts them."""
        old = self.boxes[name]
        if forget:
            self.generations[name] = 0
            self.peer_generation_floor.pop(name, None)
        self.generations[name] += 1
        box = Box(self, name, self.generations[name])
        box.active, box.serving, box.arp_from = old.active, old.serving, old.arp_from
        self.boxes[name] = box
        box.handle(box.node.start(self.now, [key for key in box.active if box.active[key]]))
        return box

    def power_on_blank(self, name):
        """Power on with no state (issue 13 finding 1): ``power_on(name, forget=True)``."""
        return self.power_on(name, forget=True)

    def power_off(self, name):
        box = self.boxes[name]
        box.powered = False
        box.active = {}
        box.serving = {}
        box.stop_failed = set()
        box.pending = []
        box.crashed = set()

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

    def set_muted(self, name, muted):
        """Lose what ``name`` sends while the other direction still carries: a heal that reaches
        one box before the other."""
        if not muted and name in self.muted:
            self.linked_since = self.now
        (self.muted.add if muted else self.muted.discard)(name)

    def action_time(self):
        extra = self.rng.below(self.action_jitter_ms + 1) if self.action_jitter_ms else 0
        self.max_action_ms = max(self.max_action_ms, self.action_ms + self.action_jitter_ms)
        return self.action_ms + extra

    def set_lan(self, up):
        """The LAN switch as a whole (both boxes' probes go through it)."""
        self.lan_up = up

    def set_lan_link(self, name, up):
        """One box's LAN port (its cable to the switch)."""
        self.lan_links[name] = up

    def set_ping(self, name, up):
        """Whether box ``name`` reaches its ping node (the gateway, say) while its carrier is up."""
        self.pings[name] = up

    def transmit(self, src, data):
        dst = "node2" if src == "node1" else "node1"
        if self.cut or src in self.muted:
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
        at = int(self.line_free_at[src]) + self.delay_ms
        if self.jitter_ms:
            # a late frame holds up the ones behind it: bytes on one wire stay in order
            self.max_jitter_ms = max(self.max_jitter_ms, self.jitter_ms)
            at += self.rng.below(self.jitter_ms + 1)
            for m in self.in_flight:
                if m[1] == dst and m[0] > at and len(m) == 3:
                    at = m[0]
        self.in_flight.append([at, dst, bytes(out)])
        if self.duplicate and self.rng.chance(self.duplicate):
            # a second copy (a repeater or a ucast path); marked so the order rule skips it
            self.in_flight.append([at + 1 + self.rng.below(4 * self.delay_ms + 1), dst, bytes(out), "copy"])

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
            if self.lan_watch:
                box.watch_lan()
            box.handle(box.node.tick(self.now))
        self.account()

    def account(self):
        self._account_hearing()
        for g in self.cfg.groups:
            holders = [b for b in self.boxes.values() if b.powered and b.holds(g.key)]
            self._account_service(g.key)
            if len(holders) > 1 and self.holder_count.get(g.key, 0) < 2 and self.lan_hearing():
                self.doubles_begun_on_lan += 1   # its probe should have heard the other's address
            self.holder_count[g.key] = len(holders)
            if len(holders) > 1:
                hearing = (self.hearing_since is not None
                           and self.now - self.hearing_since > self.hearing_grace_ms())
                on_lan = (self.lan_hearing_since is not None
                          and self.now - self.lan_hearing_since > self.lan_grace_ms())
                if (hearing or on_lan) and "stop failed" in self.excused and self.stop_failed_somewhere(g.key):
                    # the loser's stop failed: it may still run there (finding 3, being fixed)
                    self.double_excused_ms += self.tick_ms
                elif (hearing or on_lan) and "life refused" in self.excused and self.refused_lives():
                    # one box drops the other's frames as replays: it cannot hear it (finding 1)
                    self.double_excused_ms += self.tick_ms
                elif hearing:
                    self.double_while_hearing_ms += self.tick_ms
                elif on_lan:
                    self.double_while_lan_ms += self.tick_ms
                self.doubles_ms += self.tick_ms
                self.double_run += self.tick_ms
                self.max_double_ms = max(self.max_double_ms, self.double_run)
                if not self.cut and not self.muted and self.now - self.linked_since > self.cfg.deadtime_ms:
                    self.double_while_linked_ms += self.tick_ms
            else:
                self.double_run = 0

    # ------------------------------------------------------------ invariants
    def serial_hearing(self):
        """The boxes can hear each other over the cable: it is connected, the line is clean
        (no drops, no corruption, a frame arrives well within the dead time) and both boxes
        are powered with their agent running (not frozen, not shut down)."""
        boxes = list(self.boxes.values())
        clean = (not self.drop and not self.corrupt
                 and self.delay_ms + self.jitter_ms + self.cfg.keepalive_ms < self.cfg.deadtime_ms)
        return (not self.cut and not self.muted and clean and len(boxes) == 2
                and all(b.powered and not b.frozen and not b.stopped for b in boxes))

    def lan_hearing(self):
        """The boxes can hear each other's ARP on the LAN: the switch and both ports are up and
        both boxes are powered (the kernel answers ARP whatever the agent does)."""
        boxes = list(self.boxes.values())
        return self.lan_up and len(boxes) == 2 and all(b.powered and b.lan for b in boxes)

    def hearing_grace_ms(self):
        """How long two holders may last once the boxes hear each other over the cable: the
        peer's first frame (a keepalive, the line's delay and jitter; a dead time for a peer that
        has just come back from a stall), then the loser's start in progress finishing and its
        stop (two of the slowest actions), plus two ticks of the simulation."""
        cfg = self.cfg
        return (cfg.deadtime_ms + cfg.keepalive_ms + self.delay_ms + self.max_jitter_ms
                + 2 * self.max_action_ms + 2 * self.tick_ms)

    def lan_grace_ms(self):
        """The same over the LAN, once ongoing ARP conflict detection exists (issue 13 finding
        5): a probe interval to hear the other's address, then a start and a stop."""
        return max(self.cfg.keepalive_ms, 200) * 2 + 50 + 2 * self.max_action_ms + 2 * self.tick_ms

    def unserved_bound_ms(self):
        """The longest a group may go unserved while a healthy box could serve it: the peer's
        death noticed (initdead or deadtime, plus a keepalive and the line's delay), one ARP
        probe that finds the address busy and the retry after it (the non-preferred node's
        interval), a failed start's retry (RETRY_MS), and the slowest stop of the old holder
        and start of the new one plus a start in progress (three actions), plus 100 ms."""
        cfg = self.cfg
        probe_retry = max(cfg.keepalive_ms, 200) * 2 + 50
        return (max(cfg.initdead_ms, cfg.deadtime_ms) + 2 * cfg.keepalive_ms + self.delay_ms
                + self.max_jitter_ms + 2 * (self.probe_ms + probe_retry) + RETRY_MS
                + 3 * self.max_action_ms + 100 + self.restart_bound_ms())

    def restart_bound_ms(self):
        """With monitoring on, a crashed service is found within a monitor interval and a
        check, and restarted in place within an action more (0 with monitoring off)."""
        interval = self.cfg.monitor_interval_ms
        return interval + self.check_ms + self.max_action_ms + self.tick_ms if interval else 0

    def unserved_excuse(self, key):
        """Why nobody serving ``key`` is not (yet) the pair's fault, or None:

        - "frozen holder": a frozen box may have it up (its address answers the peer's probe):
          the watchdog's job, which the sim does not model; counted from the thaw;
        - "stop failed": a box's last stop of it failed (stop_failed, a retry, a shutdown): it
          may still run there, so the peer is barred (issue 13 finding 3, being fixed);
        - "life refused": one box drops the other's frames as replays (it restarted without
          its state): the refused box waits for an acknowledgement that never comes (issue
          13 finding 1, being fixed);
        - "monitor alarm": the box holding it keeps restarting its crashing service with
          back-off, alarmed, because the peer cannot take it (in standby, stale, not active,
          or it gave the group back): the operator's to act on (hanode/core/monitor.py).

        - "restart grace": a box announced its agent restart and its peer holds off (by design,
          bounded by restart_grace), e.g. while the box died during the restart; always given.

        Only the excuses listed in ``self.excused`` are given (and "restart grace")."""
        for b in self.boxes.values():
            if not b.powered:
                continue
            if b.frozen and b.holds(key) and "frozen holder" in self.excused:
                return "frozen holder"
        if "stop failed" in self.excused and self.stop_failed_somewhere(key):
            return "stop failed"
        if any(b.powered and b.node.peer_restart is not None for b in self.boxes.values()):
            return "restart grace"   # the peer announced its restart: held off by design, bounded by the grace
        if "monitor alarm" in self.excused and self.monitor_alarmed(key):
            return "monitor alarm"
        if "life refused" in self.excused and self.refused_lives():
            return "life refused"
        return None

    def refused_lives(self):
        """Boxes whose current life the peer refuses: their latest frame would be dropped as a
        replay (a box that lost its state restarts at generation 1, below the peer's floor or
        its last accepted sequence number: issue 13 finding 1)."""
        names = []
        for b in self.boxes.values():
            other = self.other(b.name)
            if (b.powered and not b.stopped and b.node.seq and other is not None and other.powered
                    and other.node.guard.check(b.node.my_id, b.node.gen, b.node.seq) == REPLAY):
                names.append(b.name)
        return sorted(names)

    def monitor_alarmed(self, key):
        """A powered box holds ``key`` and restarts it with back-off, alarmed (no healthy peer)."""
        for b in self.boxes.values():
            if b.powered and b.holds(key):
                g = b.node._group(key)
                if b.node.monitoring.monitors[g.index].alarm is not None:
                    return True
        return False

    def stop_failed_somewhere(self, key):
        """A powered box's last stop of ``key`` failed (it is in stop_failed, retrying, or shut
        down with it held)."""
        return any(b.powered and key in b.stop_failed for b in self.boxes.values())

    def _account_hearing(self):
        if self.serial_hearing():
            if self.hearing_since is None:
                self.hearing_since = self.now
        else:
            self.hearing_since = None
        if self.lan_hearing():
            if self.lan_hearing_since is None:
                self.lan_hearing_since = self.now
        else:
            self.lan_hearing_since = None

    def _account_service(self, key):
        boxes = [b for b in self.boxes.values()]
        if any(b.serves(key) for b in boxes) or not any(b.healthy(key) for b in boxes):
            self.unserved_run_ms[key] = 0
            return
        excuse = self.unserved_excuse(key)
        if excuse is not None:
            self.unserved_excuses[excuse] = self.unserved_excuses.get(excuse, 0) + self.tick_ms
            self.unserved_run_ms[key] = 0
            return
        run = self.unserved_run_ms.get(key, 0) + self.tick_ms
        self.unserved_run_ms[key] = run
        self.max_unserved_ms = max(self.max_unserved_ms, run)

    def servers(self, key=None):
        key = key or self.cfg.groups[0].key
        return sorted(b.name for b in self.boxes.values() if b.serves(key))

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
        """Exactly one powered box holds the group and nothing is in flight on either box (a
        probe still out when an agent shut down died with it: a stopped agent's is ignored)."""
        return len(self.holders(key)) == 1 and all(
            not b.pending for b in self.boxes.values() if b.powered and not b.stopped)
