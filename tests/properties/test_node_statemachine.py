"""Hypothesis drives the simulated pair (tests/core/sim.py) through random field events and
checks the safety and liveness invariants after every step.

The events: power loss and power-on, power-on of a box that lost its state (generation back
to 1, the peer keeps its floor), freezes, the serial cable cut, the LAN switch and each box's
LAN port cut independently of it (each box's LAN adapter reports the carrier to its node: LAN
health, issue 14), each box's ping node lost, line noise, frames delayed by a variable amount and
delivered twice, starts and stops that are slow (with jitter) or fail, standby/takeover,
clean shutdowns and shutdowns whose stop fails, agent restarts (``hanode restart``: the
groups stay up) whose next agent comes back - with or without its state - or never does,
and the service crashing on a box (once, or
after every start: monitoring is on, ``MONITOR``: restarts in place, then the hand-over).

The invariants (checked after every rule, i.e. after every burst of simulated time):

* **safety, cable**: never two holders while the boxes hear each other over the cable.  A
  group *may be up* on a box from its Acquire until a successful Release (a failed stop keeps
  it up).  "Hear each other over the cable" means: the cable is connected, the line is clean
  (no drops or corruption, delay + jitter + keepalive < deadtime) and both boxes are powered
  with their agents running (not frozen, not shut down) - continuously for longer than
  ``Sim.hearing_grace_ms()`` = deadtime + keepalive + delay + jitter + two of the slowest
  actions (a start in progress and the loser's stop) + 2 ticks.  A double whose loser's
  stop failed is booked apart (``sim.double_excused_ms``: issue 13 finding 3, being fixed;
  HANODE_MODEL_FINDINGS=3 counts it).  A box restarted without its state (finding 1, fixed
  by the rejoin challenge) is checked like any other.
* **safety, LAN**: a second holder never *appears* while both boxes are on an up LAN (the
  ARP probe before each address must hear the other's address or its concurrent probe).
  A double that began while the LAN was cut and lasts once it is back is resolved only by
  ongoing ARP conflict detection (issue 13 finding 5, being fixed): that check runs only
  with HANODE_MODEL_FINDINGS=5 (bound ``Sim.lan_grace_ms()``), as does a late-answering
  address (the check-then-act window of finding 5).
* **liveness**: no group goes unserved (nobody's acquire completed, or its release began)
  for longer than ``Sim.unserved_bound_ms()`` while a healthy box exists (powered, agent
  running, its start works, no identity conflict): max(initdead, deadtime) + 2 keepalives +
  delay + jitter + 2 (probe + probe retry) + RETRY_MS (5 s) + 3 of the slowest actions +
  100 ms.  Excused by default (counted in ``sim.unserved_excuses``): a frozen box holding
  the group (the watchdog's job, not modelled), a failed stop that bars the peer (issue
  13 finding 3, being fixed; HANODE_MODEL_FINDINGS=3 takes that excuse away).
* **monitoring**: a crashed service is served again within ``Sim.restart_bound_ms()``
  (monitor interval + check + a restart) while its box may keep it, and past the restart
  limit it moves to a healthy peer - the liveness bound above covers both; a box restarting
  with back-off because the peer cannot take it is excused ("monitor alarm").
* every event has a row in its transition table; ``settle`` heals everything and then
  exactly one box must hold and serve the group, and auto_failback must bring it home
  (not owed after an operator's standby/takeover; owed after a box came back without its
  state, since finding 1's fix).

HANODE_STATEFUL_EXAMPLES sets the number of examples (default 300: 15 s on an idle core, 20-31 s
under load); the ``slow`` test runs HANODE_STATEFUL_EXAMPLES_LONG (default 1000) programs of 80
steps.  Run the known findings' checks with e.g. HANODE_MODEL_FINDINGS=3 or =all.
"""

import os

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hanode.core.monitor import BACKOFF_CAP_MS
from hanode.core.wants import QUIET_STOP_RETRY_MS
from tests.support.sim import Sim

NODES = st.sampled_from(["node1", "node2"])
KEY = "192.0.2.100"
MONITOR = "monitor_interval 300ms\nmonitor_failures 2\nmonitor_window 30\n"
# Known findings of issue 13 that other branches fix: their checks run only when asked, by
# number (HANODE_MODEL_FINDINGS=3,5) or all of them (HANODE_MODEL_FINDINGS=all).
_ASKED = os.environ.get("HANODE_MODEL_FINDINGS", "").replace(" ", "").split(",")
FINDING3, FINDING5 = ["all" in _ASKED or n in _ASKED for n in ("3", "5")]


class Pair(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.sim = Sim(seed=7, action_ms=50, extra=MONITOR)
        self.sim.persist_floors = True   # each box keeps its peer's generation, as the daemon does
        if FINDING3:
            self.sim.excused = tuple(e for e in self.sim.excused if e != "stop failed")
        self.sim.power_on("node1")
        self.sim.power_on("node2")
        # nodes whose standby/takeover state an operator command may have set (sticky until
        # that node restarts): while any is, failback to the preferred node is not owed
        self.manual = set()
        self.failing = set()      # boxes whose start of the group fails
        self.failing_stop = set() # boxes whose stop of the group fails
        self.crashy = set()       # boxes whose service crashes after every start

    def alive(self, name):
        box = self.sim.boxes[name]
        return (box.powered and not box.frozen and not box.node.shutting_down
                and box.node.restarting is None)

    def _scripts(self, name):
        box = self.sim.boxes[name]
        box.fail_start = {KEY} if name in self.failing else set()
        box.fail_stop = {KEY} if name in self.failing_stop else set()
        box.crashy = {KEY} if name in self.crashy else set()

    def _logs(self):
        return (self.sim.box("node1").log_text(), self.sim.box("node2").log_text())

    # ------------------------------------------------------------------ faults
    @rule(name=NODES)
    def power_off(self, name):
        if self.sim.boxes[name].powered:
            self.sim.power_off(name)

    @rule(name=NODES, blank=st.sampled_from([False, False, False, True]))
    def power_on(self, name, blank):
        """Power on (after a power loss or a shutdown); now and then the box lost its state."""
        box = self.sim.boxes[name]
        if not box.powered or (box.stopped and box.node.restarting is None):
            if blank:
                self.sim.power_on_blank(name)
            else:
                self.sim.power_on(name)
            self._scripts(name)
            self.manual.discard(name)

    @rule(name=NODES)
    def agent_restart(self, name):
        """hanode restart: the agent announces, stops and leaves the groups up."""
        if self.alive(name):
            self.sim.restart_agent(name)

    @rule(name=NODES, blank=st.sampled_from([False, False, False, True]))
    def agent_back(self, name, blank):
        """The next agent after a restart (now and then with its state directory wiped)."""
        box = self.sim.boxes[name]
        if box.powered and box.stopped and box.node.restarting is not None:
            self.sim.agent_back(name, forget=blank)
            self._scripts(name)
            self.manual.discard(name)

    @rule(name=NODES)
    def freeze(self, name):
        if self.sim.boxes[name].powered:
            self.sim.freeze(name)

    @rule(name=NODES)
    def thaw(self, name):
        self.sim.thaw(name)

    @rule(cut=st.booleans())
    def cable(self, cut):
        self.sim.set_cut(cut)

    @rule(up=st.booleans())
    def lan(self, up):
        self.sim.set_lan(up)

    @rule(name=NODES, up=st.booleans())
    def lan_port(self, name, up):
        self.sim.set_lan_link(name, up)

    @rule(name=NODES, up=st.booleans())
    def ping_node(self, name, up):
        """The box's ping node (its gateway) answers it or not while its carrier stays up."""
        self.sim.set_ping(name, up)

    @rule(drop=st.sampled_from([0.0, 0.0, 0.001, 0.01, 0.1]))
    def line_quality(self, drop):
        self.sim.drop = drop
        self.sim.corrupt = drop / 2

    @rule(jitter=st.sampled_from([0, 0, 30, 200, 1200]),
          duplicate=st.sampled_from([0.0, 0.0, 0.1, 0.5]))
    def line_timing(self, jitter, duplicate):
        """Frames late by up to ``jitter`` ms (in order), some delivered twice."""
        self.sim.jitter_ms = jitter
        self.sim.duplicate = duplicate

    @rule(ms=st.integers(min_value=5, max_value=2000))
    def wait(self, ms):
        self.sim.run(ms)

    @rule(action_ms=st.sampled_from([1, 50, 400, 1500]),
          jitter=st.sampled_from([0, 0, 100, 1000]))
    def slow_scripts(self, action_ms, jitter):
        self.sim.action_ms = action_ms
        self.sim.action_jitter_ms = jitter

    @rule(name=NODES, action=st.sampled_from(["start", "stop"]), failing=st.booleans())
    def script_fails(self, name, action, failing):
        """The box's start (or stop) of the group fails from now on, or works again."""
        boxes = self.failing if action == "start" else self.failing_stop
        if failing:
            boxes.add(name)
        else:
            boxes.discard(name)
        self._scripts(name)

    @rule(name=NODES)
    def service_crashes(self, name):
        """The service dies on the box (if it runs there): SIGKILL, an OOM kill."""
        box = self.sim.boxes[name]
        if box.powered:
            box.crash(KEY)

    @rule(name=NODES, crashy=st.booleans())
    def service_keeps_crashing(self, name, crashy):
        """The service dies shortly after every start on the box from now on, or not any more."""
        (self.crashy.add if crashy else self.crashy.discard)(name)
        self._scripts(name)

    if FINDING5:
        @rule(ms=st.sampled_from([0, 0, 20, 200, 500]))
        def address_answers_late(self, ms):
            """The address answers ARP only ``ms`` after its Acquire (finding 5's window)."""
            self.sim.arp_after_ms = ms

    @rule(name=NODES, command=st.sampled_from(["standby", "takeover"]))
    def operator(self, name, command):
        box = self.sim.boxes[name]
        if self.alive(name):
            box.handle(getattr(box.node, command)(self.sim.now))
            self.manual.update(("node1", "node2"))

    @rule(name=NODES)
    def clean_shutdown(self, name):
        box = self.sim.boxes[name]
        if self.alive(name):
            box.handle(box.node.shutdown(self.sim.now))

    @rule(name=NODES)
    def shutdown_whose_stop_fails(self, name):
        """issue 13 finding 2: the goodbye then still sets the group's held bit; the peer must
        treat it as a death (probe first), never take the group blind."""
        box = self.sim.boxes[name]
        if self.alive(name):
            self.failing_stop.add(name)
            self._scripts(name)
            box.handle(box.node.shutdown(self.sim.now))

    # -------------------------------------------------------------- invariants
    @invariant()
    def never_two_holders_while_they_hear_each_other_over_the_cable(self):
        assert self.sim.double_while_hearing_ms == 0, self._logs()

    @invariant()
    def no_second_holder_appears_while_the_lan_is_up(self):
        assert self.sim.doubles_begun_on_lan == 0, self._logs()

    if FINDING5:
        @invariant()
        def a_double_heals_over_the_lan(self):
            """finding 5: ongoing ARP conflict detection resolves a double once the LAN is back."""
            assert self.sim.double_while_lan_ms == 0, self._logs()

    @invariant()
    def no_group_unserved_beyond_the_bound_while_a_healthy_box_exists(self):
        sim = self.sim
        assert sim.max_unserved_ms <= sim.unserved_bound_ms(), (
            "unserved %d ms > bound %d ms" % (sim.max_unserved_ms, sim.unserved_bound_ms()),
            self._logs())

    @invariant()
    def every_event_has_a_row_in_its_table(self):
        # the sim's adapters report in turn: an unlisted transition here is a core bug
        for box in self.sim.boxes.values():
            assert box.node.status()["counters"]["unlisted_transitions"] == 0, box.log_text()

    @precondition(lambda self: any(self.alive(n) for n in ("node1", "node2")))
    @rule()
    def settle(self):
        """Heal the cable, the LAN and the scripts' stops, let things settle, then exactly one
        node holds and serves the group."""
        sim = self.sim
        sim.set_cut(False)
        sim.set_lan(True)
        sim.drop = sim.corrupt = 0.0
        sim.jitter_ms = 0
        sim.duplicate = 0.0
        self.failing_stop.clear()
        self.crashy.clear()
        for name in ("node1", "node2"):
            sim.thaw(name)
            sim.set_lan_link(name, True)
            sim.set_ping(name, True)
            self._scripts(name)
        cfg = sim.cfg
        live = [n for n in ("node1", "node2") if self.alive(n)]
        if all(n in self.failing for n in live):
            return   # nobody can run it: nothing to promise
        bound = sim.unserved_bound_ms() + cfg.deadtime_ms
        if any(b.powered and b.node.monitoring.monitors[0].alarm for b in sim.boxes.values()):
            bound += BACKOFF_CAP_MS   # a box backing off restarts its (healed) service that late
        # what was in flight before the line healed (a goodbye lost on a cut cable, a
        # peer about to be declared dead) plays out first
        sim.run(cfg.deadtime_ms + 2 * cfg.keepalive_ms + 2 * sim.max_action_ms)
        # a box that died during its restart grace is waited for until the grace ends (by design:
        # the peer cannot tell it from a slow restart; docs/protocol.md)
        sim.run_until(lambda: all(b.node.peer_restart is None for b in sim.boxes.values() if b.powered),
                      cfg.restart_grace_ms + cfg.keepalive_ms)
        # a box shutting down whose stop failed retries it (after RETRY_MS, then every
        # QUIET_STOP_RETRY_MS once escalated) before its goodbye, holding the group meanwhile:
        # the stops are healed now, so that shutdown ends first and the peer takes the group
        # after it (without this wait the hand-over at the end of the shutdown fell into the
        # check below as "no holder": found by TestPairLong, a 5 ms gap between the goodbye
        # and the peer's probe)
        sim.run_until(lambda: not any(b.powered and not b.stopped and b.node.shutting_down
                                      for b in sim.boxes.values()),
                      QUIET_STOP_RETRY_MS + 2 * sim.max_action_ms + cfg.keepalive_ms)
        if not FINDING3 and any(b.stopped and b.holds(KEY) for b in sim.boxes.values()):
            # finding 3 (being fixed): a box shut down with its stop failed keeps the group up
            # with no agent to retry or escalate; with the LAN cut meanwhile the peer took it too
            return
        took = sim.run_until(lambda: sim.settled(), bound)
        assert took is not None, ("no single holder", sim.holders(), self._logs())
        sim.run(3 * cfg.keepalive_ms + sim.max_action_ms)
        # never two; none while a hand-over that began meanwhile is under way (a start still
        # failing here gives the group up after settled() saw it held: found by TestPairLong)
        assert len(sim.holders()) <= 1, sim.holders()
        # a hand-over may have begun meanwhile (a box whose frames were refused is heard at
        # last, and auto_failback moves the group, or a start failed): it ends with one box serving
        assert sim.run_until(lambda: sim.settled() and len(sim.servers()) == 1, bound) is not None, (
            sim.holders(), sim.servers(), self._logs())
        preferred = cfg.groups[0].preferred
        handed = any(b.node.monitoring.monitors[0].handed_over for b in sim.boxes.values())
        if (not self.manual and not handed and preferred in live and preferred not in self.failing
                and not sim.box(preferred).node.status()["groups"][0]["failed"]
                and len(live) == 2):
            assert sim.run_until(lambda: sim.settled() and sim.holders() == [preferred],
                                 bound) is not None, "auto_failback on: the group belongs on " + preferred


def _settings(examples, steps):
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None)


TestPair = Pair.TestCase
TestPair.settings = _settings(int(os.environ.get("HANODE_STATEFUL_EXAMPLES", "300")), 40)


class LongPair(Pair):
    pass


@pytest.mark.slow
class TestPairLong(LongPair.TestCase):
    settings = _settings(int(os.environ.get("HANODE_STATEFUL_EXAMPLES_LONG", "1000")), 80)
