"""What the core asks the outside world to do.

Every call into ``Node`` returns a list of these.  They are plain objects with
a ``kind`` string so that the agent (and the tests) can dispatch on it without
isinstance chains, and so that they print readably in test failures.
"""


class Output:
    kind = "output"
    fields = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self.fields)

    def __repr__(self):
        return "%s(%s)" % (self.__class__.__name__,
                           ", ".join(repr(getattr(self, f)) for f in self.fields))


class Send(Output):
    """Write these bytes (one encoded frame) to every link.  ``keep``: a control frame, which a
    serial link must not replace with the next frame while it is still unsent."""
    kind = "send"
    fields = ("data", "keep")

    def __init__(self, data, keep=False):
        self.data = data
        self.keep = keep


class Acquire(Output):
    """Start the group's resources left to right; report with Node.completed()."""
    kind = "acquire"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Release(Output):
    """Stop the group's resources right to left; report with Node.completed()."""
    kind = "release"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Probe(Output):
    """ARP-probe the group's addresses on the LAN; report with Node.probed()."""
    kind = "probe"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Defend(Output):
    """Another box claims one of the group's addresses and we keep it: send one gratuitous
    ARP for each (RFC 5227 section 2.4 (c); the core sends at most one per DEFEND_INTERVAL_MS)."""
    kind = "defend"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class DropAddresses(Output):
    """Another box keeps one of the group's addresses: take the group's addresses down now,
    without waiting for a start in progress or for the scripts to stop (an acquire in progress
    gives up at its next step and reports a failure); the Release that follows stops the rest."""
    kind = "drop_addresses"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Log(Output):
    """A log line; level is debug, info, warning, error or critical."""
    kind = "log"
    fields = ("level", "text")

    def __init__(self, level, text):
        self.level = level
        self.text = text


class PeerGeneration(Output):
    """The peer's boot generation went up: persist it so that, after our own
    restart, frames of older generations are still refused as replays."""
    kind = "peer_generation"
    fields = ("generation",)

    def __init__(self, generation):
        self.generation = generation


class Stopped(Output):
    """Shutdown finished: every group is released and the peer has been told."""
    kind = "stopped"
    fields = ()


class Escalate(Output):
    """A group could not be stopped, STOP_RETRIES retries included: it may still run here, so the
    peer stays barred from it.  The agent applies ha.cf's ``stop_failure`` action (fence: stop
    petting the watchdog; reboot: run the reboot command; block: stay, alarmed); ``reason`` is
    the log line that says so."""
    kind = "escalate"
    fields = ("group", "reason")

    def __init__(self, group, reason):
        self.group = group
        self.reason = reason


class NeedNonce(Output):
    """Give the node a fresh random 32-bit nonce (``Node.nonce``): it is about to
    challenge a peer whose frames are below their generation floor.  The core never
    makes randomness itself."""
    kind = "need_nonce"
    fields = ()


class NewGeneration(Output):
    """The peer challenged our generation (we lost our state): persist this one as our
    boot generation, then report with ``Node.generation_saved`` - it is used only once saved."""
    kind = "new_generation"
    fields = ("generation",)

    def __init__(self, generation):
        self.generation = generation


class Announce(Output):
    """Announce the group's addresses again (gratuitous ARP, garp_count x garp_interval): we
    keep the group and the peer just released it (a healed split brain, a hand-over), so
    clients that learned the peer's MAC for them must hear ours.  Nothing to report back."""
    kind = "announce"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Check(Output):
    """Run each resource's status check of the group (monitor_interval; LSB status, an address:
    still configured) off the heartbeat loop; report with Node.monitored()."""
    kind = "check"
    fields = ("group",)

    def __init__(self, group):
        self.group = group


class Restart(Output):
    """Restart the group in place from resource ``index`` on: stop the resources from the last
    down to it (right to left), then start them left to right; report with Node.restarted()."""
    kind = "restart"
    fields = ("group", "index")

    def __init__(self, group, index):
        self.group = group
        self.index = index
