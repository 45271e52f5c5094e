"""LAN health: what this box's LAN is worth, with hysteresis, and how it moves groups.

Theory of operation
-------------------
The agent's LAN adapter (``hanode/lan.py``) reports a *raw* LAN health each
time it changes (``Node.lan``): an ordinal, higher is better, the same scale
on both boxes because both read the same ha.cf -

    0            an interface that carries a VIP has no carrier: this box cannot serve
    1 + n        carrier on every VIP interface, and n ping nodes reachable (a ``ping``
                 address, or a ``ping_group`` with at least one member answering),
                 n capped at ``MAX_HEALTH - 1``

(Heartbeat's ipfail compares the same thing: how many ping nodes each side
reaches.)  A raw value *counts* only once it has held for the settle time: a
loss (lower value) after ``loss_settle_ms(deadtime)``, a gain (higher value)
after ``gain_settle_ms(deadtime)``.  A value that returns to the counted one
before its time is a flap and changes nothing.  The counted value is what the
node sends the peer (status frames of version 2, docs/protocol.md) and what
the rule below compares, so both boxes judge with the same two numbers.

    state     event     next      output
    --------  --------  --------  ------
    unknown   report    steady    count     the first report counts at once (start of day)
    steady    same      steady    -
    steady    differs   settling  -         a new raw value: its settle time starts
    settling  differs   settling  -         another new value: the settle time starts again
    settling  same      steady    -         back to the counted value in time: a flap, ignored
    settling  settled   steady    count     held for its settle time: it counts

The rule (``wants.wanted``, after the operator's standby/takeover and the
stall rule, before auto_failback): with the peer alive and both healths known,
a box whose counted health is *lower* than the peer's does not want a group
the peer will run, and the box whose health is *higher* wants it - once the
two counted values have differed for ``verdict_delay_ms`` (``Comparison``): two
boxes losing the same LAN (a dead switch, a gateway both ping) count their
losses a little apart, and for that moment one of them looks better; the
delay lets the second loss arrive before anything moves - the loss settle
time when the worse box has no carrier (a dead switch drops both carriers
within milliseconds), and at least two keepalives (ping rounds) when it is a
ping node that differs.  While a verdict is pending each box keeps what it
holds and takes nothing (``PENDING``): the usual rules must not move a group
meanwhile either (a preferred box that starts with its cable out would
otherwise take its group back only to give it away again).  Equal
health (both LANs down, or both fine) leaves the usual rules in charge: nothing
moves for the LAN, and ``auto_failback on`` brings a group back to its
preferred box once that box's LAN counts as good as the peer's again.  A peer
dead or running the previous release (health unknown) leaves the LAN out of it.
"""

from hanode.core.compat import const

UNKNOWN = "unknown"
STEADY = "steady"
SETTLING = "settling"

REPORT = "report"
SAME = "same"
DIFFERS = "differs"
SETTLED = "settled"

DO_COUNT = "count"

PENDING = "pending"   # Comparison.rule: the healths differ, not yet for the verdict delay

TRANSITIONS = {
    (UNKNOWN, REPORT): (STEADY, DO_COUNT),
    (STEADY, SAME): (STEADY, None),
    (STEADY, DIFFERS): (SETTLING, None),
    (SETTLING, DIFFERS): (SETTLING, None),
    (SETTLING, SAME): (STEADY, None),
    (SETTLING, SETTLED): (STEADY, DO_COUNT),
}

# Health values 0..MAX_HEALTH; on the wire a status frame of version 2 carries health + 1 in 3
# bits (0: not known), so this is the most the frame can say.
MAX_HEALTH = const(6)
NO_CARRIER = const(0)


def loss_settle_ms(deadtime_ms):
    """A lower health counts after this long: a fifth of the dead time (100 ms at deadtime
    500 ms, 3 s at Heartbeat's classic 15 s), so a cable pulled moves the group well within a
    second at the tight timing, and a carrier blip shorter than that moves nothing."""
    return deadtime_ms // 5


def gain_settle_ms(deadtime_ms):
    """A higher health counts after this long: twice the dead time (1 s at 500 ms, 30 s at
    15 s).  A port that flaps faster than this never counts as back, so it moves a group at
    most once (away) until it holds still."""
    return 2 * deadtime_ms


def verdict_delay_ms(deadtime_ms, keepalive_ms, own=None, peer=None):
    """How long the two counted healths must differ before the better box takes a group: the
    loss settle time when the worse of ``own`` and ``peer`` is NO_CARRIER (carrier events reach
    both boxes within milliseconds of each other), else at least two keepalives (ping nodes
    are probed once per keepalive and a loss is noticed at a probe round, so two boxes losing
    the same one count it up to two keepalives apart)."""
    if own is not None and peer is not None and min(own, peer) == NO_CARRIER:
        return loss_settle_ms(deadtime_ms)
    return max(loss_settle_ms(deadtime_ms), 2 * keepalive_ms)


def health_of(carrier, reachable):
    """The raw health from the adapter's two observations: carrier on every VIP interface
    (bool), and how many ping nodes (addresses or groups) answer."""
    if not carrier:
        return NO_CARRIER
    return 1 + min(reachable, MAX_HEALTH - 1)


def describe(value):
    """A health value in words, for logs and status."""
    if value is None:
        return "unknown"
    if value == NO_CARRIER:
        return "%d (no carrier on a VIP interface)" % value
    return "%d (carrier up, %d ping node%s reachable)" % (value, value - 1, "" if value == 2 else "s")


class LanHealth:
    """One box's LAN health with its hysteresis (the table above)."""

    def __init__(self):
        self.state = UNKNOWN
        self.counted = None      # the value that counts (sent to the peer, compared); None: no report yet
        self.raw = None          # the adapter's latest report
        self.since = None        # when the raw value last changed
        self.detail = ""         # the adapter's words for the raw value (e.g. "eth0: no carrier")
        self.counted_detail = ""
        self.changes = 0         # counted changes (how often the LAN moved the decision)
        self.flaps = 0           # raw changes that went back before they counted
        self.unlisted = 0

    def fire(self, event):
        row = TRANSITIONS.get((self.state, event))
        if row is None:
            self.unlisted += 1
            return None
        self.state, action = row
        return action

    def report(self, value, now, detail=""):
        """The adapter's raw health; returns True when the counted value changed."""
        if self.state == UNKNOWN:
            self.raw, self.since, self.detail = value, now, detail
            return self._count(self.fire(REPORT))
        if value == self.raw:
            self.detail = detail
            return False
        self.raw, self.since, self.detail = value, now, detail
        if value == self.counted:
            if self.state == SETTLING:
                self.flaps += 1
            self.fire(SAME)
            return False
        self.fire(DIFFERS)
        return False

    def tick(self, now, deadtime_ms):
        """Count a raw value that has held for its settle time; True when the counted value changed."""
        due = self.due(deadtime_ms)
        if due is None or now < due:
            return False
        return self._count(self.fire(SETTLED))

    def due(self, deadtime_ms):
        """When the raw value being settled counts, or None."""
        if self.state != SETTLING:
            return None
        worse = self.raw < self.counted
        return self.since + (loss_settle_ms(deadtime_ms) if worse else gain_settle_ms(deadtime_ms))

    def _count(self, action):
        if action != DO_COUNT:
            return False
        changed = self.counted is not None and self.counted != self.raw
        if changed:
            self.changes += 1
        self.counted, self.counted_detail = self.raw, self.detail
        return True

    def status(self, now, deadtime_ms):
        due = self.due(deadtime_ms)
        return {"health": self.counted, "raw": self.raw, "state": self.state,
                "detail": self.counted_detail, "raw_detail": self.detail,
                "counts_in_ms": None if due is None or now is None else max(0, due - now),
                "changes": self.changes, "flaps": self.flaps}


class Comparison:
    """``lan_rule`` once the pair (own, peer) has held for the verdict delay; PENDING before
    (when they differ), None when the LAN has no say."""

    def __init__(self):
        self.pair = (None, None)
        self.since = None

    def rule(self, own, peer, now, delay_ms):
        if (own, peer) != self.pair:
            self.pair, self.since = (own, peer), now
        verdict = lan_rule(own, peer)
        if verdict is not None and now - self.since < delay_ms:
            return PENDING
        return verdict

    def pending(self):
        """A verdict is in force or on its way (the healths differ): due() has an answer."""
        return self.since is not None and lan_rule(self.pair[0], self.pair[1]) is not None

    def due(self, delay_ms):
        """When a pending verdict takes effect, or None."""
        return self.since + delay_ms if self.pending() else None


def lan_rule(own, peer):
    """The LAN's say on a group with the peer alive: True (we should hold it: our LAN is
    better), False (we should not: the peer's is better), or None (unknown or equal: the
    usual rules decide)."""
    if own is None or peer is None or own == peer:
        return None
    return own > peer


def why(own, peer, me, peer_name):
    """One sentence: what the LAN healths mean for the groups right now."""
    if own is None:
        return "own LAN health not observed (no LAN adapter): the LAN moves nothing"
    if peer is None:
        return "%s's LAN health unknown (dead, or a release without LAN health): the LAN moves nothing" % peer_name
    if own == peer:
        if own == NO_CARRIER:
            return "both LANs down (no carrier on either box): nothing moves for the LAN"
        return "LAN health equal (%d on both): the usual rules decide" % own
    better, worse = (me, peer_name) if own > peer else (peer_name, me)
    return "LAN of %s is worse (%d vs %d): groups go to %s" % (worse, min(own, peer), max(own, peer), better)
