"""Ownership of one resource group on this node: an explicit transition table.

Everything that moves a group's state lives in the table below (h11's rule for
its state machines); the node's reasons for wanting a group live in
``wants.py``, and the node's bookkeeping about a group (a failed start, retry
times, probe counts) lives in the node, not here.

Theory of operation
-------------------
Each group on each node is in one of six states.  The node (``node.py``)
decides *what* it wants (from haresources, auto_failback, standby/takeover and
what the peer says) and turns that into events; this table alone decides what
happens next and which action the agent must perform.  The node fires only
pairs that are listed (``wants.py`` says which, e.g. a release waits for a
start in progress to finish, because killing a half-started group would leave
it in an unknown state).  A pair that is not listed keeps the state and is
counted (``unlisted``, in the node's status) and logged: it means an adapter
reported something twice or out of turn, and must not pass unnoticed.

    state        event         next         output
    -----------  ------------  -----------  -------
    stopped      acquire       starting     Acquire   peer agreed (acknowledged, not holding, not wanting)
    stopped      acquire_lone  probing      Probe     peer dead: first make sure nobody answers for the VIP
    stopped      acquire_free  starting     Acquire   peer dead and no probe needed (no VIP, probe off, clean goodbye)
    stopped      adopt         starting     Acquire   found active at our start (a restart after a crash): start it again
    probing      probe_free    starting     Acquire
    probing      probe_busy    stopped      -         someone else has the VIP: retry later
    probing      release       stopped      -         no longer wanted; the probe's answer will be ignored
    starting     done_ok       running      -
    starting     done_fail     stopping     Release   roll back what started, then offer the group to the peer
    running      release       stopping     Release
    running      conflict      stopping     Release   another box holds our address too and keeps it (node.conflict)
    stopping     done_ok       stopped      -
    stopping     done_fail     stop_failed  -         it may still be running: the peer must not take it
    stop_failed  retry         stopping     Release
    stop_failed  acquire       starting     Acquire   (start skips resources that are running)
    stop_failed  acquire_lone  starting     Acquire   it is ours already: no probe
    stop_failed  acquire_free  starting     Acquire

The state constants are public: adapters compare against them (e.g. the VIP
recheck looks only at groups in ``RUNNING``) instead of spelling the strings.

A group is *held* in every state but ``stopped``, and *claimed* (its held bit
set in our frames) in every state but ``stopped`` and ``probing``: while
starting, stopping or after a failed stop it may be active, so the peer must
keep its hands off.  A probe claims nothing yet; our want bit is what keeps
the peer from starting the group meanwhile.
"""

STOPPED = "stopped"
PROBING = "probing"
STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
STOP_FAILED = "stop_failed"

ACQUIRE = "acquire"
ACQUIRE_LONE = "acquire_lone"
ACQUIRE_FREE = "acquire_free"
ADOPT = "adopt"
PROBE_FREE = "probe_free"
PROBE_BUSY = "probe_busy"
RELEASE = "release"
DONE_OK = "done_ok"
DONE_FAIL = "done_fail"
RETRY = "retry"
CONFLICT = "conflict"

# output names; node.py turns them into Acquire/Release/Probe objects
DO_ACQUIRE = "acquire"
DO_RELEASE = "release"
DO_PROBE = "probe"

TRANSITIONS = {
    (STOPPED, ACQUIRE): (STARTING, DO_ACQUIRE),
    (STOPPED, ACQUIRE_LONE): (PROBING, DO_PROBE),
    (STOPPED, ACQUIRE_FREE): (STARTING, DO_ACQUIRE),
    (STOPPED, ADOPT): (STARTING, DO_ACQUIRE),
    (PROBING, PROBE_FREE): (STARTING, DO_ACQUIRE),
    (PROBING, PROBE_BUSY): (STOPPED, None),
    (PROBING, RELEASE): (STOPPED, None),
    (STARTING, DONE_OK): (RUNNING, None),
    (STARTING, DONE_FAIL): (STOPPING, DO_RELEASE),
    (RUNNING, RELEASE): (STOPPING, DO_RELEASE),
    (RUNNING, CONFLICT): (STOPPING, DO_RELEASE),
    (STOPPING, DONE_OK): (STOPPED, None),
    (STOPPING, DONE_FAIL): (STOP_FAILED, None),
    (STOP_FAILED, RETRY): (STOPPING, DO_RELEASE),
    (STOP_FAILED, ACQUIRE): (STARTING, DO_ACQUIRE),
    (STOP_FAILED, ACQUIRE_LONE): (STARTING, DO_ACQUIRE),
    (STOP_FAILED, ACQUIRE_FREE): (STARTING, DO_ACQUIRE),
}

BUSY_STATES = (PROBING, STARTING, STOPPING)


def fire(machine, transitions, event):
    """One step of a per-group table (this one, monitor.py's): ``machine`` has ``state``,
    ``transitions`` and ``unlisted``; return the output name (or None).  A pair not in the
    table keeps the state and is counted in ``unlisted``."""
    entry = transitions.get((machine.state, event))
    if entry is None:
        machine.unlisted += 1
        return None
    machine.state, output = entry
    machine.transitions += 1
    return output


class GroupOwnership:
    """One group's state on this node: the table's state and nothing else."""

    def __init__(self, group, index):
        self.group = group
        self.key = group.key
        self.index = index
        self.bit = 1 << index      # the group's bit in a frame's held/want bytes
        self.state = STOPPED
        self.transitions = 0
        self.unlisted = 0          # events that came in a state the table has no row for

    def fire(self, event):
        """Apply an event; return the output name (or None).  An unlisted pair keeps
        the state and is counted in ``unlisted``."""
        return fire(self, TRANSITIONS, event)

    def held(self):
        return self.state != STOPPED

    def claimed(self):
        """What our frames say: held, except while merely probing - a probe claims nothing
        (our want bit alone keeps the peer off), so a stale peer is not told to yield to it."""
        return self.state not in (STOPPED, PROBING)

    def busy(self):
        return self.state in BUSY_STATES
