"""The agent loop: wires the sans-IO core to the links and the resource runner.

Theory of operation
-------------------
The agent owns the time.  Each link hands its bytes to ``Node.receive``: from
a callback of the event loop where the link can (``start_pushing``, CPython),
else from a task of its own that awaits ``link.read()``.  A ticker calls
``Node.tick`` at the core's next deadline
(``Node.next_deadline``: the next frame due, a silence limit, a retry), at
the latest ``max_sleep_ms`` (a keepalive) after the last tick, and sleeps in
between: an idle node wakes to send each frame and to read each one received
(the serial link: at its first byte and at its end), nothing else - and less
once the pair is in step: the node whose name sorts later sends its frame when
the peer's arrives (``FOLLOW_SLACK_MS``, hanode.core.node), one wake-up for
both, and the other reads that answer by a timer set at its own send
(``hanode.links``), one wake-up instead of two - or, when the core can wait for it
(``Node.read_patience``: the active node, settled), at the start of its next round, just
before the tick (``link.collect()``): then it wakes once a keepalive; the other, settled,
reads the peer's frames by a timer at their expected end, also once.
A call that brings the deadline forward (a frame that must be answered at
once, a finished action) wakes the ticker early; one that moves it later (a
frame that went out with the peer's) moves the ticker, and counts as its round.
Whatever the core returns is dispatched at once: frames are written to every
link, Acquire, Release and Probe become tasks that await the runner and report
back through ``Node.completed``/``Node.probed``, and log lines go to ``log``.
Nothing here blocks: a hung resource script delays only its own task (the
runner kills it at its timeout), never a heartbeat.

On CPython the daemon gives the heartbeat path a loop of its own (``pulse``: hanode.pulse, an
epoll loop in a thread, so that work on the asyncio loop cannot hold a heartbeat back; in a live
agent it also costs ~20 us a wake-up less, docs/performance.md): the ticker's
timer and the links' watches run there, and so do the core calls they make and the frames those
send.  Every other output of those calls (actions, log lines, hooks) is handed to the asyncio
loop in the order the core gave it, through one queue that the asyncio side also drains before
dispatching its own outputs: an Acquire and the Release after it are never swapped.  Every call
of the core from the asyncio side holds ``lock`` (the pulse loop's guard, under which its
callbacks run): one thread at a time in the node.  Without ``pulse`` (MicroPython, the tests'
agents) everything runs on the one loop and ``lock`` is a no-op.

The loop is written for the asyncio subset that CPython and MicroPython share
(``hanode.aio``), with its collaborators passed in:

- ``links``: objects of the link protocol (``hanode.links``): ``name``,
  ``async read() -> bytes`` and ``write(data)``; optionally
  ``start_pushing(deliver, failed[, loop])``, ``stop_pushing()`` and ``collect()``
- ``runner``: ``async acquire(key)``/``release(key)`` -> ``(ok, detail)``,
  ``async probe(key)`` -> ``(in_use, detail)`` and, optionally,
  ``async announce(key)`` (gratuitous ARP for a group we keep)
- optionally ``async check(key)`` -> ``[(result, detail), ...]`` (one per resource) and
  ``async restart(key, index)`` -> ``(ok, detail)`` for the core's Check and Restart
  outputs (monitor_interval), reported through ``Node.monitored``/``Node.restarted``; a
  runner without them answers every check "unknown" (the core says so once)
- optionally ``report_conflicts(sink)``: the runner calls ``sink(key, detail)``
  when another box claims one of a group's addresses (fed to
  ``Node.conflict``), ``defend(key)`` and ``drop_addresses(key)`` for the
  core's Defend and DropAddresses outputs
- ``log(level, text)``
- ``hooks`` (optional): ``on_tick(now_ms, lateness_ms)`` after every tick (the
  daemon tells the watchdog's health gate that the core ticked; ticks come at
  least every ``max_sleep_ms``),
  ``on_change(status)`` when the node's summary changes (systemd STATUS=; a change that
  comes with heartbeat frames alone within ``SUMMARY_REFRESH_MS``),
  ``on_escalate(group, reason) -> bool`` when a group's stop failed even after
  its retries (the daemon applies ha.cf's ``stop_failure``; True: the box now
  self-fences, so a shutdown must not say goodbye but wait for the reset),
  ``on_peer_generation(gen)`` and ``async save_generation(gen) -> (ok, detail)``
  (persist the peer's and our own generation; without the latter a rejoin's
  new generation is used unsaved: there is no state to keep it in)
- a LAN adapter, if any, calls ``lan_changed(health, detail)`` (``Node.lan``)
- ``entropy(n) -> bytes`` (optional, default ``os.urandom``): the nonce of a
  rejoin challenge; the core never makes randomness itself
- ``pulse`` (optional, CPython): the heartbeat's own loop (see above): ``call_later``,
  ``call_soon_threadsafe``, ``in_thread()``, ``guard``; the links are then watched on it

On Linux the daemon (``hanode.daemon``) supplies the links (``hanode.links``:
serial and UDP), netlink, ARP and init-script adapters; the MicroPython tests
supply in-memory ones, or the same serial link on MicroPython's UART shim.
"""

from hanode import aio
from hanode.core import status
from hanode.core.node import FOLLOW_SLACK_MS

# A dispatch of nothing but heartbeat frames (an idle node's every wake-up) recomputes the
# status summary only this long after the last time: it is a line of text over the whole node,
# the largest part of an idle wake-up after the frame itself.  Anything else the core says
# (a log line, an action, a probe) recomputes it at once; a change that comes with frames alone
# (the peer's view, the LAN's health settling) reaches systemd's STATUS= within this.
SUMMARY_REFRESH_MS = 1000


class _NoLock:
    """``Agent.lock`` with one loop: nothing to exclude."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Agent:
    @staticmethod
    def sleep_cap_ms(keepalive_ms):
        """The ticker's longest sleep at a keepalive: while the core sends, its deadline is never
        further away (a follower's comes FOLLOW_SLACK_MS after a keepalive, hanode.core.node)."""
        return keepalive_ms + FOLLOW_SLACK_MS

    def __init__(self, node, links, runner, log, max_sleep_ms=None, clock=None, hooks=None, entropy=None,
                 pulse=None):
        self.node = node
        self.links = links
        self.runner = runner
        self.log = log
        # a safety cap only: the core's deadlines come sooner (a frame is due every keepalive)
        self.max_sleep_ms = max_sleep_ms or self.sleep_cap_ms(node.config.keepalive_ms)
        self.clock = clock or aio.ticks_ms
        self.hooks = hooks
        self.entropy = entropy or _urandom
        self.alarm = aio.Alarm()  # rung when a call brings the core's deadline before wake_at
        self.wake_at = None       # when the sleeping ticker will wake; None while it runs
        self.timer = None         # CPython: the ticker's pending loop timer (aio.later_ms)
        self.expected = None      # CPython: when that timer is due (None: woken early, not late)
        self.stopped = aio.Event()
        self.is_stopped = False
        self.tasks = []
        self.write_errors = 0
        self.last_summary = None
        self.summary_at = None    # when last_summary was computed (see _notice_change)
        self.actions_running = 0
        self.pulse = pulse
        self.lock = _NoLock() if pulse is None else pulse.guard   # held for every call of the core
        self.home = None          # with pulse: the asyncio loop that runs every output but frames
        self.handover = []        # with pulse: outputs for the asyncio loop, in the core's order
        self.pushing = []         # the links that hand their bytes to loop callbacks (_start_pushing)
        watch = getattr(runner, "report_conflicts", None)
        if watch is not None:
            watch(self._on_conflict)
        self.expect_keepalive(node.config.keepalive_ms)

    def expect_keepalive(self, keepalive_ms):
        """The pair's keepalive, at start and after a reload: a serial link reads the peer's
        frames on that schedule (hanode.links._PeerBeat) where it can."""
        for link in self.links:
            expect = getattr(link, "expect_keepalive", None)
            if expect is not None:
                expect(keepalive_ms)

    # ---------------------------------------------------------------- dispatch
    def dispatch(self, outputs):
        """Act on the core's outputs (the caller holds ``lock``).  On the pulse loop's thread the
        frames go out at once and the rest is handed to the asyncio loop (see the module
        docstring); elsewhere whatever was handed over and not yet done comes first."""
        on_pulse = self.pulse is not None and self.pulse.in_thread()
        if self.handover and not on_pulse:
            self._act(self._take_handover())
        rest = []
        for o in outputs:
            if o.kind == "send":
                self._send(o)
            else:
                rest.append(o)
        if not rest:
            self._notice_change(only_frames=True)   # nothing but heartbeats (see SUMMARY_REFRESH_MS)
        elif on_pulse:
            if not self.handover:
                self.home.call_soon_threadsafe(self._drain)
            self.handover += rest   # (the drain says what changed)
        else:
            self._act(rest)
            self._notice_change()
        if self.wake_at is not None:
            deadline = self.node.next_deadline()
            if deadline is not None and deadline < self.wake_at:
                self._wake_early()
            elif deadline is not None and deadline > self.wake_at and self.timer is not None:
                self._postpone()

    def _send(self, o):
        patience = self.node.read_patience()
        for link in self.links:
            try:
                link.write(o.data, o.keep, patience)
            except OSError as e:
                self.write_errors += 1
                if self.write_errors == 1 or self.write_errors % 1000 == 0:
                    self.log("error", "TTY write failure on [%s]: %s (%d so far)"
                             % (link.name, e, self.write_errors))

    def _take_handover(self):
        taken, self.handover = self.handover, []
        return taken

    def _drain(self):
        """The asyncio loop's turn with what the pulse loop handed over."""
        with self.lock:
            if self.handover:
                self._act(self._take_handover())
                self._notice_change()

    def _act(self, outputs):
        """Every output but frames: on the asyncio loop, holding ``lock``."""
        for o in outputs:
            kind = o.kind
            if kind == "log":
                self.log(o.level, o.text)
            elif kind in ("acquire", "release", "probe"):
                self.tasks = [t for t in self.tasks if not t.done()]
                self.tasks.append(aio.create_task(self._perform(kind, o.group)))
            elif kind == "check":
                self._spawn(self._check(o.group))
            elif kind == "restart":
                self._spawn(self._restart(o.group, o.index))
            elif kind == "defend":
                self.runner.defend(o.group)
            elif kind == "drop_addresses":
                self.runner.drop_addresses(o.group)
            elif kind == "stopped":
                self.is_stopped = True
                self.stopped.set()
            elif kind == "escalate":
                hook = getattr(self.hooks, "on_escalate", None) if self.hooks is not None else None
                # the node logged the reason; the hook says whether this box now self-fences
                if not (hook and hook(o.group, o.reason)):
                    self.dispatch(self.node.not_fencing(self.clock()))
            elif kind == "announce" and hasattr(self.runner, "announce"):
                self.tasks = [t for t in self.tasks if not t.done()]
                self.tasks.append(aio.create_task(self._announce(o.group)))
            elif kind == "need_nonce":
                self.dispatch(self.node.nonce(self.entropy(4), self.clock()))
            elif kind == "new_generation":
                self.tasks = [t for t in self.tasks if not t.done()]
                self.tasks.append(aio.create_task(self._save_generation(o.generation)))
            elif kind == "peer_generation" and self.hooks is not None:
                hook = getattr(self.hooks, "on_peer_generation", None)
                if hook:
                    hook(o.generation)

    def _notice_change(self, only_frames=False):
        if self.hooks is None:
            return
        hook = getattr(self.hooks, "on_change", None)
        if hook is None:
            return
        now = self.clock()
        if only_frames and self.summary_at is not None and now - self.summary_at < SUMMARY_REFRESH_MS:
            return
        self.summary_at = now
        summary = self.summary()
        if summary != self.last_summary:
            self.last_summary = summary
            hook(summary)

    def summary(self):
        """One line for systemd's STATUS= and the logs: role and peer state."""
        with self.lock:
            return status.summary(self.node)

    def lan_changed(self, value, detail=""):
        """The LAN adapter's raw health of this box (hanode/lan.py on Linux)."""
        with self.lock:
            if not self.is_stopped:
                self.dispatch(self.node.lan(value, self.clock(), detail))

    def _on_conflict(self, key, detail):
        with self.lock:
            if not self.is_stopped:
                self.dispatch(self.node.conflict(key, self.clock(), detail))

    async def _perform(self, kind, key):
        self.actions_running += 1
        try:
            try:
                ok, detail = await getattr(self.runner, kind)(key)
            except aio.CancelledError:
                raise
            except Exception as e:   # a broken adapter must still be reported to the core
                ok, detail = (True if kind == "probe" else False), "%s failed: %r" % (kind, e)
                if kind == "probe":
                    detail += " (treated as in use: no address is taken blind)"
                self.log("error", "%s of %s: %s" % (kind, key, detail))
            if not ok and detail and kind != "probe":
                self.log("error", "%s %s: %s" % (kind, key, detail))
            with self.lock:
                now = self.clock()
                if kind == "probe":
                    self.dispatch(self.node.probed(key, ok, now, detail or ""))
                else:
                    self.dispatch(self.node.completed(key, ok, now))
        finally:
            self.actions_running -= 1

    def _spawn(self, coro):
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(aio.create_task(coro))

    async def _check(self, key):
        check = getattr(self.runner, "check", None)
        try:
            if check is None:
                raise NotImplementedError("this runner cannot check resources")
            results = await check(key)
        except aio.CancelledError:
            raise
        except Exception as e:   # the core must hear back: it checks again an interval later
            count = len(self.node.config.group(key).resources)
            results = [("unknown", "check failed: %r" % (e,))] * count
        with self.lock:
            self.dispatch(self.node.monitored(key, results, self.clock()))

    async def _restart(self, key, index):
        self.actions_running += 1
        try:
            try:
                ok, detail = await self.runner.restart(key, index)
            except aio.CancelledError:
                raise
            except Exception as e:   # a broken adapter must still be reported to the core
                ok, detail = False, "restart failed: %r" % (e,)
            with self.lock:
                self.dispatch(self.node.restarted(key, ok, self.clock(), detail or ""))
        finally:
            self.actions_running -= 1

    async def _announce(self, key):
        try:
            await self.runner.announce(key)
        except aio.CancelledError:
            raise
        except Exception as e:   # an announcement is a courtesy to the clients: say it, go on
            self.log("error", "announce of %s failed: %r" % (key, e))

    async def _save_generation(self, generation):
        hook = getattr(self.hooks, "save_generation", None) if self.hooks is not None else None
        ok, detail = True, ""
        if hook is not None:
            try:
                ok, detail = await hook(generation)
            except aio.CancelledError:
                raise
            except Exception as e:   # the node must hear back either way
                ok, detail = False, repr(e)
        with self.lock:
            self.dispatch(self.node.generation_saved(generation, ok, self.clock(), detail))

    # ------------------------------------------------------------------- tasks
    def _received(self, link_name, data):
        with self.lock:
            if not self.is_stopped:
                self.dispatch(self.node.receive(data, self.clock(), link_name))

    def _start_pushing(self, link):
        """A link that can hand its bytes to a loop callback (CPython's, see hanode.links) does;
        True if it took them over."""
        push = getattr(link, "start_pushing", None)
        if push is None or aio.MICROPYTHON:
            return False
        name = link.name

        from functools import partial   # (CPython: the push form is CPython's)

        def failed(e):
            self.log("error", "read from %s failed: %s" % (name, e))
        deliver = partial(self._received, name)   # (no Python frame of its own: one a frame fewer)
        if self.pulse is None:
            push(deliver, failed)
        else:
            push(deliver, failed, self.pulse)
        return True

    async def _reader(self, link):
        while not self.is_stopped:
            try:
                data = await link.read()
            except aio.CancelledError:
                raise
            except OSError as e:
                self.log("error", "read from %s failed: %s" % (link.name, e))
                await aio.sleep_ms(1000)
                continue
            if data:
                self._received(link.name, data)

    def _tick(self, expected):
        """One round of the ticker: the core's tick and the on_tick hook; returns (when the next
        round is due, ms until then).  ``expected``: when this round was due (None: woken early
        on purpose, so not late)."""
        now = self.clock()
        lateness = 0 if expected is None else aio.ticks_diff(now, expected)
        if lateness < 0:
            lateness = 0
        self.dispatch(self.node.tick(now))
        return self._round_done(now, lateness)

    def _round_done(self, now, lateness):
        if self.hooks is not None and hasattr(self.hooks, "on_tick"):
            self.hooks.on_tick(now, lateness)
        deadline = self.node.next_deadline()
        delay = self.max_sleep_ms if deadline is None else min(self.max_sleep_ms, max(1, deadline - now))
        return now + delay, delay

    # CPython: the ticker is a loop timer re-armed each round (aio.later_ms), one callback a
    # wake-up.  MicroPython: a task sleeping on an Alarm.  Either way dispatch() cuts the sleep
    # short through _wake_early when an input brings the core's deadline before wake_at.
    def _on_timer(self):
        with self.lock:
            self.timer = None
            self.wake_at = None
            if self.is_stopped:
                return
            for link in self.pushing:   # the answers a write left for this round (read_patience)
                link.collect()
            try:
                due, delay = self._tick(self.expected)
            except Exception as e:   # as a task would: this ticker ends (and the watchdog's gate sees it)
                self.log("error", "ticker ended with %r" % (e,))
                return
            self._arm(due, delay)

    def _arm(self, due, delay):
        """The ticker's next round at ``due``, ``delay`` ms from now."""
        self.expected = self.wake_at = due
        self.timer = self._later(delay, self._on_timer)

    def _later(self, ms, fn):
        """The ticker's timer: on the pulse loop if there is one, else on the running loop."""
        if self.pulse is None:
            return aio.later_ms(ms, fn)
        return self.pulse.call_later(ms / 1000, fn)

    def _postpone(self):
        """An input moved the core's deadline past the ticker's wake-up (a frame went with the
        peer's, or the peer's frame moved a silence limit): that wake-up would find nothing to
        do.  The ticker moves to the new deadline instead, and this call counts as its round
        (on_tick: the health gate, the warm-up before an acquire)."""
        self.timer.cancel()
        self._arm(*self._round_done(self.clock(), 0))

    def _wake_early(self):
        if self.timer is None:
            self.alarm.wake()
            return
        self.timer.cancel()
        self.wake_at = self.expected = None
        self.timer = self._later(0, self._on_timer)

    async def _ticker(self):
        expected = self.clock()
        while not self.is_stopped:
            with self.lock:
                expected, delay = self._tick(expected)
            if not await self._sleep_unless_woken(expected, delay):
                expected = None   # woken early on purpose: not late

    async def _sleep_unless_woken(self, wake_at, delay):
        """Sleep ``delay`` ms; return False at once if a call brings the deadline forward."""
        self.wake_at = wake_at
        try:
            return await self.alarm.sleep_ms(delay)
        finally:
            self.wake_at = None

    async def run(self, running=()):
        """Start the node and run until it has shut down (see shutdown())."""
        if self.pulse is not None:
            self.home = aio.running_loop()
        with self.lock:   # (also the links' watches: the pulse loop may call them at once)
            self.dispatch(self.node.start(self.clock(), running))
            self.pushing = [link for link in self.links if self._start_pushing(link)]
        readers = [aio.create_task(self._reader(link)) for link in self.links if link not in self.pushing]
        if aio.later_ms is None:
            tickers = [aio.create_task(self._ticker())]
        else:
            tickers = []
            with self.lock:
                self.expected = self.clock()
                self.timer = self._later(0, self._on_timer)
        try:
            await self.stopped.wait()
        finally:
            # also when run() itself is cancelled: a dead agent must not keep sending frames
            with self.lock:
                self.is_stopped = True
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None
                self.wake_at = None
                for link in self.pushing:
                    link.stop_pushing()
                self.pushing = []
            tasks = readers + tickers + [t for t in self.tasks if not t.done()]
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except aio.CancelledError:
                    pass
                except Exception as e:
                    self.log("error", "task ended with %r" % (e,))

    # --------------------------------------------------------------- commands
    def shutdown(self):
        with self.lock:
            self.dispatch(self.node.shutdown(self.clock()))

    def standby(self, which=None):
        """Give the groups ``which`` selects (all, local, foreign, a key; default all) to the peer:
        (accepted, why, the groups' keys)."""
        return self._move("standby", which)

    def takeover(self, which=None):
        """Take the groups ``which`` selects from the peer: (accepted, why, the groups' keys)."""
        return self._move("takeover", which)

    def _move(self, verb, which):
        with self.lock:
            return self._move_locked(verb, which)

    def _move_locked(self, verb, which):
        keys, why = self.node.select(which)
        if keys is None:
            return False, why, []
        ok, why = getattr(self.node, "can_" + verb)()
        if ok and len(keys) < len(self.node.groups):
            why = "%s %s %s %s" % ("giving" if verb == "standby" else "taking", " ".join(keys) or "no group",
                                   "to" if verb == "standby" else "from", self.node.peer)
        self.dispatch(getattr(self.node, verb)(self.clock(), which))
        return ok, why, keys


def _urandom(n):
    """n random bytes: os.urandom, or on a MicroPython port without it the random module
    (seeded from the hardware RNG where the port has one)."""
    import os
    if hasattr(os, "urandom"):
        return os.urandom(n)
    import random
    return bytes([random.getrandbits(8) for _ in range(n)])
