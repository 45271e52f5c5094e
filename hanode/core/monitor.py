"""Resource monitoring of one group on this node: an explicit transition table.

Theory of operation
-------------------
With ``monitor_interval`` set in ha.cf, every group this node runs (ownership
``running``) is checked that often: the core asks for a ``Check`` (the agent's
runner runs each resource's LSB ``status``, an address = still configured, off
the heartbeat loop, with ``monitor_timeout``) and the agent reports the
results with ``Node.monitored``.  The interval counts from the end of the
previous check (a slow status never piles checks up), and the first check
comes an interval after the start finished.

A failed resource (LSB 1, 2, 3 or 7, a missing address, a status that hung
past ``monitor_timeout``) is restarted *in place*: the failed resource and
those to its right are stopped right to left, then started left to right
(``Restart``), the group staying claimed in our frames the whole time, so the
peer keeps its hands off.  Not the whole group: the resources to the left of
the failed one do not depend on it (haresources order is start order), and
the address - usually first - stays up, so clients' ARP caches stay right and
only the crashed service's own clients notice (Pacemaker restarts a failed
group member and the members after it the same way).

At most ``monitor_failures`` restarts are allowed within ``monitor_window``.
The next failure hands the group to the peer if the peer is healthy for it:
alive, active, not in standby, not stale, and not the box that just gave the
group back to us (we hold a group we had given away only because the peer
would not run it: see ``wants.py``, standby).  The hand-over is the per-group
standby (``Node._give``, what ``hanode standby GROUP`` does): we release right
to left, the peer starts it, the frames say who holds it.  With no healthy
peer the group keeps being restarted here with a back-off (``backoff_ms``:
monitor_interval doubling with each restart past the limit, capped at
``BACKOFF_CAP_MS``) and an alarm (a critical log line once per episode, the
status' alarms and systemd's STATUS=).  A check that passes with fewer than
the limit of restarts left in the window ends the episode.

A status the runner cannot read as LSB (exit 4 "unknown", an exit code LSB
does not define, a usage message for a missing ``status`` verb, no script) is
``unknown``: not acted on, said once per resource until its answer changes.

    state       event          next        output
    ----------  -------------  ----------  -------
    off         running        waiting     -        the group's start finished here: first check an interval later
    waiting     due            checking    check
    waiting     stopped        off         -        the group is being released (or yielded; or monitoring turned off)
    checking    ok             waiting     -        every resource running (or unknown)
    checking    failed         restarting  restart  within the limit: the failed resource and those after it
    checking    failed_limit   off         give     past the limit, a healthy peer: hand the group over
    checking    failed_alone   backoff     -        past the limit, no healthy peer: wait, then restart, alarmed
    checking    stopped        off         -        (the check's answer comes too late and is ignored)
    backoff     due            restarting  restart
    backoff     stopped        off         -
    restarting  done           waiting     -        re-checked an interval later (at once if the restart failed)
    restarting  stopped        off         -

The node fires only listed pairs; a pair not in the table keeps the state and
is counted (``unlisted``).  Times come in as arguments: no clock here.
"""

from hanode.core import ownership
from hanode.core.compat import const
from hanode.core.frame import STALE, STANDBY, STATE_ACTIVE
from hanode.core.outputs import Check, Log, Restart

OFF = "off"
WAITING = "waiting"
CHECKING = "checking"
RESTARTING = "restarting"
BACKOFF = "backoff"

RUNNING = "running"
DUE = "due"
STOPPED = "stopped"
OK = "ok"
FAILED = "failed"
FAILED_LIMIT = "failed_limit"
FAILED_ALONE = "failed_alone"
DONE = "done"

DO_CHECK = "check"
DO_RESTART = "restart"
DO_GIVE = "give"

# What a resource's check says (the runner's words, reported through Node.monitored):
RESULT_RUNNING = "running"   # LSB 0; the address is configured
RESULT_FAILED = "failed"     # LSB 1, 2, 3 (and 7, OCF_NOT_RUNNING); address missing; status hung
RESULT_UNKNOWN = "unknown"   # LSB 4, a code LSB does not define, no status verb, no script
RESULTS = (RESULT_RUNNING, RESULT_FAILED, RESULT_UNKNOWN)

# Past the restart limit with nobody to hand the group to, restarts back off up to this long.
BACKOFF_CAP_MS = const(60000)

TRANSITIONS = {
    (OFF, RUNNING): (WAITING, None),
    (WAITING, DUE): (CHECKING, DO_CHECK),
    (WAITING, STOPPED): (OFF, None),
    (CHECKING, OK): (WAITING, None),
    (CHECKING, FAILED): (RESTARTING, DO_RESTART),
    (CHECKING, FAILED_LIMIT): (OFF, DO_GIVE),
    (CHECKING, FAILED_ALONE): (BACKOFF, None),
    (CHECKING, STOPPED): (OFF, None),
    (BACKOFF, DUE): (RESTARTING, DO_RESTART),
    (BACKOFF, STOPPED): (OFF, None),
    (RESTARTING, DONE): (WAITING, None),
    (RESTARTING, STOPPED): (OFF, None),
}


class ResourceWatch:
    """What the last checks said about one resource (for status and the once-only reports)."""

    def __init__(self):
        self.result = None         # RESULTS, None before the first check
        self.detail = ""
        self.checked_at = None
        self.failures = 0          # failed checks here since hanode started
        self.restarts = 0          # restarts in place that began with this resource
        self.reported = None       # the unknown answer already said (said again only if it changes)

    def to_dict(self, now):
        return {"result": self.result, "detail": self.detail, "failures": self.failures,
                "restarts": self.restarts,
                "last_check_ms_ago": None if self.checked_at is None else now - self.checked_at}


class GroupMonitor:
    """One group's monitoring state on this node: the table's state and its bookkeeping."""

    def __init__(self, count):
        self.state = OFF
        self.due_at = None         # next check (waiting) or restart (backoff)
        self.restart_from = 0      # index of the first failed resource of the pending restart
        self.restarts = []         # times of the restarts within the window (oldest first)
        self.backoffs = 0          # restarts past the limit in this episode
        self.alarm = None          # why it is alarmed (no healthy peer), or None
        self.handed_over = 0       # hand-overs to the peer after the limit
        self.resources = [ResourceWatch() for _ in range(count)]
        self.transitions = 0
        self.unlisted = 0

    def fire(self, event):
        """Apply an event; return the output name (or None) (``ownership.fire``)."""
        return ownership.fire(self, TRANSITIONS, event)

    def busy(self):
        return self.state == RESTARTING

    def restarts_in_window(self, now, window_ms):
        """Forget restarts older than the window; return how many are left."""
        while self.restarts and now - self.restarts[0] >= window_ms:
            self.restarts.pop(0)
        return len(self.restarts)


def failure_event(restarts_in_window, limit, healthy_peer):
    """The event a failed check fires: restart in place within the limit, else hand the group
    to a healthy peer, else restart alone with back-off."""
    if restarts_in_window < limit:
        return FAILED
    return FAILED_LIMIT if healthy_peer else FAILED_ALONE


def backoff_ms(interval_ms, backoffs):
    """The wait before the ``backoffs``-th restart past the limit (1 = the first): the monitor
    interval doubling with each, capped at BACKOFF_CAP_MS."""
    delay = interval_ms
    for _ in range(backoffs - 1):
        delay *= 2
        if delay >= BACKOFF_CAP_MS:
            return BACKOFF_CAP_MS
    return min(delay, BACKOFF_CAP_MS)


class Monitoring:
    """The node's monitors, one per group, and what the node does with their outputs (the node
    calls ``checked``, ``restarted`` and, on every call, ``step``)."""

    def __init__(self, config):
        self.monitors = [GroupMonitor(len(g.resources)) for g in config.groups]
        self.configure(config)

    def configure(self, config):
        self.interval_ms = config.monitor_interval_ms   # 0: off
        self.limit = config.monitor_failures
        self.window_ms = config.monitor_window_ms

    def regroup(self, index, group):
        """A group's reloaded definition is in force (it is stopped here): watch its resources."""
        self.monitors[index] = GroupMonitor(len(group.resources))

    def operator_acted(self):
        """takeover or standby on either box: the restarts counted so far are forgiven."""
        for m in self.monitors:
            m.restarts = []
            m.backoffs = 0

    def step(self, node, now, out):
        """Follow the ownership table (checks only while a group is running here) and fire what
        is due."""
        for g in node.groups:
            m = self.monitors[g.index]
            # (a reload that turns monitoring off ends it like a release)
            running = g.state == ownership.RUNNING and not node.shutting_down and self.interval_ms
            if m.state == OFF:
                if running:
                    m.fire(RUNNING)
                    m.due_at = now + self.interval_ms
                continue
            if not running:
                m.fire(STOPPED)
                m.due_at = None
                m.backoffs = 0
                m.alarm = None
                continue
            if m.due_at is not None and now >= m.due_at and m.state in (WAITING, BACKOFF):
                m.due_at = None
                self._output(node, g, m, m.fire(DUE), now, out)

    def deadlines(self):
        return [m.due_at for m in self.monitors]

    def checked(self, node, g, results, now, out):
        """The results of a Check: one (result, detail) per resource of the group, in order."""
        m = self.monitors[g.index]
        if m.state != CHECKING:
            return   # an answer to a check of a group no longer running here: nothing to act on
        failed = None
        for i in range(min(len(results), len(m.resources))):
            result, detail = results[i]
            watch = m.resources[i]
            watch.result, watch.detail, watch.checked_at = result, detail, now
            res = g.group.resources[i]
            if result == RESULT_UNKNOWN:
                if watch.reported != detail:
                    watch.reported = detail
                    out.append(Log("warning", "Resource %s of group %s: its status is not LSB-conformant "
                                   "(%s): it cannot be monitored; not acting on it (said once)"
                                   % (res.token, g.key, detail)))
                continue
            watch.reported = None
            if result == RESULT_FAILED:
                watch.failures += 1
                node.counters["monitor_failures"] += 1
                if failed is None:
                    failed = i
        if failed is None:
            m.fire(OK)
            m.due_at = now + self.interval_ms
            if m.restarts_in_window(now, self.window_ms) < self.limit:
                if m.alarm is not None:
                    out.append(Log("info", "Resource group %s: running again; its restarts are within "
                                   "the limit: alarm cleared" % g.key))
                m.alarm = None
                m.backoffs = 0
            return
        m.restart_from = failed
        res = g.group.resources[failed]
        used = m.restarts_in_window(now, self.window_ms)
        event = failure_event(used, self.limit, _healthy_peer(node, g))
        why = "Resource %s of group %s failed its check (%s)" % (res.token, g.key, m.resources[failed].detail)
        if event == FAILED:
            out.append(Log("critical", "%s: restarting it in place (restart %d of %d within %d s)"
                           % (why, used + 1, self.limit, self.window_ms // 1000)))
        elif event == FAILED_LIMIT:
            out.append(Log("critical", "%s again: %d restarts within %d s already; giving group %s to %s"
                           % (why, used, self.window_ms // 1000, g.key, node.peer)))
        else:
            m.backoffs += 1
            m.due_at = now + backoff_ms(self.interval_ms, m.backoffs)
            if m.alarm is None:
                m.alarm = ("%s keeps failing (%d restarts within %d s) and %s cannot take it: "
                           "restarting it here with back-off" % (g.key, used, self.window_ms // 1000, node.peer))
                out.append(Log("critical", "ALARM: %s; %s" % (why, m.alarm)))
            out.append(Log("warning", "%s: restarting it in %d ms (back-off)" % (why, m.due_at - now)))
        self._output(node, g, m, m.fire(event), now, out)

    def restarted(self, node, g, ok, detail, now, out):
        m = self.monitors[g.index]
        if m.state != RESTARTING:
            return
        m.fire(DONE)
        m.due_at = now + (self.interval_ms if ok else 0)
        res = g.group.resources[m.restart_from]
        if ok:
            out.append(Log("info", "Resource group %s restarted in place from %s" % (g.key, res.token)))
        else:
            out.append(Log("critical", "Resource group %s: restart from %s failed%s; checking it again"
                           % (g.key, res.token, " (" + detail + ")" if detail else "")))

    def _output(self, node, g, m, action, now, out):
        if action == DO_CHECK:
            out.append(Check(g.key))
        elif action == DO_RESTART:
            m.restarts.append(now)
            m.resources[m.restart_from].restarts += 1
            node.counters["monitor_restarts"] += 1
            out.append(Restart(g.key, m.restart_from))
        elif action == DO_GIVE:
            m.handed_over += 1
            node.counters["monitor_handovers"] += 1
            node._give(g)   # the per-group standby: released here, the peer starts it

    def status(self, g, now):
        m = self.monitors[g.index]
        return {"state": m.state, "restarts_in_window": len(m.restarts), "handed_over": m.handed_over,
                "alarm": m.alarm, "next_ms": None if m.due_at is None else max(0, m.due_at - now),
                "resources": [w.to_dict(now) for w in m.resources]}

    def degraded(self, node):
        """Groups running here whose last check found a resource failed, or that are alarmed."""
        keys = []
        for g in node.groups:
            m = self.monitors[g.index]
            if m.alarm is not None or m.state in (RESTARTING, BACKOFF):
                keys.append(g.key)
        return keys


def _healthy_peer(node, g):
    """Could the peer take the group: alive, active, not in standby or stale, its LAN not worse
    than ours (it could not serve the clients we serve: health.py), and not the box that gave
    it back to us (we hold a group we had given away only because the peer would not run it)?"""
    peer = node.peer_view()
    own, theirs = node.lan_health.counted, node.peer_lan
    lan_worse = peer is not None and own is not None and theirs is not None and theirs < own
    return (peer is not None and peer.state == STATE_ACTIVE and not peer.flags & (STANDBY | STALE)
            and not lan_worse and g.index not in node.given and not node.standby_mode
            and not node.shutting_down)
