"""The agent's links - the serial heartbeat and the UDP path - as the loop sees them.

Theory of operation
-------------------
``hanode.agent.Agent`` knows a link by this protocol and nothing else:

- ``name``: the name the core's liveness tracks it under (the port, or the
  interface of a ``ucast`` line);
- ``async read() -> bytes``: the next bytes from the peer (``b""`` is allowed:
  nothing usable this time);
- ``write(data, keep=False, patience=READ_PROMPTLY)``: send one frame now, or drop
  it; an ``OSError`` is counted and logged by the agent, never fatal (``keep``: a
  control frame, never replaced while unsent; ``patience``: how late the core may read
  the peer's next frames, ``Node.read_patience``);
- ``close()``.

Both wait for input the same way: ``aio.readable(port.stream)`` (an fd on
CPython, a native stream on MicroPython), then a non-blocking read through
their own port object.  This module runs on MicroPython as well (the serial
link is the one a board uses; the UDP link needs ``SO_BINDTODEVICE``, Linux).

On CPython the agent uses a cheaper form of the same protocol:
``start_pushing(deliver, failed, loop=None)`` and ``stop_pushing()``.  The link watches
its fd with a callback of the event loop (``loop``: the agent's pulse loop,
hanode.pulse; default the running asyncio loop) (UDP: ``add_reader``; serial: a
one-shot watch re-armed each frame, ``_Pushing.watch_once``) and hands each
frame's bytes to ``deliver(data)``; a read error it cannot handle itself goes
to ``failed(error)`` and is tried again a second later, as the agent's reader
does.  A received frame then costs the loop one callback at each wake-up (the
serial link: its first byte and its end; UDP: each datagram) instead of a
future, a task step and a second loop pass for each, which is most of an idle
agent's CPU at short keepalives.  When the peer's frames come at a steady point
shortly after our own (the pair in step, see ``_PeerPhase``), the serial link
reads each by a timer set at our write instead: one wake-up a frame.  When the core
can wait for that answer until its next deadline (READ_AT_DEADLINE: an active node, settled),
the serial link sets no timer at all: the answer waits in the port's buffer until the agent
calls ``collect()`` at the start of its next round, just before the core's tick, and an idle
active node wakes once a keepalive (``collect()`` reads nothing otherwise).  The other node
of the pair, the one that answers, sees the peer's frames start a keepalive apart on the
peer's own schedule (``_PeerBeat``); while its core is settled (READ_ON_SCHEDULE) the link
reads each by a timer at its expected end and skips its first-byte wake-up too, and watches a
first byte again every BEAT_RELEARN_FRAMES frames to follow the peer's clock.  A UDP link
reads every datagram as it comes: each is one wake-up, there is nothing to save.  The same
reads, reopen and rebind rules apply in both forms.

The UDP path (ha.cf ``ucast <dev> <peer>``) carries exactly the frames the
serial port carries, one frame per datagram, to ``<peer>:udpport`` through
``<dev>`` (SO_BINDTODEVICE, so the path is the one the line names).  The core
treats it as one more link: the peer is alive while any link delivers, and
duplicates (the same frame over both paths) only refresh the link they came
in on.  Heartbeat lets both nodes share one ha.cf by ignoring a ucast to one
of the box's own addresses; so does hanode.  Datagrams from any address other
than the configured peer are ignored before they reach the decoder.
"""

from hanode import aio
from hanode.core.limits import DEFAULT_BAUD, FRAME_WIRE_BYTES as FRAME_BYTES  # the longest frame
from hanode.core.node import FOLLOW_SLACK_MS, READ_AT_DEADLINE, READ_ON_SCHEDULE, READ_PROMPTLY

try:
    from typing import List, Tuple
except ImportError:   # MicroPython: annotations only
    pass

DATAGRAM_MAX = 2048
# The peer's answer (see _PeerPhase): read by a timer once its first byte has come this many
# times in a row within PHASE_TOLERANCE_MS of the same point after our write, and no more than
# ANSWER_LEAD_FRAMES frame times after it; the timer allows ANSWER_MARGIN_MS more than the frame.
PHASE_SAMPLES = 3
PHASE_TOLERANCE_MS = 2
ANSWER_LEAD_FRAMES = 2
ANSWER_MARGIN_MS = 4
# The peer's own schedule (see _PeerBeat): its frames read by a timer once PHASE_SAMPLES first
# bytes in a row came a keepalive apart (within PHASE_TOLERANCE_MS), for keepalives up to
# BEAT_MAX_KEEPALIVE_MS (the longest a frame out of schedule may wait), and a first byte
# watched again after BEAT_RELEARN_FRAMES such reads: 10 keepalives of two crystals 100 ppm
# apart drift 0.2 ms at 100 ms, far inside the margin
BEAT_MAX_KEEPALIVE_MS = 250
BEAT_RELEARN_FRAMES = 10
# the timer allows BEAT_MARGIN_MS more than the frame time after the first byte: less than
# FOLLOW_SLACK_MS, the time after a keepalive that the answering node's own frame falls due
# (hanode.core.node), which the timer must come before, or that frame goes out on its own and
# the peer's is read after it
BEAT_MARGIN_MS = FOLLOW_SLACK_MS - 1
READ_RETRY_S = 1.0   # a read error the link cannot handle: tried again after this (the agent's reader waits as long)
_UDP_DEAD_PATH = (100, 101, 111, 113)   # ENETDOWN, ENETUNREACH, ECONNREFUSED, EHOSTUNREACH
_UDP_DEVICE_GONE = (19, 6)              # ENODEV, ENXIO: the bound interface was deleted
# a lost port or interface is tried again after 100 ms, 200, 400, 800, then every second:
# back within a second of its return, for one open() or socket() a second while it is away
REOPEN_FIRST_MS = 100
REOPEN_MAX_MS = 1000


class Backoff:
    """When to try a lost port again: REOPEN_FIRST_MS, doubling, at most REOPEN_MAX_MS apart."""

    def __init__(self):
        self.attempts = 0

    def next_ms(self):
        self.attempts += 1
        return min(REOPEN_MAX_MS, REOPEN_FIRST_MS << min(self.attempts - 1, 8))

    def reset(self):
        self.attempts = 0


def _quiet(log):
    return log if log is not None else (lambda level, text: None)


class _PeerPhase:
    """Where the peer's frames start, seen from our own writes (the serial link's push form).

    Two agents send on their own schedules, so a received frame costs a wake-up at its first
    byte and another at its end.  When the peer's frames come at a steady point shortly after
    ours - it sends when ours has reached it, or both send together - the link can instead read
    the peer's frame by a timer set when it writes its own, and skip the first-byte wake-up:
    ``read_after`` says how long after the write, or None (wake at first bytes, as before).
    It learns from the first-byte wake-ups (``first_byte``), and forgets when a timed read finds
    no whole frame (``missed``).  While the timer runs nothing else wakes the link: a frame in
    that window (at most ANSWER_LEAD_FRAMES + 1 frame times and ANSWER_MARGIN_MS, and never over
    half the time between our writes) waits for the timer.  Times are the loop's, in seconds.
    """

    def __init__(self, frame_ms):
        self.frame_s = frame_ms / 1000.0
        self.sent_at = None   # our last write
        self.gap = None       # between our last two writes
        self.leads = []       # the peer's first byte after our write, the last PHASE_SAMPLES

    def sent(self, now):
        if self.sent_at is not None:
            self.gap = now - self.sent_at
        self.sent_at = now

    def first_byte(self, now):
        lead = None if self.sent_at is None else now - self.sent_at
        if lead is None or not 0 <= lead <= ANSWER_LEAD_FRAMES * self.frame_s:
            self.leads = []
            return
        self.leads = (self.leads + [lead])[-PHASE_SAMPLES:]

    def missed(self):
        self.leads = []

    def read_after(self):
        if len(self.leads) < PHASE_SAMPLES or max(self.leads) - min(self.leads) > PHASE_TOLERANCE_MS / 1000.0:
            return None
        after = max(self.leads) + self.frame_s + ANSWER_MARGIN_MS / 1000.0
        if self.gap is None or after > self.gap / 2:
            return None
        return after


class _PeerBeat:
    """Where the peer's next frame starts when it sends on its own schedule, a keepalive apart
    (what the node that answers sees of the other, hanode.core.node's FOLLOW_SLACK_MS).

    ``read_at(now)`` says when to read that frame by a timer - its expected end and
    BEAT_MARGIN_MS - or None (wake at its first byte).  It learns from first-byte wake-ups
    (``first_byte``), counts the frames read by timer since (``on_time``), and forgets when a
    timed read finds no whole frame (``missed``).  The expected start is the last first byte
    seen plus a whole number of keepalives: anchored on the peer's frames, never on our own
    reads, so a timer that fires late does not move the next one.  While the timer runs a frame
    out of that schedule waits for it, at most a keepalive: only while the core says it may
    (READ_ON_SCHEDULE), and only for keepalives up to BEAT_MAX_KEEPALIVE_MS.  Times are the
    loop's, in seconds.
    """

    def __init__(self, frame_ms, keepalive_ms=None):
        self.frame_s = frame_ms / 1000.0
        self.keepalive_s = None
        self.anchor = None   # the first byte of the last frame seen at its first byte
        self.steady = 0      # first bytes in a row a whole number of keepalives after the last
        self.timed = 0       # frames read by timer since the anchor
        self.expect(keepalive_ms)

    def expect(self, keepalive_ms):
        """The peer's keepalive (ours: both read the same ha.cf; a reload changes it)."""
        self.keepalive_s = keepalive_ms / 1000.0 if keepalive_ms else None
        self.steady = 0

    def first_byte(self, now):
        keepalive = self.keepalive_s
        if (keepalive is not None and self.anchor is not None
                and abs(now - self.anchor - (self.timed + 1) * keepalive) <= PHASE_TOLERANCE_MS / 1000.0):
            self.steady += 1
        else:
            self.steady = 0
        self.anchor = now
        self.timed = 0

    def on_time(self):
        self.timed += 1

    def missed(self):
        self.steady = 0

    def read_at(self, now):
        keepalive = self.keepalive_s
        if (self.steady < PHASE_SAMPLES or self.timed >= BEAT_RELEARN_FRAMES or keepalive is None
                or keepalive > BEAT_MAX_KEEPALIVE_MS / 1000.0):
            return None
        return self.anchor + (self.timed + 1) * keepalive + self.frame_s + BEAT_MARGIN_MS / 1000.0


class _Pushing:
    """The CPython event-loop side of ``start_pushing`` (see the module docstring): one fd
    watched by a callback, one pending timer, both dropped by ``stop``.

    ``watch`` keeps calling back while the fd is readable (a datagram a call).  ``watch_once``
    calls back once, at the fd's next readable moment (the serial link: a frame's first byte),
    through a private epoll with EPOLLONESHOT that the loop watches for good: re-arming it is one
    epoll_ctl, where the loop's add_reader and remove_reader cost ~100 us of Python a frame in an
    idle agent, and while it is disarmed the bytes that follow wake nobody."""

    def __init__(self, deliver, failed, loop=None):
        if loop is None:
            import asyncio
            loop = asyncio.get_running_loop()
        self.loop = loop
        self.deliver = deliver
        self.failed = failed
        self.fd = None
        self.timer = None
        self.once = None       # the private epoll of watch_once, made at its first use
        self.once_fd = None    # the fd registered in it (armed or fired)
        self.once_callback = None
        self.armed = False     # that fd will call back: armed, and not fired or disarmed since

    def watch(self, fd, callback):
        self.fd = fd
        self.loop.add_reader(fd, callback)

    def watch_once(self, fd, callback):
        import select
        if self.once is None:
            self.once = select.epoll()
            self.loop.add_reader(self.once.fileno(), self._once_ready)
        events = select.EPOLLIN | select.EPOLLONESHOT
        if fd == self.once_fd:
            try:
                self.once.modify(fd, events)
            except FileNotFoundError:   # the fd was closed (a lost port) and its number reused
                self.once.register(fd, events)
        else:
            if self.once_fd is not None:
                self._forget_once()
            self.once.register(fd, events)
            self.once_fd = fd
        self.once_callback = callback
        self.armed = True

    def disarm_once(self):
        """watch_once's fd wakes nobody until it is armed again (a hang-up is then seen by the
        next read: the kernel reports one whatever the mask, so the callback is dropped too)."""
        import select
        if self.once_fd is not None and self.armed:   # (fired already: nothing to disarm)
            self.once.modify(self.once_fd, select.EPOLLONESHOT)
        self.armed = False
        self.once_callback = None

    def _once_ready(self):
        if not self.once.poll(0):   # (the event is consumed: the fd is disarmed until watch_once)
            return
        self.armed = False
        callback, self.once_callback = self.once_callback, None
        if callback is not None:
            callback()

    def _forget_once(self):
        try:
            self.once.unregister(self.once_fd)
        except (OSError, ValueError):
            pass   # closed already: the kernel dropped it with the file
        self.once_fd = self.once_callback = None
        self.armed = False

    def unwatch(self):
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            self.fd = None
        if self.once_fd is not None:
            self._forget_once()

    def later(self, seconds, callback, *args):
        self.timer = self.loop.call_later(seconds, callback, *args)

    def stop(self):
        self.unwatch()
        if self.once is not None:
            self.loop.remove_reader(self.once.fileno())
            self.once.close()
            self.once = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class SerialLink:
    """A serial port (``hanode.uart.Serial`` or anything with its surface) as a link.

    ``reopen``: a function that opens the port again.  When a read finds the
    device gone (hang-up: the USB adapter unplugged, the PTY's other side
    closed, the node removed), the link says so once, closes the port (and
    its lock), and tries ``reopen`` on the ``Backoff`` schedule until it
    works; meanwhile reads return nothing and frames are dropped, so the
    core marks the link dead after deadtime as for a pulled cable, and up
    again at the first frame once the port is back.  Without ``reopen`` a
    lost port raises, as before.
    """

    def __init__(self, serial, name=None, reopen=None, log=None):
        self.serial = serial
        self.name = name or serial.port
        self.reopen = reopen
        self.log = _quiet(log)
        self.backoff = Backoff()
        self.lost_at_ms = None
        self.reopened = 0
        self._replaced_before = 0
        self._closed = False
        self._pushing = None
        # a frame takes 12.5 ms at 19200 baud and arrives a few bytes at a time
        baud = getattr(serial, "baudrate", DEFAULT_BAUD) or DEFAULT_BAUD
        self.frame_ms = max(1, FRAME_BYTES * 10 * 1000 // baud + 1)
        self.phase = _PeerPhase(self.frame_ms)
        self.beat = _PeerBeat(self.frame_ms)   # (the keepalive comes from the agent: expect_keepalive)
        self.deferred = False   # the peer's answer is left for collect() (push form)

    def expect_keepalive(self, keepalive_ms):
        """The peer sends every ``keepalive_ms`` on its own schedule (_PeerBeat)."""
        self.beat.expect(keepalive_ms)

    @property
    def is_open(self):
        """In service: the port is open, or being reopened after a hang-up (False once closed)."""
        return not self._closed

    @property
    def replaced(self):
        return self._replaced_before + (self.serial.replaced if self.serial is not None else 0)

    async def read(self):
        if self.serial is None:
            await aio.sleep_ms(self.backoff.next_ms())
            self._try_reopen()
            return b""
        try:
            await aio.readable(self.serial.stream)
            data = self.serial.read(256)
            if data and not data.endswith(b"\x00"):
                # wait for the rest of the frame and read it at once: one wake-up a frame instead
                # of one every few bytes (idle CPU), at most one frame time of latency
                await aio.sleep_ms(self.frame_ms)
                data += self.serial.read(256) or b""
        except OSError as e:
            if self.reopen is None:
                raise
            self._lost(e)
            return b""
        return data

    # -- push form (CPython): the same reads as read(), from loop callbacks ----------------------
    def start_pushing(self, deliver, failed, loop=None):
        self._pushing = _Pushing(deliver, failed, loop)
        self._push_watch()

    def stop_pushing(self):
        self.deferred = False
        if self._pushing is not None:
            self._pushing.stop()
            self._pushing = None

    def _push_watch(self):
        p = self._pushing
        if p is None or self._closed:
            return
        p.timer = None
        if self.serial is None:
            p.later(self.backoff.next_ms() / 1000.0, self._push_reopen)
        else:
            p.watch_once(self.serial.stream, self._push_first_byte)

    def _push_reopen(self):
        self._try_reopen()
        self._push_watch()

    def _push_read(self):
        """The bytes there, or None after an error (the link is then reopening, or retries)."""
        try:
            return self.serial.read(256)
        except OSError as e:
            if self.reopen is None:
                self._pushing.failed(e)
                self._pushing.later(READ_RETRY_S, self._push_watch)
            else:
                self._lost(e)
                self._push_watch()
            return None

    def _push_first_byte(self):
        data = self._push_read()   # (watch_once has disarmed the fd: the next bytes wake nobody)
        if data is None:
            return
        now = self._pushing.loop.time()
        self.phase.first_byte(now)
        self.beat.first_byte(now)
        self._push_take(data)

    def _push_answer(self):
        """The timer set at our write: the peer's frame should be here whole (_PeerPhase)."""
        data = self._push_read()
        if data is None:
            return
        if not data.endswith(b"\x00"):   # none came, or it is still coming: the phase moved
            self.phase.missed()
        self._push_take(data)

    def _push_on_schedule(self):
        """The timer at the peer's frame's expected end (_PeerBeat)."""
        data = self._push_read()
        if data is None:
            return
        if data.endswith(b"\x00"):
            self.beat.on_time()
        else:   # none came, or it is still coming: learn the schedule again at first bytes
            self.beat.missed()
        self._push_take(data)

    def _push_take(self, data):
        if data and not data.endswith(b"\x00"):
            self._pushing.later(self.frame_ms / 1000.0, self._push_frame_end, data)   # as read() does
            return
        self._push_deliver(data)

    def _push_frame_end(self, data):
        more = self._push_read()
        if more is not None:
            self._push_deliver(data + more)

    def _push_deliver(self, data):
        p = self._pushing
        p.timer = None   # (the timer that brought us here, if one did, has fired)
        try:
            if data:
                p.deliver(data)
        finally:
            # watch the port again - unless the core's answer to these bytes has already set what
            # reads next (a timer, the agent's next round): arming first and disarming at that
            # write would cost two epoll_ctl a frame.  Bytes that came meanwhile fire at arming.
            if self._pushing is p and p.timer is None and not self.deferred:
                self._push_watch()

    def _lost(self, error):
        self.lost_at_ms = aio.ticks_ms()
        self.log("error", "serial link %s lost: %s; link down, reopening it (after %d ms, doubling to %d ms)"
                 % (self.name, error, REOPEN_FIRST_MS, REOPEN_MAX_MS))
        self._replaced_before += self.serial.replaced
        try:
            self.serial.close()
        except OSError:
            pass
        self.serial = None

    def _try_reopen(self):
        try:
            self.serial = self.reopen()
        except (OSError, ValueError):
            return   # still gone: said once already, tried again on the schedule
        self.reopened += 1
        self.phase.missed()
        self.log("info", "serial link %s reopened %d ms after it was lost (%d attempts)"
                 % (self.name, aio.ticks_diff(aio.ticks_ms(), self.lost_at_ms), self.backoff.attempts))
        self.backoff.reset()

    def write(self, data, keep=False, patience=READ_PROMPTLY):
        if self.serial is not None:   # while the port is gone the frame is lost, as on a pulled cable
            # a status frame still queued in the kernel is stale: replace it rather than queue
            # behind it; a control frame (keep) is not, and is never replaced; the first frame
            # after the port is opened starts with a delimiter (uart/base.py)
            self.serial.write_latest(data, keep=keep)
            p = self._pushing
            if p is not None:
                now = p.loop.time()
                self.phase.sent(now)
                if p.timer is not None:   # mid-frame, reopening, or a read already timed
                    return
                after = self.phase.read_after()
                if after is not None:   # the peer answers ours
                    p.disarm_once()
                    if patience >= READ_AT_DEADLINE:
                        self.deferred = True   # read by collect(), before the core's next tick
                    else:
                        p.later(after, self._push_answer)
                elif patience >= READ_ON_SCHEDULE:   # the peer sends on its own schedule
                    at = self.beat.read_at(now)
                    if at is not None:
                        p.disarm_once()
                        p.later(max(0.0, at - now), self._push_on_schedule)

    def collect(self):
        """The agent's round begins: read the answer a write left for now (READ_AT_DEADLINE),
        as the timer would have, and watch the port again."""
        if self.deferred:
            self.deferred = False
            if self._pushing is not None and self._pushing.timer is None:
                self._push_answer()

    def close(self):
        self.stop_pushing()
        self._closed = True
        if self.serial is not None:
            self.serial.close()


class UdpLink:
    """One ``ucast <dev> <peer>`` line: datagrams to and from the peer through ``dev``.

    A socket bound to an interface (SO_BINDTODEVICE) is bound to its index:
    when the interface is deleted, every send fails with ENODEV, and it stays
    so after an interface of the same name comes back.  The first such send
    says so once, wakes the reader, and the link binds a new socket on the
    ``Backoff`` schedule until the interface is there again.  An interface
    that only goes down and up needs nothing (sends fail with ENETDOWN
    meanwhile, which is a dead path for now, like a pulled cable).  CPython
    only (SO_BINDTODEVICE, the event loop's add_reader).
    """

    def __init__(self, dev: str, peer: str, port: int, log=None) -> None:
        self.dev = dev
        self.peer = peer
        self.port = port
        self.name = dev
        self.ignored = 0
        self.log = _quiet(log)
        self.backoff = Backoff()
        self.gone_at_ms = None
        self.rebound = 0
        self._wake = None
        self._pushing = None
        self.sock = self._bind()

    def _bind(self):
        import socket
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        dev, peer, port = self.dev, self.peer, self.port
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode() + b"\0")
        except OSError as e:
            sock.close()
            raise OSError(e.errno, "ucast %s %s: cannot bind to interface %s: %s" % (dev, peer, dev, e.strerror))
        sock.setblocking(False)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, "ucast %s %s: cannot bind UDP port %d: %s" % (dev, peer, port, e.strerror))
        return sock

    async def read(self) -> bytes:
        if self.gone_at_ms is not None:
            if self.sock is not None:   # closed here, not in write(): the loop may be watching it
                self.sock.close()
                self.sock = None
            await aio.sleep_ms(self.backoff.next_ms())
            self._try_rebind()
            return b""
        import asyncio
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self.sock.fileno()
        self._wake = lambda: ready.done() or ready.set_result(None)
        loop.add_reader(fd, self._wake)
        try:
            await ready
        finally:
            self._wake = None
            loop.remove_reader(fd)
        if self.gone_at_ms is not None:   # woken by write(): the interface went
            return b""
        return self.recv()

    # -- push form (CPython): one callback a datagram --------------------------------------------
    def start_pushing(self, deliver, failed, loop=None) -> None:
        self._pushing = _Pushing(deliver, failed, loop)
        self._push_watch()

    def stop_pushing(self) -> None:
        if self._pushing is not None:
            self._pushing.stop()
            self._pushing = None

    def _push_watch(self) -> None:
        p = self._pushing
        if p is None:
            return
        p.timer = None
        if self.gone_at_ms is None:
            p.watch(self.sock.fileno(), self._push_datagram)
            return
        p.unwatch()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        p.later(self.backoff.next_ms() / 1000.0, self._push_rebind)

    def _push_rebind(self) -> None:
        self._try_rebind()
        self._push_watch()

    def _push_datagram(self) -> None:
        try:
            data = self.recv()
        except OSError as e:
            self._pushing.unwatch()
            self._pushing.failed(e)
            self._pushing.later(READ_RETRY_S, self._push_watch)
            return
        if data:
            self._pushing.deliver(data)

    def recv(self) -> bytes:
        """One datagram from the peer (b"" for anything else or nothing)."""
        try:
            data, (addr, _) = self.sock.recvfrom(DATAGRAM_MAX)
        except (BlockingIOError, InterruptedError):
            return b""
        if addr != self.peer:
            self.ignored += 1
            return b""
        return data

    def collect(self) -> None:
        """Nothing to read late: every datagram is read when it comes."""

    def write(self, data: bytes, keep: bool = False, patience: int = READ_PROMPTLY) -> None:
        # (keep: a datagram is never replaced once sent; patience: datagrams are read as they
        # come, each its own wake-up, so there is nothing to save)
        if self.gone_at_ms is not None:
            return   # the interface is away: the frame is lost, as on a pulled cable
        try:
            self.sock.sendto(data, (self.peer, self.port))
        except (BlockingIOError, InterruptedError):
            pass   # a full socket buffer drops this beat; the next one is due in a keepalive
        except OSError as e:
            if e.errno in _UDP_DEVICE_GONE:
                self._gone(e)
            elif e.errno not in _UDP_DEAD_PATH:   # unreachable peer, link down: the path is dead for now
                raise

    def _gone(self, error: OSError) -> None:
        self.gone_at_ms = aio.ticks_ms()
        self.log("error", "ucast %s %s: interface %s gone (%s); link down, binding again (after %d ms,"
                 " doubling to %d ms)"
                 % (self.dev, self.peer, self.dev, error.strerror, REOPEN_FIRST_MS, REOPEN_MAX_MS))
        if self._wake is not None:
            self._wake()   # the reader closes the socket and binds again
        if self._pushing is not None:
            self._push_watch()   # the same, in the push form

    def _try_rebind(self) -> None:
        try:
            self.sock = self._bind()
        except OSError:
            return
        self.rebound += 1
        self.log("info", "ucast %s %s: interface %s back, link rebound %d ms after it went (%d attempts)"
                 % (self.dev, self.peer, self.dev, aio.ticks_diff(aio.ticks_ms(), self.gone_at_ms),
                    self.backoff.attempts))
        self.gone_at_ms = None
        self.backoff.reset()

    def close(self) -> None:
        self.stop_pushing()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def ucast_links(ucast: "List[Tuple[str, str]]", port: int, own_addresses: "List[str]",
                log=None) -> "Tuple[List[UdpLink], List[str]]":
    """The UDP links for the ucast lines, skipping those aimed at this box itself.
    Returns (links, notes) where notes say what was skipped."""
    links, notes = [], []
    for dev, peer in ucast:
        if peer in own_addresses:
            notes.append("ucast %s %s: that is this box's own address; ignored (the same ha.cf serves both nodes)"
                         % (dev, peer))
            continue
        links.append(UdpLink(dev, peer, port, log))
    return links, notes
