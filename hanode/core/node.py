"""The whole node: frames and time in, frames and actions out.

Theory of operation
-------------------
A node keeps three things: what each of its groups is doing (``ownership``),
whether the peer is alive (``liveness``), and the peer's latest *view* - the
last authentic status frame it sent (state, flags, which groups it holds and
wants, and which of our frames it has seen).  On every call it re-derives what
it *wants* from that view, feeds the difference into each group's transition
table, and sends its own view every keepalive and at once when it changed (of
the two, the node whose name sorts later sends it when the peer's arrives, to
keep the pair in step: ``FOLLOW_SLACK_MS``).

What a node wants of each group, and which ownership event that fires, is
``wants.py`` (two tables); the acknowledgement rule both rest on is
``acks.py``; the status view (``status()``, cl_status's ``rscstatus``) is
``status.py``.

A peer whose authentic frames arrive below the generation floor we hold for it
(a box that lost its state) is challenged to rejoin under a new generation;
the two small tables for that are ``rejoin.py``.

Standby is sticky (``standby()``, or the peer's ``takeover()``) until our own
``takeover()``, the peer going standby after us, the peer's death, or a
restart: auto_failback does not undo an operator's standby.  Both commands also
take Heartbeat's argument (``select``: all, local, foreign or a group's key):
a group given away alone is wanted back only once the peer has seen it
released and still will not run it; a group asked for alone is wanted, and the
TAKEOVER flag with our want bits tells the peer which ones to give (all of
them: the classic whole-node standby).

With the peer dead every group is wanted (failover); with the peer never heard
nothing is wanted until initdead has run out, but the groups found running at
start (adopted: after an agent restart or a crash) are kept.

With the peer alive a group is started only when the peer has acknowledged
that we want it and neither holds nor wants it (release before acquire).
With the peer dead, a group with an address is first probed on the LAN
(``Probe``) and taken only if nobody answers for it - a pulled serial cable
with both boxes alive must not put the VIP on two boxes.

A probe and the add that follows it are not atomic: while a node holds (or is
adding) an address, the runner keeps listening for ARP that claims it from
another MAC (RFC 5227 section 2.4) and reports it (``conflict()``).  The tie-break
is deterministic: the group's preferred node keeps the address and defends it
(``Defend``: one gratuitous ARP, at most one per ``DEFEND_INTERVAL_MS``); the
other node - and a preferred node that is stale (below), as in wants.py's
split-brain rule - yields: it takes its addresses down at once
(``DropAddresses``: not after its scripts have stopped, nor after a start in
progress, which then gives up), releases the group (ownership's ``conflict``
row, or ``done_fail`` of the start it gave up), and probes before it retakes
it, even with ``vip_probe off``: an address another box has just kept is never
retaken blind.  A claim from a box that is not the peer holding the group (the
peer is alive and does not hold it) is defended by whoever holds the group.

An agent restart or upgrade keeps the groups (``restart()``): the node sends
RESTART_NOTICES copies of a NOTICE frame ("restarting, my groups stay, grace
G") NOTICE_GAP_MS apart, then stops without releasing anything (``Stopped``;
the agent exits or re-executes itself and the next agent adopts what runs).
The peer, on an authentic notice of the peer's life it hears now, holds off
declaring it dead for min(G, its own restart_grace) (``peer_restart``): the
peer counts as alive with its last view, so nothing moves.  The new life's
first frame ends the hold; a grace that runs out ends in the ordinary
failover (probing first).  A recorded notice is a replay or from an earlier
life: it buys nothing.  Notices also carry the configuration revision
(``revision``, set by the agent), shown as the peer's in status.

A node whose own calls stop for longer than the dead time (a frozen process, a
suspended VM) knows the peer may have taken over meanwhile: it marks itself
*stale*, restarts its silence timers instead of declaring the peer dead, and
yields every group the peer claims until the peer has heard from it again.

The agent's LAN adapter reports this box's LAN health (``lan()``: carrier on the
VIP interfaces, ping nodes reachable); ``health.py`` settles it (hysteresis)
and decides with the peer's, which arrives in status frames of version 2.  A
peer of the previous release cannot decode those, so the node sends each
status frame as version 1 plus a version 2 copy (one write, the same sequence
number: the copy is a duplicate for a new peer and a "version" drop for an old
one) until it hears the peer speak version 2 in its current generation (then
version 2 only) or hears ``V1_FRAMES`` new frames of it without one (then
version 1, with a version 2 copy every ``LAN_HELLO_EVERY`` frames in case two
new boxes lost each other's copies).

A settled node (every group where it is wanted, nothing under way: ``_quiet_until``) has,
until its next deadline other than a frame's, nothing to do but send its unchanged view and
read the peer's: ``tick`` and ``receive`` then take a short path that does just that (and the
peer's timers), and ``next_deadline`` answers from what the last full pass found.  Whatever
may change more - any other input, a frame with another view, a deadline reached - takes the
full pass.  That the two do the same is tested by playing the same field events on two pairs,
one that always takes the full pass (tests/core/test_quiet_tick.py).

How late the agent may read the peer's frames follows from the same (``read_patience``).  A
settled node that also runs every group has no use for them before its next deadline: the
peer's silence would start nothing here, and what the peer may ask for (a takeover, a standby,
a failback) can wait that long; the agent then reads the peer's answer to our frame when that
deadline comes, just before tick(), instead of waking for it (hanode.links): an idle active node
wakes once a keepalive.  Any other settled node may read the peer's frames that come on the
peer's schedule by a timer at their expected end, instead of waking at their first byte too;
one that comes out of schedule (the first of a change) then waits for the next of those
timers, at most a keepalive.  A node that is not settled reads every frame as it comes.
"""

from hanode.core import health, monitor, ownership, rejoin, status, wants
from hanode.core.acks import Mark
from hanode.core.auth import Auth
from hanode.core.config.model import STOP_FAILURE_FENCE
from hanode.core.frame import (Decoder, Frame, Control, Notice, ReplayGuard, encode, NEW, REPLAY,
                               TYPE_STATUS, TYPE_CHALLENGE, TYPE_REJOIN, TYPE_NOTICE, VERSION, VERSION_LAN,
                               STANDBY, TAKEOVER, BUSY, STALE, STATE_NAMES,
                               STATE_UP, STATE_ACTIVE, STATE_RELEASING, STATE_SHUTDONE)
from hanode.core.limits import ACK_MASK, CONTROL_WIRE_BYTES, FRAME_WIRE_BYTES
from hanode.core.liveness import Liveness, DEAD, UP
from hanode.core.outputs import (Send, Acquire, Release, Probe, Defend, DropAddresses, Log, Escalate,
                                 PeerGeneration, Stopped, NeedNonce, NewGeneration, Announce)

NEVER = float("inf")   # a deadline that never comes (_quiet_until: nothing but frames are due)
# read_patience: how late the agent may read the peer's frames (see the module docstring)
READ_PROMPTLY, READ_ON_SCHEDULE, READ_AT_DEADLINE = 0, 1, 2
MIN_FRAME_GAP_MS = 10    # an immediate frame (view changed) at most this often: 24 B take 12.5 ms
# Of two nodes, the one whose name sorts after its peer's sends its status frame when the peer's
# arrives (both agents then wake once for the pair: the follower reads and sends in one wake-up,
# and the other reads the answer by a timer set at its own send, hanode.links._PeerPhase).  Its
# own deadline after such a frame is FOLLOW_SLACK_MS past the keepalive, so that the peer's next
# frame, a little late, still comes first; without the peer's frames it keeps its own schedule.
# An answer at once (a changed view) leans on the peer's frame the same way, and a peer's frame that
# comes just behind one of ours sent on our own schedule moves our next to a keepalive after it:
# else the two stay a frame time apart for good, and the follower wakes on its own every keepalive.
FOLLOW_SLACK_MS = 3
RETRY_MS = wants.RETRY_MS
# An echo of our own frame comes back within a frame time or two, so it repeats one of our
# last few frames; a frame with our id and generation that does not is another box's.  (A twin
# booted later sees our sequence numbers before it sends them itself, so at least one of two
# same-generation twins always notices, however long this window.)
ECHO_FRAMES = 8
# RFC 5227 section 2.4: a host defends an address at most once in this long; also how long a
# quiet spell ends a conflict episode (one log line per episode).
DEFEND_INTERVAL_MS = 10000
# A restart notice is sent this many times, this far apart (a noisy line loses one), and the agent
# stops one gap after the last: every copy is on the wire (32 bytes: 17 ms at 19200 baud) by then.
RESTART_NOTICES = 3
NOTICE_GAP_MS = 50
# Our revision is sent at start, on a reload and to each new life of the peer, REVISION_COPIES
# times REVISION_REPEAT_MS apart (a serial link replaces a frame still queued by the next one, so
# a single copy can be lost without any noise); again every REVISION_NOTICE_MS once the peer has
# shown it reads notices (an older release counts each one as a "type" drop).
REVISION_COPIES = 3
REVISION_REPEAT_MS = 1000
REVISION_NOTICE_MS = 60000
# A peer heard this many new frames of one generation, none of them version 2, runs the previous
# release: status frames to it are version 1 (a new peer sends a version 2 copy of each of its
# first frames, so it shows itself at once) ...
V1_FRAMES = 4
# ... with a version 2 copy of every this many-th frame all the same, so that two new boxes that
# each lost the other's copies still find each other.
LAN_HELLO_EVERY = 16

_OUTPUTS = {
    ownership.DO_ACQUIRE: Acquire,
    ownership.DO_RELEASE: Release,
    ownership.DO_PROBE: Probe,
}


class Node:
    def __init__(self, config, me=None, generation=1, peer_generation=0, links=None):
        me = (me or config.me or "").lower()
        if me not in config.nodes:
            raise ValueError("node %r is not listed in ha.cf (nodes: %s)" % (me, " ".join(config.nodes)))
        self.config = config
        self.me = me
        self.peer = [n for n in config.nodes if n != me][0]
        self.my_id = config.node_index(me)
        self.peer_id = config.node_index(self.peer)
        self.gen = generation
        self.seq = 0
        self.auth = Auth.from_config(config)
        self.guard = ReplayGuard()
        if peer_generation:
            self.guard.set_floor(self.peer_id, peer_generation)
        # link names as the agent will pass them to receive(): the serial devices, then the ucast
        # interfaces; the first is the default
        self.links = list(links) if links else (list(config.serial) + [dev for dev, _ in config.ucast]
                                                or ["serial"])
        self.decoders = {}
        self.groups = [ownership.GroupOwnership(g, i) for i, g in enumerate(config.groups)]
        self.intents = [wants.Intent() for g in self.groups]   # the node's bookkeeping, by group index
        self.pending_groups = {}      # group index -> its reloaded definition, used once it is stopped here
        self.live = Liveness(self.peer, self.links, config.keepalive_ms, config.warntime_ms,
                             config.deadtime_ms, config.initdead_ms)
        self.peer_frame = None        # the peer's latest authentic frame
        self.lan_health = health.LanHealth()   # ours, with hysteresis (health.py)
        self.lan_compare = health.Comparison() # ours against the peer's, with the verdict delay
        self.lan_verdict = None       # its latest rule: True (ours is better), False, PENDING or None
        self.peer_lan = None          # the peer's counted LAN health from its version 2 frames; None: unknown
        self.peer_v2_gen = None       # the peer generation heard speaking version 2
        self.peer_v1_frames = 0       # new version 1 frames of the peer's generation, none of version 2
        self.state = STATE_UP
        self.comm_up = False
        self.standby_mode = False     # we gave everything away (standby, or the peer's takeover)
        self.standby_mark = Mark()    # has the peer seen us in standby?
        self.takeover_request = False # we asked the peer to give everything to us
        # per-group standby/takeover (hb_standby/hb_takeover local|foreign|GROUP), by group index:
        self.given = {}               # groups we gave away -> Mark (has the peer seen it?); sticky like standby
        self.taking = {}              # groups we asked the peer for (TAKEOVER flag + our want bits) -> True
        self.giving = {}              # given groups not yet released here since they were given -> True
        self.stale = False
        self.stale_mark = Mark()      # has the peer heard from us since the stall?
        self.peer_said_goodbye = False
        self.goodbye_held = 0         # held bits of that goodbye: groups it admits it still holds
        self.identity_conflict = None # another box uses our node id: {link, their_generation, since_ms}
        self.rejoin = rejoin.Rejoin() # challenging a peer below its floor / rejoining after our state loss
        self.monitoring = monitor.Monitoring(config)   # monitor_interval: checks, restarts in place
        self.recent_sent = []         # fields of our last ECHO_FRAMES frames: what an echo may repeat
        self.started_at = None
        self.shutting_down = False
        self.self_fencing = False     # stop_failure fence under way: no goodbye, the watchdog resets us
        self.stopped = False
        self.now = None
        self.last_call = None
        self.last_send = None
        self.next_send = None
        self.follows_peer = me > self.peer   # see FOLLOW_SLACK_MS
        self.following = False        # the frame due now goes with the peer's
        self.hold_until = None        # a challenge/rejoin frame is on the wire until then (_send_control)
        self.revision = 0             # our configuration revision (48 bits, 0: unknown), set by the agent
        self.peer_revision = None     # the peer's, from its notices
        self.notice_at = None         # when our next revision notice is due (None: none due)
        self.notice_copies = 0        # copies of it still to send (_revision_due)
        self.restarting = None        # restart(): {"copies_left", "next_at"}; then Stopped, groups kept
        self.peer_restart = None      # the peer announced a restart: {"gen", "since_ms", "until_ms", ...}
        self.sent_view = None
        self.quiet_until = None       # settled until then: tick() only sends our unchanged view (_quiet_until)
        self.quiet_fixed = NEVER      # of that, the deadlines a peer's frame does not move
        self.holds_every_group = False   # (valid while quiet_until is set: read_patience)
        self.counters = {
            "frames_sent": 0, "frames_received": 0, "replay": 0, "duplicate": 0,
            "own": 0, "identity_conflicts": 0, "unknown_src": 0, "late_heartbeats": 0, "failovers": 0, "stalls": 0,
            "peer_restarts": 0, "probes_busy": 0, "vip_conflicts": 0, "start_failures": 0, "stop_failures": 0,
            "escalations": 0,
            "below_floor": 0, "challenges_sent": 0, "rejoins": 0, "generation_jumps": 0,
            "control_ignored": 0, "monitor_failures": 0, "monitor_restarts": 0, "monitor_handovers": 0,
            "restarts_announced": 0, "peer_restarts_held": 0, "peer_restart_timeouts": 0,
        }

    # ------------------------------------------------------------------ inputs

    def start(self, now, running=()):
        """Begin.  running: keys of groups the agent found already active
        (e.g. the VIP is configured): they are adopted (Acquire again, which is
        idempotent), then kept or released by the normal rules."""
        out = self._enter(now)
        self.started_at = now
        self.live.start(now)
        out.append(Log("info", "Heartbeat generation: %d" % self.gen))
        for g in self.groups:
            if g.key in running:
                # Found active (its address is configured): we may be restarting after a crash.
                # Count it as ours and run its start again - which skips what is running and
                # re-announces the address - then the normal rules keep or release it.
                self._fire(g, ownership.ADOPT, out)
                out.append(Log("warning", "Resource group %s found active at start: adopting it" % g.key))
        out.append(Log("info", "Local status now set to: 'up'"))
        self._revision_due(now)
        return self._finish(now, out)

    def receive(self, data, now, link=None):
        link = link or self.links[0]
        if self._quiet_at(now):
            return self._quiet_receive(data, now, link)
        out = self._enter(now)
        if self.stopped:
            return out
        for frame in self._decoder(link).feed(data):
            self._on_frame(frame, link, now, out)
        return self._finish(now, out)

    def _quiet_at(self, now):
        """The short path may serve a call at ``now``: settled until after it (``_quiet_until``),
        and our own last call within the dead time (else the full pass sees our stall)."""
        quiet = self.quiet_until
        return quiet is not None and now < quiet and now - self.last_call <= self.config.deadtime_ms

    def _quiet_send(self, now):
        """What the short path puts out: our unchanged view, when the next frame is due."""
        out = []
        if now >= self.next_send:
            self._send(now, self.sent_view, out)
        return out

    def _decoder(self, link):
        decoder = self.decoders.get(link)
        if decoder is None:
            decoder = self.decoders[link] = Decoder(self.auth)
        return decoder

    def _quiet_receive(self, data, now, link):
        """receive() while settled (see tick): the peer's next status frame with the view it
        sent before changes nothing but its timers (``_quiet_frame``); the first frame that
        may change more, and every frame after it, take the full pass."""
        self.last_call = self.now = now
        frames = self._decoder(link).feed(data)
        for i in range(len(frames)):
            if not self._quiet_frame(frames[i], link, now):
                out = self._enter(now)
                for f in frames[i:]:
                    self._on_frame(f, link, now, out)
                return self._finish(now, out)
        out = self._quiet_send(now)
        # (the peer's silence limit and warntime moved; the other deadlines did not)
        self.quiet_until = None if self._tick_work_due(now) else self._quiet_deadline(now)
        return out

    def _quiet_frame(self, f, link, now):
        """Take a frame that changes nothing while settled: a new status frame of the peer's
        life, with the view (state, flags, held and wanted groups, LAN health) of its last one,
        on a link that is up, in time, no acknowledgement awaited.  It does what ``_on_frame``
        and ``_finish`` would do with it, and nothing else; False (nothing done): take the
        full pass."""
        previous = self.peer_frame
        live = self.live
        if (f.type != TYPE_STATUS or f.src != self.peer_id or previous is None or f.gen != previous.gen
                or f.version != VERSION_LAN or self.peer_v2_gen != f.gen or _view_of(f) != _view_of(previous)
                or f.flags & TAKEOVER or (f.flags & STANDBY and self.takeover_request)
                or f.state == STATE_SHUTDONE or not self.comm_up or self.peer_said_goodbye
                or live.peer.state != UP or live.link(link).state != UP
                or live.last_status is None or now - live.last_status > live.warntime_ms):
            return False
        for mark in self._marks():
            if mark.since is not None and not mark.seen:
                return False   # an acknowledgement awaited: this frame may bring it
        if self.guard.check(f.src, f.gen, f.seq) != NEW:
            return False
        live.heard(link, now, True)   # (no event: the link and the peer are up, the frame in time)
        self.guard.commit(f.src, f.gen, f.seq)
        self.counters["frames_received"] += 1
        self.peer_frame = f
        self._follow(now)
        self.goodbye_held = 0
        return True

    def tick(self, now):
        if self._quiet_at(now):
            # settled, and nothing but our next frame falls due before quiet_until: the full
            # pass would find the same view and fire nothing (the two are compared, tests/core/
            # test_quiet_tick.py).  An idle agent calls this once a keepalive: the full pass
            # touches most of the core, and on a small box each wake-up finds that code cold
            self.last_call = self.now = now
            return self._quiet_send(now)
        out = self._enter(now)
        if self.stopped:
            return out
        self._on_silence(now, out)
        if self.lan_health.tick(now, self.config.deadtime_ms):
            self._lan_counted(out)
        return self._finish(now, out)

    def lan(self, value, now, detail=""):
        """The LAN adapter's raw health of this box (``health.health_of``), with its words
        (e.g. "eth0: no carrier"); it counts once settled (health.py)."""
        out = self._enter(now)
        if self.stopped:
            return out
        before = self.lan_health.raw
        if self.lan_health.report(value, now, detail):
            self._lan_counted(out)
        elif value != before:
            due = self.lan_health.due(self.config.deadtime_ms)
            out.append(Log("info", "LAN health now %s%s: %s" % (
                health.describe(value), " (" + detail + ")" if detail else "",
                "back to the value that counts (a flap)" if due is None
                else "counts if it holds for %d ms" % (due - now))))
        return self._finish(now, out)

    def _lan_counted(self, out):
        h = self.lan_health
        out.append(Log("warning" if h.counted == health.NO_CARRIER else "info",
                       "LAN health %s%s; %s" % (
                           health.describe(h.counted), " (" + h.counted_detail + ")" if h.counted_detail else "",
                           health.why(h.counted, self.peer_lan if self.peer_view() else None, self.me, self.peer))))

    def completed(self, key, ok, now):
        out = self._enter(now)
        g = self._group(key)
        before = g.state
        self._fire(g, ownership.DONE_OK if ok else ownership.DONE_FAIL, out)
        intent = self.intents[g.index]
        if before == ownership.STARTING:
            if ok:   # (the runner logs the success in detail)
                intent.clear_start_failures()
                if not self.live.alive():
                    self.counters["failovers"] += 1
                if intent.conflict_pending:   # heard while starting: yield now, probe again later
                    intent.retry_at = now + self._probe_retry_ms(g)
                    self._fire(g, ownership.CONFLICT, out)
            elif intent.conflict_pending:
                out.append(Log("info", "Resource group %s: start given up for the address conflict; "
                               "releasing what it started" % key))
            else:
                self._start_failed(g, intent, now, out)
        intent.conflict_pending = False
        if before == ownership.STOPPING:
            if ok:
                intent.stop_failures = 0
                intent.escalated = False
            else:
                self._stop_failed(g, intent, now, out)
        return self._finish(now, out)

    def monitored(self, key, results, now):
        """The answer to a Check: one (result, detail) per resource of the group, result one of
        monitor.RESULTS (see monitor.py)."""
        out = self._enter(now)
        self.monitoring.checked(self, self._group(key), results, now, out)
        return self._finish(now, out)

    def restarted(self, key, ok, now, detail=""):
        """The runner finished a Restart (ok: every resource it restarted runs)."""
        out = self._enter(now)
        self.monitoring.restarted(self, self._group(key), ok, detail, now, out)
        return self._finish(now, out)

    def _start_failed(self, g, intent, now, out):
        """Back off (doubling, capped) so that two boxes that both fail a start do not hand the
        group back and forth for ever; give it up after START_ROUNDS failures here."""
        intent.failed = True
        intent.rolling_back = True   # the mark and the back-off count from its release (_evaluate)
        intent.failed_mark.arm(self.seq)
        intent.start_failures += 1
        delay = wants.start_retry_ms(intent.start_failures)
        intent.retry_at = now + delay
        self.counters["start_failures"] += 1
        if intent.start_failures >= wants.START_ROUNDS:
            intent.gave_up = True
            out.append(Log("critical", "ALARM: resource group %s failed to start %d times here: giving it "
                           "up on %s until an operator acts (fix the cause, then 'hanode takeover' or "
                           "'hanode standby' on either box, or restart hanode)"
                           % (g.key, intent.start_failures, self.me)))
        else:
            out.append(Log("critical", "Giving up resource group %s due to a failed start (%d of %d here); "
                           "%s may take it; retrying here %d s after its stop at the earliest"
                           % (g.key, intent.start_failures, wants.START_ROUNDS, self.peer, delay // 1000)))

    def _stop_failed(self, g, intent, now, out):
        """Retry STOP_RETRIES times, then escalate (Heartbeat reboots, Pacemaker fences or blocks):
        the group may still run here, so the peer must not take it until this box is reset."""
        intent.retry_at = now + RETRY_MS
        intent.stop_failures += 1
        self.counters["stop_failures"] += 1
        if intent.stop_failures <= wants.STOP_RETRIES:
            out.append(Log("critical", "Resource group %s failed to stop: it may still be running, so %s will "
                           "not take it; retry %d of %d in %d s"
                           % (g.key, self.peer, intent.stop_failures, wants.STOP_RETRIES, RETRY_MS // 1000)))
            return
        if intent.escalated:
            intent.retry_at = now + wants.QUIET_STOP_RETRY_MS   # said once; keep trying, quietly
            return
        intent.escalated = True
        self.self_fencing = self.config.stop_failure == STOP_FAILURE_FENCE   # the agent says if it cannot
        self.counters["escalations"] += 1
        reason = ("ALARM: resource group %s failed to stop %d times: it may still be running here, so %s "
                  "will not take it; Resource STOP failure, escalating (ha.cf stop_failure)"
                  % (g.key, intent.stop_failures, self.peer))
        out.append(Log("critical", reason))
        out.append(Escalate(g.key, reason))

    def probed(self, key, in_use, now, detail=""):
        out = self._enter(now)
        g = self._group(key)
        if g.state != ownership.PROBING:
            return self._finish(now, out)   # an answer to a probe we no longer care about
        if in_use:
            self.counters["probes_busy"] += 1
            self.intents[g.index].retry_at = now + self._probe_retry_ms(g)
            self._fire(g, ownership.PROBE_BUSY, out)
            self.intents[g.index].busy_probes += 1
            # said loudly once, then once a minute: a hung peer without a watchdog would
            # otherwise write a line every probe, for hours
            if self.intents[g.index].busy_probes == 1 or now - self.intents[g.index].busy_logged_at >= 60000:
                self.intents[g.index].busy_logged_at = now
                out.append(Log("warning", "Not taking resource group %s: its address answers on the LAN%s "
                               "although %s is silent (serial cable pulled? %s frozen?); probing again "
                               "every %d ms (%d probes so far)"
                               % (key, " (" + detail + ")" if detail else "", self.peer, self.peer,
                                  self._probe_retry_ms(g), self.intents[g.index].busy_probes)))
        else:
            if self.intents[g.index].busy_probes:
                out.append(Log("info", "Resource group %s: its address no longer answers after %d probes; "
                               "taking it" % (key, self.intents[g.index].busy_probes)))
            self.intents[g.index].busy_probes = 0
            self.intents[g.index].yielded = False
            self._fire(g, ownership.PROBE_FREE, out)
        return self._finish(now, out)

    def conflict(self, key, now, detail=""):
        """The runner heard another MAC claim an address of group ``key`` (see the module
        docstring): defend it or release it."""
        out = self._enter(now)
        g = self._group(key)
        intent = self.intents[g.index]
        if self.stopped or g.state not in (ownership.STARTING, ownership.RUNNING):
            return self._finish(now, out)   # not ours (any more): nothing to defend or yield
        self.counters["vip_conflicts"] += 1
        new_episode = intent.conflict_at is None or now - intent.conflict_at >= DEFEND_INTERVAL_MS
        intent.conflict_at = now
        peer = self.peer_view()
        # not the peer (its frame does not claim the group): a stranger on the LAN - unless our loop
        # stalled: then the peer's frame we have may be from before it took over, and whether its
        # newer ones or this conflict reach us first is chance (the agent reads them apart)
        foreign = peer is not None and not peer.held & g.bit and not self.stale
        # a stale node (our loop stalled) yields even as the preferred node: the peer may have
        # taken over meanwhile, and wants.py lets it keep the group (no defence to undo later)
        if (g.group.preferred == self.me and not self.stale) or foreign:
            if intent.defended_at is None or now - intent.defended_at >= DEFEND_INTERVAL_MS:
                intent.defended_at = now
                out.append(Defend(key))
            if new_episode:
                out.append(Log("critical", "Address conflict for resource group %s: %s; %s: keeping it "
                               "and defending it (one gratuitous ARP per %d s)" % (
                                   key, detail, "a box that is not %s" % self.peer if foreign
                                   else "we are its preferred node", DEFEND_INTERVAL_MS // 1000)))
            return self._finish(now, out)
        if intent.conflict_pending:
            return self._finish(now, out)   # yielded already; its start is giving up
        intent.retry_at = now + self._probe_retry_ms(g)
        intent.yielded = True
        if new_episode:
            out.append(Log("critical", "Address conflict for resource group %s: %s; %s: releasing it here, "
                           "probing again in %d ms" % (
                               key, detail, "our loop stalled, the other box may have taken over" if self.stale
                               else "its preferred node %s keeps it" % g.group.preferred,
                               self._probe_retry_ms(g))))
        out.append(DropAddresses(key))
        if g.state == ownership.RUNNING:
            self._fire(g, ownership.CONFLICT, out)
        else:
            intent.conflict_pending = True   # the start gives up (or ends): then it is released
        return self._finish(now, out)

    def nonce(self, value, now):
        """A fresh random nonce from the agent (4 bytes, or an int), asked for by NeedNonce."""
        out = self._enter(now)
        if isinstance(value, (bytes, bytearray)):
            value = int.from_bytes(bytes(value[:4]), "big")
        self.rejoin.nonce = value & 0xFFFFFFFF
        self.rejoin.nonce_asked = False
        if self.rejoin.challenge_due:
            self._challenge(now, out)
        return self._finish(now, out)

    def generation_saved(self, generation, ok, now, detail=""):
        """The agent persisted (ok) or could not persist the generation of a NewGeneration."""
        out = self._enter(now)
        pending = self.rejoin.pending
        if pending is None or pending[0] != generation or self.stopped:
            return self._finish(now, out)
        self.rejoin.pending = None
        if not ok:
            self.rejoin.fire(rejoin.REJOINER, rejoin.SAVE_FAILED)
            out.append(Log("critical", "Cannot save the new boot generation %d%s: staying at %d, so %s "
                           "keeps refusing our frames; the next challenge tries again"
                           % (generation, " (" + detail + ")" if detail else "", self.gen, self.peer)))
            return self._finish(now, out)
        self.rejoin.fire(rejoin.REJOINER, rejoin.SAVED)
        old = self.gen
        self.gen = generation
        self.seq = 0
        # acknowledgements count our frames within a generation: what waited for one starts over
        for mark in [self.standby_mark, self.stale_mark] + [i.failed_mark for i in self.intents]:
            if mark.since is not None and not mark.seen:
                mark.arm(0)
        for intent in self.intents:
            intent.want_since = None
        self.counters["generation_jumps"] += 1
        self.seq += 1
        self._send_control(Control(type=TYPE_REJOIN, src=self.my_id, target=self.peer_id, gen=self.gen,
                                   seq=self.seq, floor_gen=pending[2], floor_seq=pending[3],
                                   nonce=pending[1]), now, out)
        out.append(Log("warning", "Rejoining %s with boot generation %d (was %d): it refused our frames "
                       "as older than its floor for us, so this box's state was lost (replaced, "
                       "reflashed, or /data not persistent?)" % (self.peer, generation, old)))
        self.next_send = now    # our status frames with the new generation, once the REJOIN is out
        return self._finish(now, out)

    def can_standby(self):
        if self.config.auto_failback == "legacy":
            return False, "Standby mode only implemented when auto_failback is on or off"
        if not self.live.alive():
            return False, "%s is not alive: there is nobody to hand the groups to" % self.peer
        if self.shutting_down:
            return False, "shutting down"
        return True, "giving all resource groups to %s" % self.peer

    def can_takeover(self):
        if self.config.auto_failback == "legacy":
            return False, "Takeover only implemented when auto_failback is on or off"
        if not self.live.alive():
            return False, ("%s is not alive: its groups are taken over automatically when it is "
                           "declared dead" % self.peer)
        if self.peer_frame.flags & BUSY:
            return False, "%s is busy starting or stopping a group; try again in a moment" % self.peer
        if self.shutting_down:
            return False, "shutting down"
        return True, "taking all resource groups from %s" % self.peer

    def select(self, which=None):
        """hb_standby/hb_takeover's argument -> (group keys, None), or (None, why not).
        all (or None): every group; local: those preferred by this node; foreign: the others;
        else one group's key."""
        if which in (None, "", "all"):
            return [g.key for g in self.groups], None
        if which in ("local", "foreign"):
            return [g.key for g in self.groups if (g.group.preferred == self.me) == (which == "local")], None
        for g in self.groups:
            if g.key == which:
                return [g.key], None
        return None, "no resource group %r (say all, local, foreign or one of: %s)" % (
            which, ", ".join(g.key for g in self.groups))

    def _partial(self, which):
        """The groups ``which`` selects, or None when it means all of them (the classic command)."""
        keys, _ = self.select(which)
        if keys is None or len(keys) == len(self.groups):
            return None
        return [g for g in self.groups if g.key in keys]

    def standby(self, now, which=None):
        out = self._enter(now)
        ok, why = self.can_standby()
        if not ok:
            out.append(Log("warning", "standby refused: " + why))
            return self._finish(now, out)
        some = self._partial(which)
        self._operator_acted()
        if some is None:
            self._go_standby()
            self.takeover_request = False
            self.taking = {}
            out.append(Log("info", "Going standby: " + why))
        else:
            for g in some:
                self._give(g)
            out.append(Log("info", "Going standby for %s: giving %s to %s" % (
                which, " ".join(g.key for g in some) or "no group", self.peer)))
        return self._finish(now, out)

    def takeover(self, now, which=None):
        out = self._enter(now)
        ok, why = self.can_takeover()
        if not ok:
            out.append(Log("warning", "takeover refused: " + why))
            return self._finish(now, out)
        some = self._partial(which)
        self._operator_acted()
        for g in (self.groups if some is None else some):
            self.given.pop(g.index, None)
            self.giving.pop(g.index, None)
        if some is None:
            self.standby_mode = False
            self.takeover_request = True
            out.append(Log("info", "Takeover: " + why))
        else:
            if self.standby_mode:   # leave standby for these groups only: the others stay given
                self.standby_mode = False
                for g in self.groups:
                    if g not in some:
                        self._give(g)
            for g in some:
                if not g.held():
                    self.taking[g.index] = True
            out.append(Log("info", "Takeover of %s: taking %s from %s" % (
                which, " ".join(g.key for g in some) or "no group", self.peer)))
        return self._finish(now, out)

    def _give(self, g):
        self.taking.pop(g.index, None)
        if g.index not in self.given:
            self.given[g.index] = Mark()
            self.given[g.index].arm(self.seq)
            if g.held():
                self.giving[g.index] = True

    def reconfigure(self, config, now):
        """Put a reloaded configuration in force.  The caller has checked it (hanode/reload.py):
        the same nodes, links and groups (keys, order, preferred nodes).  Timings, keys and
        auto_failback apply at once; a group's new resources once it is stopped here - a running
        group is stopped with the definition it was started with."""
        out = self._enter(now)
        self.config = config
        self.monitoring.configure(config)
        self.auth = Auth.from_config(config)
        for decoder in self.decoders.values():
            decoder.rekey(self.auth)
        live = self.live
        live.keepalive_ms, live.warntime_ms = config.keepalive_ms, config.warntime_ms
        live.deadtime_ms, live.initdead_ms = config.deadtime_ms, config.initdead_ms
        if self.last_send is not None and self.next_send is not None:
            self.next_send = min(self.next_send, self.last_send + config.keepalive_ms)
        self.pending_groups = {}
        for g in self.groups:
            self.pending_groups[g.index] = config.groups[g.index]
        self._apply_pending_groups(out)
        return self._finish(now, out)

    def _apply_pending_groups(self, out):
        for index in list(self.pending_groups):
            g = self.groups[index]
            if g.state == ownership.STOPPED:
                changed = _tokens(g.group) != _tokens(self.pending_groups[index])
                g.group = self.pending_groups.pop(index)
                if changed:
                    self.monitoring.regroup(index, g.group)
                    out.append(Log("info", "Resource group %s: reloaded definition in force (%s)"
                                   % (g.key, " ".join(_tokens(g.group)))))
            elif _tokens(g.group) == _tokens(self.pending_groups[index]):
                g.group = self.pending_groups.pop(index)   # same resources: nothing waits

    def set_revision(self, revision, now):
        """Our configuration revision (an int below 2**48; the agent hashes the files): told to
        the peer in a notice at once."""
        out = self._enter(now)
        self.revision = revision & 0xFFFFFFFFFFFF
        self._revision_due(now)
        return self._finish(now, out)

    def _revision_due(self, now):
        self.notice_at = now
        self.notice_copies = REVISION_COPIES

    def can_restart(self):
        """(ok, why): may the agent restart now, leaving the groups running?"""
        if self.shutting_down or self.stopped:
            return False, "shutting down"
        if self.restarting is not None:
            return False, "already restarting"
        busy = [g.key for g in self.groups if g.busy()]
        if busy:
            return False, ("resource group %s is starting, stopping or being probed: try again once it "
                           "has settled" % " ".join(busy))
        if self.rejoin.saving():
            return False, "saving a new boot generation (rejoin): try again in a moment"
        return True, "restarting the agent; %s stay%s running, %s holds off for up to %d ms" % (
            " ".join(self.held_groups()) or "no group", "s" if len(self.held_groups()) == 1 else "",
            self.peer, self.config.restart_grace_ms)

    def restart(self, now):
        """The agent restarts (an upgrade, a change reload cannot apply): tell the peer our groups
        stay, then stop without releasing them (``Stopped``; ``restarting`` says it is a restart)."""
        out = self._enter(now)
        ok, why = self.can_restart()
        if not ok:
            out.append(Log("warning", "restart refused: " + why))
            return self._finish(now, out)
        self.restarting = {"copies_left": RESTART_NOTICES, "next_at": now}
        self.counters["restarts_announced"] += 1
        out.append(Log("info", "Agent restart: " + why))
        return self._finish(now, out)

    def _restart_step(self, now, out):
        """Send the restart notices, NOTICE_GAP_MS apart, then stop (no status frame any more:
        one would tell the peer the restart was called off)."""
        r = self.restarting
        if now < self._line_free(r["next_at"]):
            return out
        if r["copies_left"]:
            r["copies_left"] -= 1
            r["next_at"] = now + NOTICE_GAP_MS
            self._notice(now, out, restarting=True)
            return out
        out.append(Log("info", "%s agent restarting (generation %d ends); resource groups left running for "
                       "the next agent: %s" % (self.me, self.gen, " ".join(self.held_groups()) or "none")))
        out.append(Stopped())
        self.stopped = True
        return out

    def _notice(self, now, out, restarting=False):
        held, want = self._masks()
        self.seq += 1
        self._send_control(Notice(src=self.my_id, target=self.peer_id, gen=self.gen, seq=self.seq,
                                  restarting=restarting,
                                  grace_ms=self.config.restart_grace_ms if restarting else 0,
                                  revision=self.revision, held=held, want=want), now, out)

    def _on_notice(self, f, now, out):
        """The peer's revision and, with ``restarting``, its agent restart: hold off (module docstring)."""
        peer = self.peer_frame
        if peer is None or f.gen != peer.gen:
            self.counters["control_ignored"] += 1   # not from the life of the peer we hear now
            return
        self.guard.commit(f.src, f.gen, f.seq)
        if f.revision and f.revision != self.peer_revision:
            out.append(Log("info", "%s runs configuration revision %012x%s" % (
                self.peer, f.revision, "" if not self.revision or f.revision == self.revision
                else " (ours is %012x)" % self.revision)))
        if f.revision:
            self.peer_revision = f.revision
        if self.notice_at is None and self.revision:
            self.notice_at = now + REVISION_NOTICE_MS   # it reads notices: keep it up to date
        if not f.restarting or not f.held or self.shutting_down or not self.live.alive():
            return   # (a peer that keeps nothing running gets no grace: its silence is a death)
        if self.peer_restart is not None and self.peer_restart["gen"] == f.gen:
            return   # another copy: it does not extend the grace
        grace = min(f.grace_ms, self.config.restart_grace_ms)
        self.peer_restart = {"gen": f.gen, "since_ms": now, "until_ms": now + grace, "grace_ms": grace,
                             "held": f.held, "silence_said": False}
        self.live.hold_peer(now + grace)
        self.counters["peer_restarts_held"] += 1
        out.append(Log("info", "%s restarts its agent (generation %d) keeping %s: not taking over for up "
                       "to %d ms" % (self.peer, f.gen, " ".join(g.key for g in self.groups if f.held & g.bit)
                                     or "no group", grace)))

    def _peer_restart_over(self, now, f, out):
        """A new status frame from the peer while we held off for its restart."""
        pr = self.peer_restart
        self.peer_restart = None
        self.live.hold_peer(None)
        if f.gen == pr["gen"]:
            out.append(Log("warning", "%s called its agent restart off (generation %d goes on)" % (self.peer, f.gen)))
            return
        kept = [g.key for g in self.groups if pr["held"] & g.bit and f.held & g.bit]
        lost = [g.key for g in self.groups if pr["held"] & g.bit and not f.held & g.bit]
        out.append(Log("info", "%s restarted its agent in %d ms (generation %d -> %d); it kept %s%s" % (
            self.peer, now - pr["since_ms"], pr["gen"], f.gen, " ".join(kept) or "no group",
            "; it no longer holds %s" % " ".join(lost) if lost else "")))

    def _peer_restart_silence(self, now, out):
        """Say once that the restarting peer is silent beyond the dead time (as Heartbeat would)."""
        pr, p = self.peer_restart, self.live.peer
        if pr is None or pr["silence_said"] or p.since is None or now - p.since <= self.config.deadtime_ms:
            return
        pr["silence_said"] = True
        out.append(Log("warning", "node %s: silent for %d ms (> deadtime), restarting its agent: holding off "
                       "for another %d ms" % (self.peer, now - p.since, max(0, pr["until_ms"] - now))))

    def shutdown(self, now):
        out = self._enter(now)
        if not self.shutting_down:
            self.shutting_down = True
            self.state = STATE_RELEASING
            out.append(Log("info", "Heartbeat shutdown in progress."))
            out.append(Log("info", "Giving up all HA resources."))
        return self._finish(now, out)

    # ---------------------------------------------------------------- internals

    def _enter(self, now):
        self.quiet_until = None   # an input, or time past a deadline: _finish decides again
        out = []
        if self.last_call is not None and now - self.last_call > self.config.deadtime_ms:
            self.counters["stalls"] += 1
            self.live.grace(now)
            held = [g.key for g in self.groups if g.held()]
            out.append(Log("warning", "Our own loop stalled for %d ms (> deadtime %d ms)%s"
                           % (now - self.last_call, self.config.deadtime_ms,
                              ": %s may have taken over; yielding whatever it claims until it hears "
                              "from us again" % self.peer if held else "")))
            if held:
                self.stale = True
                self.stale_mark.arm(self.seq)
        self.last_call = now
        self.now = now
        return out

    def _group(self, key):
        for g in self.groups:
            if g.key == key:
                return g
        raise KeyError("no resource group %r" % (key,))

    def _fire(self, g, event, out):
        state, unlisted = g.state, g.unlisted
        action = g.fire(event)
        if action is not None:
            out.append(_OUTPUTS[action](g.key))
        elif g.unlisted != unlisted:
            out.append(Log("warning", "Resource group %s: event %s in state %s is not in the ownership "
                           "table; ignored (counted as unlisted_transitions)" % (g.key, event, state)))

    def _probe_retry_ms(self, g):
        # Two nodes that each think the other dead probe at once and see each other's probe
        # (a conflict, RFC 5227): the preferred node retries sooner, so they do not collide forever.
        base = max(self.config.keepalive_ms, 200)
        return base if g.group.preferred == self.me else base * 2 + 50

    def peer_view(self):
        """The peer's latest frame while it is alive, else None."""
        return self.peer_frame if self.live.alive() else None

    def _on_frame(self, f, link, now, out):
        if f.type != TYPE_STATUS:
            self._on_control(f, now, out)
            return
        if f.src == self.my_id:
            leftover = f.gen < self.gen and (self.started_at is None
                                             or now - self.started_at <= self.config.deadtime_ms)
            # (the fields include the generation: an echo from before a rejoin's jump is ours too)
            if leftover or f.fields() in self.recent_sent:
                self.counters["own"] += 1   # our own frame echoed back, or left in the line by our last life
            else:
                self._on_identity_conflict(f, link, now, out)
            return
        if f.src != self.peer_id:
            self.counters["unknown_src"] += 1
            return
        verdict = self.guard.check(f.src, f.gen, f.seq)
        if verdict == REPLAY:
            self.counters["replay"] += 1
            if rejoin.below_floor(f.gen, f.seq, self._peer_floor()):
                self._below_floor(f, now, out)
            return
        self._note_version(f, verdict == NEW, out)
        events = self.live.heard(link, now, verdict == NEW)
        if verdict != NEW:
            self.counters["duplicate"] += 1
            self._report(events, out)
            return
        self.guard.commit(f.src, f.gen, f.seq)
        self.counters["frames_received"] += 1
        if self.rejoin.challenging() and f.gen > self.rejoin.episode["floor"][0]:
            self.rejoin.fire(rejoin.CHALLENGER, rejoin.PEER_MOVED)
            self.rejoin.end_episode(now, "peer_moved", f.gen)
            out.append(Log("info", "%s now sends generation %d, above its floor: its frames are accepted "
                           "again (its rejoin answer was lost, or it restarted with its state)" % (self.peer, f.gen)))
        previous = self.peer_frame
        if self.peer_restart is not None:
            self._peer_restart_over(now, f, out)
        if previous is None or previous.gen != f.gen:
            out.append(PeerGeneration(f.gen))
            self._revision_due(now)   # a new life of the peer: tell it our revision
            self.peer_revision = None
            if previous is not None:
                self.counters["peer_restarts"] += 1
                out.append(Log("info", "Heartbeat restart on node %s" % self.peer))
        self.peer_frame = f
        self._announce_kept(previous, f, events, out)
        self._report(events, out, returning=previous is not None and previous.gen == f.gen)
        if not self.comm_up:
            self._comm_now_up(out)
        if previous is None or _view_of(previous) != _view_of(f):
            self.next_send = now   # answer at once: the peer may be waiting for our ack
            self.following = self.follows_peer   # (and with the slack: else we tie with its next)
        else:
            self._follow(now)
        operator_flags = f.flags & (STANDBY | TAKEOVER)
        if operator_flags and not (previous and previous.flags & operator_flags == operator_flags):
            self._operator_acted()   # an operator acted on the peer: our given-up groups get a new chance
        if f.flags & TAKEOVER and not self.standby_mode:
            every = 0
            for g in self.groups:
                every |= g.bit
            if f.want & every == every:
                self._go_standby()
                out.append(Log("info", "%s wants to take over: giving it all resource groups" % self.peer))
            else:   # a per-group takeover: the groups its frame wants
                asked = [g for g in self.groups if f.want & g.bit and g.index not in self.given
                         and (g.held() or self.intents[g.index].wanted)]
                for g in asked:
                    self._give(g)
                if asked:
                    out.append(Log("info", "%s wants to take over %s: giving it" % (
                        self.peer, " ".join(g.key for g in asked))))
        if f.flags & STANDBY and self.takeover_request:
            self.takeover_request = False
        if f.flags & STANDBY and self.standby_mode and not (previous and previous.flags & STANDBY):
            self.standby_mode = False   # the peer went standby after us: somebody has to hold the groups
            out.append(Log("info", "%s went standby: taking all resource groups" % self.peer))
        self.peer_said_goodbye = False   # a goodbye counts only until the peer speaks again
        self.goodbye_held = 0
        if f.state == STATE_SHUTDONE:
            # trusted (no probe before taking over) only if it acknowledges this life of ours: a
            # goodbye left in the line by the peer before our own restart was not said to us
            self.peer_said_goodbye = f.ack_gen == (self.gen & f.ack_gen_mask()) and f.ack_gen != 0
            # a goodbye that still sets a held bit admits a group it could not stop: that group
            # may still run there, so it is taken exactly as from a dead peer (probed first)
            self.goodbye_held = f.held
            out.append(Log("info", "Received shutdown notice from '%s'.%s" % (
                self.peer, "" if self.peer_said_goodbye else
                " (not addressed to this life of ours: its addresses are probed before they are taken)")))
            for g in self.groups:
                if f.held & g.bit:
                    out.append(Log("warning", "%s said goodbye but still holds resource group %s (its stop "
                                   "failed?): %s, as if %s had died" % (
                                       self.peer, g.key, "probing it before taking it"
                                       if self._lone_event(g) == ownership.ACQUIRE_LONE else
                                       "taking it without a probe (no address to probe, or vip_probe off)",
                                       self.peer)))
            self._report(self.live.declare_dead(), out)
        for mark in self._marks():
            mark.update(self.seq, self.gen, f)
        if self.stale and self.stale_mark.seen:
            if not any(g.held() and f.held & g.bit for g in self.groups):
                self.stale = False
                out.append(Log("info", "Back in touch with %s after our stall; no conflicting groups" % self.peer))

    def _follow(self, now):
        """The peer's frame with an unchanged view came: the follower's frame goes with it."""
        if self.follows_peer and self.next_send is not None and now < self.next_send:
            if self._line_free(now) <= now:
                self.next_send = now   # ours goes with the peer's frame (FOLLOW_SLACK_MS)
                self.following = True
            elif self.hold_until is None or self.hold_until <= now:
                # ours went on its own schedule just before the peer's came: the next goes with
                # the peer's next, not a frame time ahead of it for good (a wake-up of its own)
                self.next_send = now + self.config.keepalive_ms + FOLLOW_SLACK_MS

    def _marks(self):
        """Every acknowledgement mark (acks.Mark) the peer's frames update."""
        return [self.standby_mark, self.stale_mark] + [i.failed_mark for i in self.intents] + list(self.given.values())

    def _note_version(self, f, new, out):
        """What the peer's frame says about the versions it speaks, and its LAN health."""
        if f.version == VERSION_LAN:
            lan = f.lan - 1 if f.lan else None
            if self.peer_v2_gen != f.gen:
                self.peer_v2_gen = f.gen
                out.append(Log("info", "%s speaks frame version %d (LAN health): sending it version %d"
                               % (self.peer, VERSION_LAN, VERSION_LAN)))
            if lan != self.peer_lan:
                self.peer_lan = lan
                out.append(Log("info", "%s reports LAN health %s; %s" % (
                    self.peer, health.describe(lan),
                    health.why(self.lan_health.counted, lan, self.me, self.peer))))
            return
        if self.peer_v2_gen == f.gen:
            return   # the version 1 half of a pair from a new peer
        if self.peer_frame is None or self.peer_frame.gen != f.gen:
            self.peer_v1_frames = 0
            self.peer_lan = None
        if new:
            self.peer_v1_frames += 1
            if self.peer_v1_frames == V1_FRAMES:
                out.append(Log("info", "%s speaks frame version %d only (a release without LAN health): "
                               "sending it version %d; the LAN moves nothing" % (self.peer, VERSION, VERSION)))

    def _versions(self):
        """The frame versions of our next status frame (see the module docstring)."""
        p = self.peer_frame
        if p is not None and self.peer_v2_gen == p.gen:
            return (VERSION_LAN,)
        if p is not None and self.peer_v1_frames >= V1_FRAMES and (self.seq % LAN_HELLO_EVERY):
            return (VERSION,)
        return (VERSION, VERSION_LAN)

    def _announce_kept(self, previous, f, events, out):
        """Clients may have learned the peer's MAC for an address of a group we hold and run:
        the peer released the group (a healed split brain with vip_probe off, a hand-over), or
        the peer comes back in the same life after a partition without it (it may have taken
        and released it while we could not hear it - its release can beat its first frame to
        us).  Then they must hear ours again.  (A peer that restarted took nothing since its
        boot without telling us, and its earlier life's held bits say nothing: that life
        ended.)"""
        same_life = previous is not None and previous.gen == f.gen
        back = same_life and any(event == "peer_up" and detail == DEAD for event, detail in events)
        for g in self.groups:
            if g.state != ownership.RUNNING or f.held & g.bit:
                continue
            if same_life and previous.held & g.bit:
                out.append(Log("info", "%s released resource group %s, which we hold: announcing its "
                               "addresses again" % (self.peer, g.key)))
                out.append(Announce(g.key))
            elif back:
                out.append(Log("info", "%s is back and does not hold resource group %s, which we hold: "
                               "announcing its addresses again" % (self.peer, g.key)))
                out.append(Announce(g.key))

    def _peer_floor(self):
        """(gen, seq): the newest frame of the peer we accepted, or (persisted floor, 0)."""
        floor = (self.guard.floor(self.peer_id) or 0, 0)
        last = self.guard.last(self.peer_id)
        return last if last is not None and last > floor else floor

    def _below_floor(self, f, now, out):
        """An authentic status frame of the peer below its floor: a box that lost its state, or
        a replay.  Dropped (counted as a replay) either way; said once per episode; the peer is
        challenged."""
        self.counters["below_floor"] += 1
        floor = self._peer_floor()
        action = self.rejoin.fire(rejoin.CHALLENGER, rejoin.BELOW_FLOOR)
        if action == rejoin.DO_LOG:
            self.rejoin.episode = {"since_ms": now, "floor": floor, "their_generation": f.gen,
                                   "below_floor": 0, "challenges": 0}
            out.append(Log("critical", "Authentic frames from %s with generation %d (seq %d), below its floor "
                           "%d/%d (the newest frame of %s accepted before): a replaced or reflashed box "
                           "that lost its state? Dropping them and challenging %s to rejoin under the "
                           "shared key. If this repeats while %s runs normally, someone is replaying "
                           "recorded frames." % (self.peer, f.gen, f.seq, floor[0], floor[1], self.peer,
                                                 self.peer, self.peer)))
        episode = self.rejoin.episode
        episode["below_floor"] += 1
        episode["their_generation"] = f.gen
        last = self.rejoin.last_challenge_ms
        if last is None or now - last >= self.config.keepalive_ms:
            self.rejoin.challenge_due = True
            self._challenge(now, out)

    def _challenge(self, now, out):
        """Send the due challenge, or ask the agent for a nonce first."""
        r = self.rejoin
        if r.sent_nonce is None:
            if r.nonce is None:
                if not r.nonce_asked:
                    r.nonce_asked = True
                    out.append(NeedNonce())
                return
            r.sent_nonce, r.nonce = r.nonce, None
        self.seq += 1
        self._send_control(Control(type=TYPE_CHALLENGE, src=self.my_id, target=self.peer_id,
                                   gen=self.gen, seq=self.seq, floor_gen=r.episode["floor"][0],
                                   floor_seq=r.episode["floor"][1], nonce=r.sent_nonce), now, out)
        self.counters["challenges_sent"] += 1
        r.episode["challenges"] += 1
        r.last_challenge_ms = now
        r.challenge_due = False

    def _line_free(self, at):
        """``at``, or later while our last frame may still be queued on a serial line (the next one
        would replace it): a control frame's or a status frame's wire time."""
        if self.last_send is not None:
            at = max(at, self.last_send + FRAME_WIRE_BYTES * 10000 // self.config.baud + 1)
        return max(at, self.hold_until or 0)

    def _send_control(self, frame, now, out):
        """Send a control frame, kept whole: a serial link replaces a status frame still queued in
        the kernel by the next one (a stale status frame is worth nothing), never a kept one
        (links.py).  Our next status frame is held until this one is out, so it rarely waits."""
        out.append(Send(encode(frame, self.auth), keep=True))
        # behind a control frame still on the wire (a notice, then the rejoin it crossed)
        self.hold_until = max(now, self.hold_until or 0) + CONTROL_WIRE_BYTES * 10000 // self.config.baud + 1

    def _on_control(self, f, now, out):
        """A challenge or rejoin frame (rejoin.py)."""
        if f.src == self.my_id:
            self.counters["own"] += 1     # our own challenge or rejoin, echoed by the line
            return
        if f.src != self.peer_id:
            self.counters["unknown_src"] += 1
            return
        verdict = self.guard.check(f.src, f.gen, f.seq)
        if verdict != NEW:
            self.counters["replay" if verdict == REPLAY else "duplicate"] += 1
            return
        if f.target != self.my_id:
            self.counters["control_ignored"] += 1
            return
        if f.type == TYPE_NOTICE:
            self._on_notice(f, now, out)
        elif f.type == TYPE_CHALLENGE:
            self._on_challenge(f, out)
        else:
            self._on_rejoin(f, now, out)

    def _on_challenge(self, f, out):
        peer = self.peer_frame
        # Only a challenge from the peer's life we are hearing, naming a frame of ours newer than
        # any we sent in this life, counts: a box with its state is always at or past what the
        # peer accepted, and one recorded from an earlier life of either box changes nothing.
        if (peer is None or f.gen != peer.gen or (self.gen, self.seq) >= (f.floor_gen, f.floor_seq)
                or self.rejoin.saving()):
            self.counters["control_ignored"] += 1
            return
        generation = f.floor_gen + rejoin.REJOIN_JUMP
        if generation > 0xFFFFFFFF:
            self.counters["control_ignored"] += 1
            out.append(Log("critical", "%s challenged our generation %d with floor %d: no generation is "
                           "left above it; remove %s's peer_generation file for %s" % (
                               self.peer, self.gen, f.floor_gen, self.peer, self.me)))
            return
        self.guard.commit(f.src, f.gen, f.seq)
        self.rejoin.fire(rejoin.REJOINER, rejoin.CHALLENGED)
        self.rejoin.pending = (generation, f.nonce, f.floor_gen, f.floor_seq)
        out.append(Log("warning", "%s refuses our generation %d: it accepted frame %d/%d of %s before, "
                       "so this box lost its state. Saving generation %d to rejoin"
                       % (self.peer, self.gen, f.floor_gen, f.floor_seq, self.me, generation)))
        out.append(NewGeneration(generation))

    def _on_rejoin(self, f, now, out):
        r = self.rejoin
        if (not r.challenging() or r.sent_nonce is None or f.nonce != r.sent_nonce
                or (f.floor_gen, f.floor_seq) != r.episode["floor"] or f.gen <= f.floor_gen):
            self.counters["control_ignored"] += 1    # not an answer to our current challenge
            return
        self.guard.commit(f.src, f.gen, f.seq)
        self.guard.set_floor(f.src, f.gen)
        episode = r.episode
        r.fire(rejoin.CHALLENGER, rejoin.REJOINED)
        r.end_episode(now, "rejoined", f.gen)
        self.counters["rejoins"] += 1
        out.append(PeerGeneration(f.gen))
        out.append(Log("warning", "%s rejoined with generation %d after losing its state (%d frames below "
                       "its floor %d dropped over %d ms); frames of its earlier lives stay refused"
                       % (self.peer, f.gen, episode["below_floor"], episode["floor"][0],
                          now - episode["since_ms"])))

    def _on_identity_conflict(self, f, link, now, out):
        """An authentic frame with our id that we did not just send: our generation with a
        sequence or content that is not one of our last frames, a newer generation, or an older
        one still arriving a dead time after our start (our last life's frames are gone by then).
        Another box has our name (an identity file copied to both boxes)."""
        self.counters["identity_conflicts"] += 1
        if self.identity_conflict is not None:
            return
        self.identity_conflict = {"link": link, "their_generation": f.gen, "since_ms": now}
        out.append(Log("critical", "Another box also calls itself %s: authentic frames with our node id "
                       "from another boot (generation %d; ours is %d) arrive on %s. Give each box its own "
                       "node name (hanode --node, or the hostname; the image reads it from "
                       "/data/etc/identity) - one of the names in ha.cf's node lines (%s) - and restart "
                       "hanode there. Taking no resource group meanwhile."
                       % (self.me, f.gen, self.gen, link, ", ".join(self.config.nodes))))

    def _operator_acted(self):
        """takeover or standby, here or on the peer: start afresh for groups whose starts failed,
        and with a full allowance of restarts in place."""
        for intent in self.intents:
            intent.clear_start_failures()
        self.monitoring.operator_acted()

    def _go_standby(self):
        self.standby_mode = True
        self.standby_mark.arm(self.seq)

    def _comm_now_up(self, out):
        self.comm_up = True
        if self.state == STATE_UP:
            self.state = STATE_ACTIVE
            out.append(Log("info", "Comm_now_up(): updating status to active"))
            out.append(Log("info", "Local status now set to: 'active'"))

    def _report(self, events, out, returning=False):
        for event, detail in events:
            if event == "link_up":
                out.append(Log("info", "Link %s:%s up." % (self.peer, detail)))
            elif event == "link_dead":
                out.append(Log("info", "Link %s:%s dead." % (self.peer, detail)))
            elif event == "late":
                if detail > self.config.deadtime_ms:
                    out.append(Log("critical", "Late heartbeat: Node %s: interval %d ms (> deadtime)"
                                   % (self.peer, detail)))
                else:
                    out.append(Log("warning", "Late heartbeat: Node %s: interval %d ms" % (self.peer, detail)))
                self.counters["late_heartbeats"] += 1
            elif event == "peer_up":
                for g in self.groups:
                    self.intents[g.index].busy_probes = 0     # a new episode gets its own warning
                    self.intents[g.index].yielded = False     # the frames say who holds it now
                if detail == DEAD and returning:
                    out.append(Log("critical", "Cluster node %s returning after partition." % self.peer))
                out.append(Log("info", "Status update for node %s: status %s"
                               % (self.peer, STATE_NAMES[self.peer_frame.state])))
            elif event == "peer_dead":
                self._on_peer_dead(detail, out)

    def _trusts_goodbye(self, g):
        """Did the peer say goodbye to us, having released ``g``?  Then ``g`` needs no probe."""
        return self.peer_said_goodbye and not self.goodbye_held & g.bit

    def _lone_event(self, g):
        if self.intents[g.index].yielded:   # another box kept its address: never retake it blind
            return wants.lone_event(g, True, False)
        return wants.lone_event(g, self.config.vip_probe, self._trusts_goodbye(g))

    def _on_peer_dead(self, never_heard, out):
        if self.peer_restart is not None:
            self.counters["peer_restart_timeouts"] += 1
            out.append(Log("critical", "%s did not come back within its restart grace (%d ms): taking over "
                           "as from a dead peer" % (self.peer, self.peer_restart["grace_ms"])))
            self.peer_restart = None
            self.live.hold_peer(None)
        if self.peer_said_goodbye and not self.goodbye_held:
            out.append(Log("info", "%s shut down cleanly" % self.peer))
        elif self.goodbye_held:
            out.append(Log("warning", "%s shut down without releasing everything" % self.peer))
        elif never_heard:
            out.append(Log("warning", "node %s: is dead (not heard within initdead %d ms)"
                           % (self.peer, self.config.initdead_ms)))
        else:
            out.append(Log("warning", "node %s: is dead" % self.peer))
        if not self.comm_up:
            self._comm_now_up(out)
        self.standby_mode = False
        self.takeover_request = False
        self.given = {}
        self.taking = {}
        self.giving = {}
        for g in self.groups:
            self.intents[g.index].failed = False
            self.intents[g.index].retry_at = None
        if not self.shutting_down and any(not g.held() for g in self.groups):
            out.append(Log("info", "Resources being acquired from %s." % self.peer))
            if not all(self._trusts_goodbye(g) for g in self.groups):
                out.append(Log("warning", "No STONITH device configured: the watchdog on %s and the ARP "
                               "probe before each address are what keep the groups single" % self.peer))

    def _on_silence(self, now, out):
        self._peer_restart_silence(now, out)
        self._report(self.live.check(now), out)

    def lan_delay_ms(self):
        """How long the two healths must differ before the LAN moves a group (health.verdict_delay_ms)."""
        pair = self.lan_compare.pair
        return health.verdict_delay_ms(self.config.deadtime_ms, self.config.keepalive_ms, pair[0], pair[1])

    def _evaluate(self, now, out):
        peer = self.peer_view()
        own, theirs = self.lan_health.counted, self.peer_lan if peer is not None else None
        # (the delay matters only when the healths differ; no LAN adapter: never)
        delay = 0 if health.lan_rule(own, theirs) is None else health.verdict_delay_ms(
            self.config.deadtime_ms, self.config.keepalive_ms, own, theirs)
        lan = self.lan_verdict = self.lan_compare.rule(own, theirs, now, delay)
        for g in self.groups:
            intent = self.intents[g.index]
            given = self.given.get(g.index)
            if g.index in self.giving:
                # what counts is the peer seeing it released: then it wants it (it is orphaned
                # for it too); only if it still does not will we take it back.  So the mark waits
                # for the first frame that shows it released, not one that went while it stopped
                # (the peer's view of that one, still not wanting a group we hold, would have us
                # take it back, and the two would take turns wanting it, a frame each)
                given.arm(self.seq)
                if not g.held():
                    del self.giving[g.index]
            if intent.rolling_back:
                # the same for a failed start: the peer, seeing it still held, does not want it;
                # that view must not count as "the peer will not run it".  The back-off, too,
                # runs from the release: else a roll-back slower than the back-off has us start
                # it again before the peer could take it (preferred or not), and again
                intent.failed_mark.arm(self.seq)
                if not g.held():
                    intent.rolling_back = False
                    intent.retry_at = now + wants.start_retry_ms(intent.start_failures)
            if g.index in self.taking and g.state == ownership.RUNNING:
                del self.taking[g.index]   # ours now; the peer's given mark keeps it here
            intent.wanted = wants.wanted(
                g, intent, peer, now, me=self.me, auto_failback=self.config.auto_failback,
                shutting_down=self.shutting_down, identity_conflict=self.identity_conflict is not None,
                comm_up=self.comm_up, standby=self.standby_mode or given is not None,
                standby_seen=self.standby_mark.seen if self.standby_mode else given is not None and given.seen,
                stale=self.stale, lan=lan
            ) or self._asking(g, peer)
            event = wants.event(intent.wanted, g.state, peer is not None, intent.due(now),
                                lambda: wants.peer_agrees(g, intent, peer, self.seq, self.gen),
                                self._lone_event(g))
            if event is None:
                continue
            if event == ownership.RETRY:
                intent.retry_at = now + RETRY_MS
            elif event != ownership.RELEASE:
                intent.retry_at = None
            self._fire(g, event, out)

    def _asking(self, g, peer):
        """A takeover we asked for wants its group while the peer is alive and not stale-yielding:
        the peer gives away the groups our TAKEOVER frame wants (a global takeover wants them all)."""
        return (peer is not None and not self.shutting_down and self.identity_conflict is None
                and (self.takeover_request or g.index in self.taking))

    def _flags(self):
        flags = 0
        if self.standby_mode:
            flags |= STANDBY
        if self.takeover_request or self.taking:
            flags |= TAKEOVER
        if any(g.busy() or self.monitoring.monitors[g.index].busy() for g in self.groups):
            flags |= BUSY   # (a restart in place too: a takeover waits for it)
        if self.stale:
            flags |= STALE
        return flags

    def _masks(self):
        held = want = 0
        for g in self.groups:
            if g.claimed():
                held |= g.bit
            if self.intents[g.index].wanted:
                want |= g.bit
        return held, want

    def _finish(self, now, out):
        if self.stopped:
            return out
        if self.restarting is not None:
            return self._restart_step(now, out)
        if self.pending_groups:
            self._apply_pending_groups(out)
        self._evaluate(now, out)
        self.monitoring.step(self, now, out)
        if self.shutting_down and all(self._released_or_escalated(g) for g in self.groups):
            return self._stop(now, out)
        held, want = self._masks()
        view = (self.state, self._flags(), held, want, self.lan_health.counted)
        if view != self.sent_view:
            soon = now if self.last_send is None else max(now, self.last_send + MIN_FRAME_GAP_MS)
            if self.next_send is None or soon < self.next_send:
                self.next_send = soon
        if self.hold_until is not None and self.next_send is not None and self.next_send < self.hold_until:
            self.next_send = self.hold_until
        if self.next_send is None or now >= self.next_send:
            self._send(now, view, out)
        if self.notice_at is not None and self.revision and now >= self._line_free(self.notice_at):
            self._notice(now, out)
            self.notice_copies = max(0, self.notice_copies - 1)
            if self.notice_copies:
                self.notice_at = now + REVISION_REPEAT_MS
            else:
                self.notice_at = now + REVISION_NOTICE_MS if self.peer_revision is not None else None
        self.quiet_until = self._quiet_until(now, view)
        return out

    def _quiet_until(self, now, view):
        """Until when this node is settled (None: it is not): every group running or stopped
        as wanted, no hand-over, standby, shutdown, stall, restart, reload or control frame
        under way, and the view computed now already sent.  Then only the deadlines of
        ``_other_deadline`` (a silence limit, warntime, a retry, a monitor check, a notice, the
        LAN's settling) change what a pass computes: before the earliest of them tick() has
        nothing to do but send that view when the next frame is due."""
        if (view != self.sent_view or self.next_send is None or self.shutting_down or self.pending_groups
                or self.giving or self.taking or self.stale or self.peer_restart is not None
                or self.identity_conflict is not None or self.rejoin.challenging()
                or (self.hold_until is not None and self.hold_until > now) or self._tick_work_due(now)):
            return None
        holds_every_group = True
        for g in self.groups:
            intent = self.intents[g.index]
            if (intent.wanted != g.held() or intent.rolling_back
                    or g.state not in (ownership.RUNNING, ownership.STOPPED)):
                return None
            holds_every_group = holds_every_group and g.state == ownership.RUNNING
        self.holds_every_group = holds_every_group
        fixed = self._fixed_deadline(now)
        self.quiet_fixed = NEVER if fixed is None else fixed
        return self._quiet_deadline(now)

    def _quiet_deadline(self, now):
        silence = self._silence_deadline(now)
        return self.quiet_fixed if silence is None else min(self.quiet_fixed, silence)

    def _send(self, now, view, out):
        state, flags, held, want, lan = view
        self.seq += 1
        for g in self.groups:
            if want & g.bit:
                if self.intents[g.index].want_since is None:
                    self.intents[g.index].want_since = self.seq
            else:
                self.intents[g.index].want_since = None
        peer = self.peer_frame
        data = b""
        for version in self._versions():
            frame = Frame(src=self.my_id, gen=self.gen, seq=self.seq, state=state, flags=flags,
                          ack_gen=(peer.gen & ACK_MASK) if peer else 0,
                          ack_seq=(peer.seq & ACK_MASK) if peer else 0,
                          held=held, want=want, version=version)
            if version == VERSION_LAN:
                frame.ack_gen &= frame.ack_gen_mask()
                frame.lan = 0 if lan is None else lan + 1
            data += encode(frame, self.auth)
            self.recent_sent.append(frame.fields())
            if len(self.recent_sent) > 2 * ECHO_FRAMES:   # (two entries for a pair)
                self.recent_sent.pop(0)
        out.append(Send(data))   # one write: the link replaces a queued frame, never half a pair
        self.counters["frames_sent"] += 1
        self.last_send = now
        # absolute schedule: a frame sent late does not push the next one back
        due, keepalive = self.next_send, self.config.keepalive_ms
        self.next_send = (due if due is not None and 0 <= now - due < keepalive else now) + keepalive
        if self.following:
            self.next_send += FOLLOW_SLACK_MS
            self.following = False
        self.sent_view = view

    def _released_or_escalated(self, g):
        """Shutdown may finish: the group is stopped, or its stop failed even after the retries -
        unless we self-fence: then no goodbye, we keep claiming the group until the watchdog
        resets the box, and the peer takes it only after our silence (probing first)."""
        if not g.held():
            return True
        return g.state == ownership.STOP_FAILED and self.intents[g.index].escalated and not self.self_fencing

    def not_fencing(self, now):
        """The agent could not self-fence (no watchdog open; stop_failure fell back to block):
        a shutdown that waits for the reset may finish after all."""
        out = self._enter(now)
        self.self_fencing = False
        return self._finish(now, out)

    def _stop(self, now, out):
        for g in self.groups:
            if g.state == ownership.STOP_FAILED:
                out.append(Log("critical", "Resource group %s could not be stopped: it may still be running"
                               % g.key))
        self.state = STATE_SHUTDONE
        held, want = self._masks()
        view = (self.state, self._flags(), held, 0, self.lan_health.counted)
        for _ in range(2):   # a goodbye is worth a second copy on a noisy line
            self._send(now, view, out)
        out.append(Log("info", "All HA resources relinquished."))
        out.append(Log("info", "%s Heartbeat shutdown complete." % self.me))
        out.append(Stopped())
        self.stopped = True
        return out

    # ------------------------------------------------------------------ timers

    def next_deadline(self):
        """When tick() next has work (a frame due, a silence limit, warntime, a retry); None
        once stopped.  Past times are left out: nothing changes at them until an input."""
        if self.stopped:
            return None
        now = self.now or 0
        if self.restarting is not None:
            return max(now + 1, self._line_free(self.restarting["next_at"]))
        if self.quiet_until is not None:   # (settled: the other deadlines are where they were)
            return min(self.next_send, self.quiet_until)
        soonest = _earlier(self.next_send, now, self._other_deadline(now))
        return now + self.config.keepalive_ms if soonest is None else soonest

    def read_patience(self):
        """How late the agent may read the peer's frames (see the module docstring):
        READ_AT_DEADLINE when settled (``_quiet_until``) and running every group - the peer's
        answer to our frame may wait until ``next_deadline()``; READ_ON_SCHEDULE when settled -
        a frame on the peer's schedule may be read at its expected end, one out of it (a
        change) at most a keepalive late; else READ_PROMPTLY.  The peer's silence is seen as
        soon either way: a frame on schedule is read within a margin of its end, and a silence
        limit is a deadline of tick()."""
        if self.quiet_until is None:
            return READ_PROMPTLY
        return READ_AT_DEADLINE if self.holds_every_group else READ_ON_SCHEDULE

    def _tick_work_due(self, now):
        """Work that only tick() does - a silence limit, the LAN's settling - is due by ``now``
        (this pass was another input's: the next tick must be a full one)."""
        due = self.lan_health.due(self.config.deadtime_ms)
        if due is not None and now >= due:
            return True
        live = self.live
        for track in [live.peer] + live.links:
            if track.since is not None and live.overdue(track, now):
                return True
        return False

    def _other_deadline(self, now):
        """The earliest deadline after ``now`` other than the next frame's, or None."""
        return _earlier(self._silence_deadline(now), now, self._fixed_deadline(now))

    def _fixed_deadline(self, now):
        """The earliest after ``now`` of the deadlines a peer's frame does not move, or None."""
        # (without building lists of the candidates: this runs at every pass)
        soonest = None
        for t in (self._line_free(self.notice_at) if self.notice_at is not None and self.revision else None,
                  self.live.hold_until and self.live.hold_until + 1,
                  self.lan_health.due(self.config.deadtime_ms),
                  self.lan_compare.due(self.lan_delay_ms()) if self.lan_compare.pending() else None):
            soonest = _earlier(t, now, soonest)
        for i in self.intents:
            soonest = _earlier(i.retry_at, now, soonest)
        for t in self.monitoring.deadlines():
            soonest = _earlier(t, now, soonest)
        return soonest

    def _silence_deadline(self, now):
        """The earliest after ``now`` of the silence limits and warntime, or None."""
        live = self.live
        soonest = None
        for track in [live.peer] + live.links:
            if track.state != DEAD and track.since is not None:
                soonest = _earlier(track.since + live.limit(track) + 1, now, soonest)   # its silence limit
        if live.alive():
            soonest = _earlier(live.peer.since + live.warntime_ms + 1, now, soonest)   # late (warntime)
        return soonest

    def may_acquire_soon(self, now):
        """A group is wanted and not held yet (a start, a failback), or the peer is late (a
        failover may follow): the agent gets ready for an acquire.  (Asked after every tick
        until it says yes; settled, every group is as wanted, so only the peer's lateness counts.)"""
        if self.peer_late(now):
            return True
        return self.quiet_until is None and any(self.intents[g.index].wanted and not g.held() for g in self.groups)

    def peer_late(self, now):
        """The peer (not declared dead) is as close to its silence limit as warntime is to the dead
        time (never heard: to initdead): the agent prepares for a failover."""
        p, live = self.live.peer, self.live
        return (p.state != DEAD and p.since is not None
                and now - p.since > live.limit(p) - live.deadtime_ms + live.warntime_ms)

    # ------------------------------------------------------------------ status

    def held_groups(self):
        """Keys of the groups this node holds (every ownership state but STOPPED)."""
        return [g.key for g in self.groups if g.held()]

    def running_groups(self):
        """Keys of the groups fully started here (ownership.RUNNING): what is safe to recheck."""
        return [g.key for g in self.groups if g.state == ownership.RUNNING]

    def peer_state(self):
        """The peer as cl_status names it: dead, init, or its frame's state."""
        return status.peer_state(self)

    def rscstatus(self):
        """cl_status rscstatus: local, foreign, all, none or transition."""
        return status.rscstatus(self)

    def status(self):
        """The whole node as a plain dict (the control socket's status)."""
        return status.status(self)


def _earlier(t, now, soonest):
    """``t`` if it is a time after ``now`` and before ``soonest`` (None: none yet), else ``soonest``."""
    if t is not None and t > now and (soonest is None or t < soonest):
        return t
    return soonest


def _tokens(group):
    return [r.token for r in group.resources]


def _view_of(f):
    return (f.state, f.flags, f.held, f.want, f.lan)
