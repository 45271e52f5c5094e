"""Is the peer alive?  Per-link and per-node bookkeeping, Heartbeat's way.

Theory of operation
-------------------
Every authentic frame from the peer refreshes the link it came in on and the
peer itself.  ``check(now)`` runs on every tick: a link silent for longer than
the dead time goes ``dead`` (logged, nothing else happens: the peer is alive
as long as any one link delivers), and the peer goes ``dead`` when every link
has been silent that long.  Before the peer was ever heard the limit is
``initdead`` instead, so a slow-booting peer is not declared dead at once.
Late heartbeats are judged on receipt: an interval above ``warntime`` is
reported with how late it was.

The states move only along this table.  It is the whole documentation of the
peer's life cycle; a (state, event) pair it does not list keeps the state and
is counted in ``unlisted`` (shown in the node's status):

    state   event    next    (for a link and for the peer alike)
    -----   ------   ----
    init    heard    up
    init    silent   dead     (initdead ran out: peer never heard)
    init    goodbye  dead     (the peer's first frame was its shutdown notice)
    up      heard    up       (the normal case: a frame refreshes the timers)
    up      silent   dead     (deadtime without a frame)
    up      goodbye  dead     (a clean shutdown: dead without waiting)
    dead    heard    up       (peer back: restarted, or a healed partition)

``hold_peer(until)`` keeps the peer from being declared dead before ``until``
(its agent announced a restart, node.py); its links still go dead on time.

``grace(now)`` restarts every silence timer: the node calls it when its own
loop was stalled (frozen process, suspended VM), because then silence measured
across the stall says nothing about the peer.
"""

INIT = "init"
UP = "up"
DEAD = "dead"

HEARD = "heard"
SILENT = "silent"
GOODBYE = "goodbye"

TRANSITIONS = {
    (INIT, HEARD): UP,
    (INIT, SILENT): DEAD,
    (INIT, GOODBYE): DEAD,
    (UP, HEARD): UP,
    (UP, SILENT): DEAD,
    (UP, GOODBYE): DEAD,
    (DEAD, HEARD): UP,
}


def step(state, event):
    """Next state for (state, event), or None when the table has no such row."""
    return TRANSITIONS.get((state, event))


class Track:
    """One thing whose liveness is followed: a link, or the peer itself."""

    def __init__(self, name):
        self.name = name
        self.state = INIT
        self.last_heard = None   # time of the last frame, None if never
        self.since = None        # when the current silence window began

    def age(self, now):
        if self.last_heard is None:
            return None
        return now - self.last_heard


class Liveness:
    def __init__(self, peer, links, keepalive_ms, warntime_ms, deadtime_ms, initdead_ms):
        self.peer = Track(peer)
        self.links = [Track(name) for name in links]
        self.keepalive_ms = keepalive_ms
        self.warntime_ms = warntime_ms
        self.deadtime_ms = deadtime_ms
        self.initdead_ms = initdead_ms
        self.last_status = None  # time of the previous new status frame (for late-heartbeat reports)
        self.late = 0
        self.deaths = 0
        self.unlisted = 0   # events that came in a state the table has no row for
        self.hold_until = None   # hold_peer(): no SILENT for the peer before this time

    def _move(self, track, event):
        """Apply ``event`` to ``track`` by the table; return the previous state if it changed."""
        previous = track.state
        nxt = step(previous, event)
        if nxt is None:
            self.unlisted += 1
            return None
        track.state = nxt
        return previous if nxt != previous else None

    def start(self, now):
        for track in [self.peer] + self.links:
            track.since = now

    def link(self, name):
        for track in self.links:
            if track.name == name:
                return track
        track = Track(name)
        track.since = self.peer.since
        self.links.append(track)
        return track

    def heard(self, link_name, now, new_frame):
        """A frame arrived on a link.  new_frame is False for a duplicate (the
        same frame over a second link): it proves the link, not a new beat.
        Returns a list of (event, detail) tuples."""
        events = []
        link = self.link(link_name)
        link.last_heard = now
        link.since = now
        if self._move(link, HEARD) is not None:
            events.append(("link_up", link.name))
        if not new_frame:
            return events
        if self.last_status is not None and self.peer.state == UP:
            interval = now - self.last_status
            if interval > self.warntime_ms:
                self.late += 1
                events.append(("late", interval))
        self.last_status = now
        self.peer.last_heard = now
        self.peer.since = now
        previous = self._move(self.peer, HEARD)
        if previous is not None:
            events.append(("peer_up", previous))
        return events

    def limit(self, track):
        return self.initdead_ms if track.last_heard is None else self.deadtime_ms

    def overdue(self, track, now):
        """``track`` (the peer or a link) has been silent past its limit at ``now``."""
        return track.state != DEAD and now - track.since > self.limit(track)

    def check(self, now):
        """Silence timers.  Returns a list of (event, detail) tuples."""
        events = []
        for link in self.links:
            if self.overdue(link, now):
                self._move(link, SILENT)
                events.append(("link_dead", link.name))
        peer = self.peer
        held = self.hold_until is not None and now <= self.hold_until
        if self.overdue(peer, now) and not held:
            self._move(peer, SILENT)
            self.deaths += 1
            events.append(("peer_dead", peer.last_heard is None))
        return events

    def declare_dead(self):
        """The peer said goodbye (a clean shutdown): dead without waiting."""
        if self._move(self.peer, GOODBYE) is not None:
            return [("peer_dead", False)]
        return []

    def hold_peer(self, until):
        """Do not declare the peer dead before ``until`` (None: no hold)."""
        self.hold_until = until

    def grace(self, now):
        for track in [self.peer] + self.links:
            track.since = now
        self.last_status = None

    def alive(self):
        return self.peer.state == UP
