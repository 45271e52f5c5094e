"""What this node wants of each resource group, and the event that follows from it.

Theory of operation
-------------------
On every call the node re-derives, from its own situation and the peer's
latest view, whether it *wants* each group (``wanted``), and then looks up in
the table below which event, if any, that wish fires into the group's
ownership table (``ownership.py``).  Nothing here keeps state of its own
beyond the per-group ``Intent`` the node hands in; no clock, no I/O.

What a node wants (per group), the peer being alive - the first row that applies:

    situation                                    preferred node        other node
    -------------------------------------------  --------------------  ----------------------------
    we are shutting down                         no                    no
    another box uses our node name               keep what we hold, take nothing
    peer releasing everything (shutting down)    yes                   yes
    we gave up starting it (START_ROUNDS failed  no                    no
    starts here, until an operator acts)
    our start of it failed                       only if the peer has seen it released and still
                                                 neither holds nor wants it (and, the peer being in
                                                 standby, only on the preferred node); after a
                                                 back-off from the release that doubles with each
                                                 failure (start_retry_ms)
    we are in standby                            only if the peer has seen that and still neither
                                                 holds nor wants it (somebody has to run it)
    peer in standby                              yes                   yes
    we were stalled (stale), peer holds it       no                    no
    LAN health differs (health.py; both known)   yes if ours is better, no if it is worse - unless
                                                 the peer neither holds nor wants it (orphaned);
                                                 for less than the verdict delay: keep what we
                                                 hold, take nothing
    auto_failback on (and legacy)                yes                   keep it while the preferred
                                                                       node does not want it; pick
                                                                       it up only if that node is
                                                                       active and neither holds nor
                                                                       wants it
    auto_failback off                            yes, unless the       keep it if we hold it; pick
                                                 other node holds it   it up as above
    both hold it (a healed split brain)          keep it               release it, unless the
                                                                       preferred node is stale

With the peer dead every group is wanted (failover); with the peer never heard
nothing but the groups adopted at start (found running) until initdead has run out.

The event a wish fires - a state-triggered table (h11's term): the rows are
joint states of (wanted, the group's ownership state, the peer), and a row
fires only when its condition holds:

    wanted  state        peer   when    event
    ------  -----------  -----  ------  -----
    yes     stopped      dead   due     lone     retry time reached (a busy probe, a failed start)
    yes     stopped      alive  agreed  acquire  the peer acknowledged our want and neither holds nor wants it
    yes     stop_failed  dead   due     lone
    yes     stop_failed  alive  agreed  acquire
    no      probing      any    always  release  no longer wanted: the probe's answer will be ignored
    no      running      any    always  release
    no      stop_failed  any    due     retry    a failed stop is retried every 5 s; after
                                                 STOP_RETRIES retries the node escalates (and
                                                 retries once a minute from then on)
                                                 (``Escalate``: the agent fences, blocks or
                                                 reboots, as ha.cf's ``stop_failure`` says)

``lone`` is ``acquire_lone`` (probe the LAN first) when the group has an
address, the probe is on and the peer did not say goodbye having released the
group (a goodbye that still sets its held bit admits a failed stop: it counts
as a death), else ``acquire_free``.  Every other joint state fires nothing: the group is where
the wish wants it, or busy (starting, stopping, probing while wanted), and the
node asks again on its next evaluation.

The hand-over rule (release before acquire): with the peer alive a group is
started only when the peer's latest frame acknowledges one of our frames that
already wanted it (``acks.py``), and shows the peer neither holding nor
wanting it.  The other node gives way to the preferred one, so wants never
deadlock.
"""

from hanode.core import health, ownership
from hanode.core.acks import Mark, acked, rearmed
from hanode.core.frame import STALE, STANDBY, STATE_ACTIVE, STATE_RELEASING

YES = "yes"
NO = "no"

ALIVE = "alive"
DEAD = "dead"
ANY = "any"

DUE = "due"
AGREED = "agreed"
ALWAYS = "always"

LONE = "lone"   # acquire_lone or acquire_free: see lone_event()

RETRY_MS = 5000   # retry a failed stop this often; the first back-off after a failed start
# A failed release is retried this many times (RETRY_MS apart) before the node escalates.  The
# runner already runs a failing stop script 4 times 1 s apart in each release, so the first
# failure plus one retry is ~11 s for a script that fails at once: Heartbeat's ResourceManager
# retries 10 times 1 s apart and then reboots.
STOP_RETRIES = 1
QUIET_STOP_RETRY_MS = 60000   # after escalating, the release is still retried, this often
# A failed start backs off RETRY_MS, doubling with each failure on this node, up to this cap; after
# START_ROUNDS failed starts here the node gives the group up until an operator acts (takeover or
# standby on either box, or a restart).  Both boxes failing: at most 2 x START_ROUNDS starts in all.
START_BACKOFF_CAP_MS = 60000
START_ROUNDS = 5

TRANSITIONS = {
    (YES, ownership.STOPPED, DEAD): (DUE, LONE),
    (YES, ownership.STOPPED, ALIVE): (AGREED, ownership.ACQUIRE),
    (YES, ownership.STOP_FAILED, DEAD): (DUE, LONE),
    (YES, ownership.STOP_FAILED, ALIVE): (AGREED, ownership.ACQUIRE),
    (NO, ownership.PROBING, ANY): (ALWAYS, ownership.RELEASE),
    (NO, ownership.RUNNING, ANY): (ALWAYS, ownership.RELEASE),
    (NO, ownership.STOP_FAILED, ANY): (DUE, ownership.RETRY),
}


class Intent:
    """What the node keeps about one group besides its ownership state: whether it wants
    it, a failed start and whether the peer has seen it, and the retry and probe timers."""

    def __init__(self):
        self.wanted = False        # our latest evaluation wants it (our frames' want bit)
        self.failed = False        # our start failed: do not want it while the peer can run it
        self.failed_mark = Mark()  # has the peer seen the failure (the group released)?
        self.rolling_back = False  # a failed start's stop is under way (the node re-arms failed_mark)
        self.want_since = None     # seq of our first frame that wanted it (for the ack rule)
        self.retry_at = None       # when to probe again / retry a failed stop / retry a failed start alone
        self.busy_probes = 0       # probes in a row that found the address answered
        self.busy_logged_at = 0
        self.start_failures = 0    # failed starts here since the last success or operator action
        self.gave_up = False       # START_ROUNDS failed starts: not wanted until an operator acts
        self.stop_failures = 0     # failed stops in a row (the first and its retries)
        self.escalated = False     # STOP_RETRIES retries failed too: the agent was told to escalate
        self.conflict_at = None    # last address conflict heard (node.conflict): episodes and defence
        self.defended_at = None    # last Defend output
        self.conflict_pending = False  # heard while starting and we yield: release once started
        self.yielded = False       # we yielded it in a conflict: probe before retaking, even with vip_probe off

    def clear_start_failures(self):
        """An operator acted (takeover, standby on either box), or a start worked."""
        self.start_failures = 0
        self.gave_up = False
        self.failed = False
        self.rolling_back = False
        self.retry_at = None

    def due(self, now):
        return self.retry_at is None or now >= self.retry_at


def wanted(own, intent, peer, now, me, auto_failback, shutting_down, identity_conflict,
           comm_up, standby, standby_seen, stale, lan=None):
    """Does this node want the group (``own``: its GroupOwnership)?  ``peer`` is the
    peer's latest frame while it is alive, else None (see the first table).  ``lan``:
    ``health.Comparison.rule`` (True: our LAN is better, False: worse, PENDING: they differ
    since less than the verdict delay, None: no say)."""
    if shutting_down or intent.gave_up:
        return False
    if identity_conflict:
        return own.held()   # take nothing: the box with our name may be running it
    if peer is None:
        # peer dead: everything; never heard: only what we found running at start (adopted
        # after an agent restart or a crash: releasing it would cost an outage) until initdead
        return comm_up or own.held()
    if peer.state >= STATE_RELEASING:
        return True
    peer_holds = bool(peer.held & own.bit)
    peer_wants = bool(peer.want & own.bit)
    preferred = own.group.preferred == me
    # the peer saw why we stepped back and still will not run it: better us than nobody
    orphaned = peer.state == STATE_ACTIVE and not peer_holds and not peer_wants
    if intent.failed:
        # retry now and then, only if the peer will not run it.  A peer in standby will, once
        # it sees we don't - so against a standby peer only the preferred node retries (the
        # standby one may be failing too); otherwise the two would take turns wanting it.
        # When both want it at once, the preferred node keeps wanting, the other yields.
        free = peer.state == STATE_ACTIVE and not peer_holds and (not peer_wants or preferred)
        return (free and intent.failed_mark.seen and (not peer.flags & STANDBY or preferred)
                and intent.due(now))
    if standby:
        return orphaned and standby_seen
    if peer.flags & STANDBY:
        return True
    if stale and peer_holds:
        return False
    if lan == health.PENDING:
        return own.held()        # the two healths have just come to differ: nothing moves yet
    if lan is not None:
        return lan or orphaned   # the better LAN serves; a worse one only what nobody else will
    if preferred:
        if auto_failback == "off":
            return own.held() or not peer_holds
        return True
    if own.held():
        if peer_holds:
            return bool(peer.flags & STALE)   # split brain healed: the preferred node keeps it
        if auto_failback == "off":
            return True
        return not peer_wants
    return orphaned


def start_retry_ms(failures):
    """The back-off after the ``failures``-th failed start here: RETRY_MS doubling, capped."""
    delay = RETRY_MS
    for _ in range(failures - 1):
        delay *= 2
        if delay >= START_BACKOFF_CAP_MS:
            return START_BACKOFF_CAP_MS
    return delay


def peer_agrees(own, intent, peer, seq, gen):
    """The hand-over rule: the peer neither holds nor wants the group, and has
    acknowledged one of our frames that already wanted it."""
    if peer.held & own.bit or peer.want & own.bit:
        return False
    # no ack for too long: re-arm on our latest frame, which wants it too
    intent.want_since = rearmed(intent.want_since, seq)
    return acked(intent.want_since, seq, gen, peer)


def lone_event(own, vip_probe, released_in_goodbye):
    """Peer dead: probe the LAN first if the group has an address, unless the peer's goodbye
    to us showed it released."""
    needs_probe = (vip_probe and not released_in_goodbye
                   and any(r.is_ip for r in own.group.resources))
    return ownership.ACQUIRE_LONE if needs_probe else ownership.ACQUIRE_FREE


def event(wish, state, peer_alive, due, agreed, lone):
    """The ownership event for one group, or None (the second table).  ``agreed`` is
    called only when the row needs it (it re-arms the ack rule); ``lone`` is the
    event ``lone_event`` chose."""
    key = YES if wish else NO
    row = TRANSITIONS.get((key, state, ALIVE if peer_alive else DEAD))
    if row is None:
        row = TRANSITIONS.get((key, state, ANY))
    if row is None:
        return None
    when, fired = row
    if when == DUE and not due:
        return None
    if when == AGREED and not agreed():
        return None
    return lone if fired == LONE else fired
