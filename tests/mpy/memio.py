"""In-memory adapters for running two real agent loops in one process.

Theory of operation
-------------------
``hanode.agent.Agent`` talks to the world through three narrow surfaces: links
(``name``, ``async read()``, ``write(data)``), a runner (``acquire``,
``release``, ``probe``) and a log function.  On Linux those are the UART,
netlink/ARP and init scripts; here they are replaced by objects that keep the
same timing character in memory, so the pair test exercises the agent's real
scheduling on real asyncio time under CPython and MicroPython alike:

* ``Line``: a null-modem cable.  Each direction is paced at the configured baud
  rate, 8N1 (ten bit times a byte: 0.52 ms at 19200): ``write`` queues the bytes
  behind whatever that side is still sending, ``read`` returns the bytes whose
  last bit has arrived and otherwise waits for the next one.  The cable can be
  cut (bytes in flight and written meanwhile are lost) and reconnected; a side
  that is powered off neither sends nor receives, and loses what its UART held.
* ``Lan``: who has which address configured.  A probe answers "in use" when
  another box has the address and that box is powered - what an ARP probe sees.
* ``Box``: one appliance's resources.  ``acquire`` starts a group's resources
  left to right, ``release`` stops them right to left, each step taking a few
  ms of asyncio sleep; every start and stop goes into one shared event list so
  a test can check the order across boxes.  A box *holds* a group from the
  moment its acquire begins until its release has stopped the last resource
  (a half-started group counts: it may already answer on the LAN).

Nothing here reads the agent's clock: pacing uses a microsecond counter of its
own (``time.ticks_us`` on MicroPython, ``monotonic_ns`` on CPython).
"""

import time

from hanode import aio

if aio.MICROPYTHON:
    def _ticks_us():
        return time.ticks_us()

    def _diff_us(a, b):
        return time.ticks_diff(a, b)
else:
    def _ticks_us():
        return time.monotonic_ns() // 1000

    def _diff_us(a, b):
        return a - b


class Clock:
    """Microseconds since the clock was made (an int; wraps only after ~9 minutes on MicroPython)."""

    def __init__(self):
        self.t0 = _ticks_us()

    def us(self):
        return _diff_us(_ticks_us(), self.t0)

    def ms(self):
        return self.us() // 1000


# ----------------------------------------------------------------------- line

class LineEnd:
    """One side of the cable as the agent sees it: a link."""

    def __init__(self, line, name):
        self.line = line
        self.name = name
        self.peer = None
        self.powered = True
        self.free_at_us = 0     # when this side's transmitter has sent everything queued
        self.rx = []            # segments in flight towards us: [start_us, data, taken]
        self.waiter = aio.Event()
        self.sent = 0
        self.received = 0

    def write(self, data, keep=False, patience=0):
        line = self.line
        if not self.powered or line.cut:
            return              # the bytes go nowhere, as on a pulled cable
        now = line.clock.us()
        start = now if now > self.free_at_us else self.free_at_us
        self.free_at_us = start + len(data) * line.byte_us
        self.sent += len(data)
        peer = self.peer
        if peer.powered:
            peer.rx.append([start, bytes(data), 0])
            peer.waiter.set()

    def _arrived(self, now):
        """Take every byte whose stop bit is in; return (bytes, us until the next one or None)."""
        out = b""
        byte_us = self.line.byte_us
        while self.rx:
            seg = self.rx[0]
            start, data, taken = seg
            done = (now - start) // byte_us
            if done > len(data):
                done = len(data)
            if done > taken:
                out += data[taken:done]
                seg[2] = taken = done
            if taken < len(data):
                return out, start + (taken + 1) * byte_us - now
            self.rx.pop(0)
        return out, None

    async def read(self):
        while True:
            data, wait_us = self._arrived(self.line.clock.us())
            if data:
                self.received += len(data)
                return data
            if wait_us is None:
                self.waiter.clear()
                await self.waiter.wait()
            else:
                await aio.sleep_ms((wait_us + 999) // 1000)

    def power(self, on):
        self.powered = on
        self.rx = []            # a UART that lost power lost its FIFO too
        self.free_at_us = 0


class Line:
    """A cable between two named ends, paced at ``baud`` 8N1."""

    def __init__(self, a, b, baud=19200, clock=None):
        self.clock = clock or Clock()
        self.byte_us = 10 * 1000000 // baud     # start + 8 data + stop bits
        self.cut = False
        self.ends = {a: LineEnd(self, a), b: LineEnd(self, b)}
        self.ends[a].peer = self.ends[b]
        self.ends[b].peer = self.ends[a]

    def end(self, name):
        return self.ends[name]

    def set_cut(self, cut):
        self.cut = cut
        if cut:
            for end in self.ends.values():
                end.rx = []     # whatever was on the wire is lost


# ------------------------------------------------------------------ LAN, boxes

class Lan:
    """The VIP table: address -> name of the box that has it configured."""

    def __init__(self):
        self.vips = {}
        self.boxes = {}

    def holder(self, ip):
        return self.vips.get(ip)

    def answers(self, ip, asker):
        """Who answers an ARP probe for ip from asker: a powered other box that has it, or None."""
        who = self.vips.get(ip)
        if who is None or who == asker:
            return None
        box = self.boxes.get(who)
        if box is None or not box.powered:
            return None
        return who


class Box:
    """One appliance: its resources (the runner the agent drives) and its power."""

    def __init__(self, name, config, lan, events, clock, action_ms=3, probe_ms=5):
        self.name = name
        self.lan = lan
        self.events = events        # shared list of (t_ms, box, "start"/"stop", token)
        self.clock = clock
        self.action_ms = action_ms
        self.probe_ms = probe_ms
        self.powered = True
        self.groups = {}
        for g in config.groups:
            self.groups[g.key] = g.resources
        self.up = []                # tokens of running resources, in start order
        self.holding = []           # group keys held (from acquire start to release end)
        self.calls = []             # (kind, key) in call order
        lan.boxes[name] = self

    def holds(self, key):
        return self.powered and key in self.holding

    def _record(self, what, token):
        self.events.append((self.clock.ms(), self.name, what, token))

    async def acquire(self, key):
        self.calls.append(("acquire", key))
        if key not in self.holding:
            self.holding.append(key)
        for r in self.groups[key]:
            await aio.sleep_ms(self.action_ms)
            if r.token in self.up:
                continue
            if r.is_ip:
                who = self.lan.holder(r.ip)
                if who is not None and who != self.name:
                    # IPaddr would bring it up anyway; record it so the test sees the conflict
                    self._record("conflict", r.token)
                self.lan.vips[r.ip] = self.name
            self.up.append(r.token)
            self._record("start", r.token)
        return True, ""

    async def release(self, key):
        self.calls.append(("release", key))
        resources = self.groups[key]
        for i in range(len(resources) - 1, -1, -1):
            r = resources[i]
            await aio.sleep_ms(self.action_ms)
            if r.token not in self.up:
                continue
            if r.is_ip and self.lan.holder(r.ip) == self.name:
                del self.lan.vips[r.ip]
            self.up.remove(r.token)
            self._record("stop", r.token)
        if key in self.holding:
            self.holding.remove(key)
        return True, ""

    async def probe(self, key):
        self.calls.append(("probe", key))
        await aio.sleep_ms(self.probe_ms)
        for r in self.groups[key]:
            if r.is_ip:
                who = self.lan.answers(r.ip, self.name)
                if who is not None:
                    return True, "%s is at %s" % (r.ip, who)
        return False, ""

    def power_off(self):
        """Everything that ran on the box is gone at once, its addresses too."""
        self.powered = False
        for ip in list(self.lan.vips):
            if self.lan.vips[ip] == self.name:
                del self.lan.vips[ip]
        for token in self.up:
            self._record("lost", token)
        self.up = []
        self.holding = []

    def power_on(self):
        self.powered = True
