"""The agent loop: wires the sans-IO core to the links and the resource runner.

Theory of operation
-------------------
The agent owns the time.  One task per link waits for bytes and feeds them to
``Node.receive``; a ticker calls ``Node.tick`` every ``tick_ms``; whatever the
core returns is dispatched at once: frames are written to every link, Acquire,
Release and Probe become tasks that await the runner and report back through
``Node.completed``/``Node.probed``, and log lines go to ``log``.  Nothing here
blocks: a hung resource script delays only its own task (the runner kills it
at its timeout), never a heartbeat.

The loop is written for the asyncio subset that CPython and MicroPython share
(``hanode.aio``), with its collaborators passed in:

- ``links``: objects of the link protocol (``hanode.links``): ``name``,
  ``async read() -> bytes`` and ``write(data)``
- ``runner``: ``async acquire(key)``/``release(key)`` -> ``(ok, detail)``,
  ``async probe(key)`` -> ``(in_use, detail)`` and, optionally,
  ``async announce(key)`` (gratuitous ARP for a group we keep)
- ``log(level, text)``
- ``hooks`` (optional): ``on_tick(now_ms, lateness_ms)`` after every tick (the
  daemon tells the watchdog's health gate that the core ticked),
  ``on_change(status)`` when the node's summary changes (systemd STATUS=),
  ``on_escalate(group, reason) -> bool`` when a group's stop failed even after
  its retries (the daemon applies ha.cf's ``stop_failure``; True: the box now
  self-fences, so a shutdown must not say goodbye but wait for the reset),
  ``on_peer_generation(gen)`` and ``async save_generation(gen) -> (ok, detail)``
  (persist the peer's and our own generation; without the latter a rejoin's
  new generation is used unsaved: there is no state to keep it in)
- ``entropy(n) -> bytes`` (optional, default ``os.urandom``): the nonce of a
  rejoin challenge; the core never makes randomness itself

On Linux the daemon (``hanode.daemon``) supplies the links (``hanode.links``:
serial and UDP), netlink, ARP and init-script adapters; the MicroPython tests
supply in-memory ones, or the same serial link on MicroPython's UART shim.
"""

from hanode import aio
from hanode.core import status


class Agent:
    def __init__(self, node, links, runner, log, tick_ms=None, clock=None, hooks=None, entropy=None):
        self.node = node
        self.links = links
        self.runner = runner
        self.log = log
        keepalive = node.config.keepalive_ms
        # detection granularity is one tick: a quarter keepalive, 5..50 ms
        self.tick_ms = tick_ms or max(5, min(50, keepalive // 4))
        self.clock = clock or aio.ticks_ms
        self.hooks = hooks
        self.entropy = entropy or _urandom
        self.stopped = aio.Event()
        self.is_stopped = False
        self.tasks = []
        self.write_errors = 0
        self.last_summary = None
        self.actions_running = 0

    # ---------------------------------------------------------------- dispatch
    def dispatch(self, outputs):
        for o in outputs:
            kind = o.kind
            if kind == "send":
                for link in self.links:
                    try:
                        link.write(o.data)
                    except OSError as e:
                        self.write_errors += 1
                        if self.write_errors == 1 or self.write_errors % 1000 == 0:
                            self.log("error", "TTY write failure on [%s]: %s (%d so far)"
                                     % (link.name, e, self.write_errors))
            elif kind == "log":
                self.log(o.level, o.text)
            elif kind in ("acquire", "release", "probe"):
                self.tasks = [t for t in self.tasks if not t.done()]
                self.tasks.append(aio.create_task(self._perform(kind, o.group)))
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
        self._notice_change()

    def _notice_change(self):
        if self.hooks is None:
            return
        hook = getattr(self.hooks, "on_change", None)
        if hook is None:
            return
        summary = self.summary()
        if summary != self.last_summary:
            self.last_summary = summary
            hook(summary)

    def summary(self):
        """One line for systemd's STATUS= and the logs: role and peer state."""
        return status.summary(self.node)

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
            now = self.clock()
            if kind == "probe":
                self.dispatch(self.node.probed(key, ok, now, detail or ""))
            else:
                if not ok and detail:
                    self.log("error", "%s %s: %s" % (kind, key, detail))
                self.dispatch(self.node.completed(key, ok, now))
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
        self.dispatch(self.node.generation_saved(generation, ok, self.clock(), detail))

    # ------------------------------------------------------------------- tasks
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
                self.dispatch(self.node.receive(data, self.clock(), link.name))

    async def _ticker(self):
        expected = self.clock()
        while not self.is_stopped:
            now = self.clock()
            lateness = aio.ticks_diff(now, expected)
            if lateness < 0:
                lateness = 0
            self.dispatch(self.node.tick(now))
            if self.hooks is not None and hasattr(self.hooks, "on_tick"):
                self.hooks.on_tick(now, lateness)
            expected = now + self.tick_ms
            await aio.sleep_ms(self.tick_ms)

    async def run(self, running=()):
        """Start the node and run until it has shut down (see shutdown())."""
        self.dispatch(self.node.start(self.clock(), running))
        readers = [aio.create_task(self._reader(link)) for link in self.links]
        ticker = aio.create_task(self._ticker())
        try:
            await self.stopped.wait()
        finally:
            # also when run() itself is cancelled: a dead agent must not keep sending frames
            self.is_stopped = True
            tasks = readers + [ticker] + [t for t in self.tasks if not t.done()]
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
        self.dispatch(self.node.shutdown(self.clock()))

    def standby(self):
        ok, why = self.node.can_standby()
        self.dispatch(self.node.standby(self.clock()))
        return ok, why

    def takeover(self):
        ok, why = self.node.can_takeover()
        self.dispatch(self.node.takeover(self.clock()))
        return ok, why


def _urandom(n):
    """n random bytes: os.urandom, or on a MicroPython port without it the random module
    (seeded from the hardware RNG where the port has one)."""
    import os
    if hasattr(os, "urandom"):
        return os.urandom(n)
    import random
    return bytes([random.getrandbits(8) for _ in range(n)])
