"""A null-modem cable between two serial endpoints, paced like a real 8N1 line.

Theory of operation
-------------------
Each direction of the cable is a simulated UART transmitter.  Bytes written at
one end go into that direction's transmit queue (``txq``, the kernel's output
buffer of a real port: at most ``fifo`` bytes); the transmitter takes them one
at a time and each takes ``10 / baud`` seconds on the wire (start bit, 8 data
bits, stop bit: 19200 baud is 1920 bytes/s, 0.52 ms a byte).  A byte is
delivered to the other end when its stop bit has gone out, plus ``latency_ms``.
Times come from ``time.monotonic`` and are computed, not accumulated from
wake-ups, so a late wake-up delivers the few bytes that are due together (a
small burst) without changing the average rate or the later bytes' times.

Impairments are applied as a byte leaves the transmitter: ``cut()`` (the cable
is pulled: the sender's UART keeps sending into nothing, so bytes are lost and a
frame on the wire at that moment is truncated), ``drop`` (probability a byte is
lost), ``ber`` (probability each data bit is flipped; the distance to the next
error is drawn from a geometric distribution so a low BER costs nothing per
byte), and random ``garbage`` bursts (line noise appearing as bytes).

Endpoints
    ``PtyEndpoint`` creates a pseudo-terminal pair; agents open the slave
    (``path``, e.g. /dev/pts/7, or a stable ``link`` symlink to it) as their
    serial device.  The master runs in packet mode (TIOCPKT) so that a
    ``tcflush(TCOFLUSH)`` on the slave reaches us: like a real UART's output
    flush, it discards what has not yet been transmitted.  We hold our own slave
    fd open so the pair survives the agent closing and reopening the port, and
    set it raw so nothing is echoed back onto the line before an agent opens it.
    ``UnixSocketEndpoint`` connects as a client to a QEMU
    ``-chardev socket,path=...,server=on`` and reconnects when it goes away.
    ``FdEndpoint`` wraps any existing file descriptor.

Threading: ``start()`` runs the loop in a daemon thread (``select`` with
microsecond timeouts, woken through a pipe when a setting changes); every
public method is thread-safe.  ``realtime=True`` makes that thread SCHED_FIFO
(root only): on a loaded machine a normal thread now and then wakes 5-10 ms
late.  The counters ``late_us_max``/``late_us_total``/``late_samples`` say how
late the loop actually woke for due bytes.  ``with NullModem(...) as nm:`` starts and
closes it.  The optional control socket takes one command a line (``cut``,
``reconnect``, ``status``, ``ber 1e-4``, ``drop 0.01``, ``latency 5``,
``garbage 8 a>b``) and answers one line (``ok``, JSON, or ``error: ...``).

Byte log: one JSON object a line, ``{"t": epoch, "dir": "a>b", "data": hex}``
per delivered burst and ``{"t": epoch, "event": "cut"}`` etc. for events
(also "start" with the baud rate and paths, "flush", "connect", "disconnect",
"close").  Readers must ignore events they do not know.

Counters per direction: carried, dropped, corrupted (bytes), bits_flipped,
lost_cut, flushed (discarded by the writer's TCOFLUSH), overrun (the reader
did not read and its input buffer was full), lost_down (a socket end was
disconnected), garbage (noise bytes put on the line).
"""

import collections
import errno
import fcntl
import json
import math
import os
import random
import select
import socket
import stat
import struct
import termios
import threading
import time
import tty
from typing import Any, Deque, Dict, Optional, Tuple

DEFAULT_BAUD = 19200
BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop
KERNEL_FIFO = 4096  # Linux serial core's transmit buffer (UART_XMIT_SIZE)
UART_FIFO = 16      # a 16550's transmit FIFO

COUNTER_NAMES = ("carried", "dropped", "corrupted", "bits_flipped", "lost_cut", "flushed",
                 "overrun", "lost_down", "garbage", "late_us_max", "late_us_total", "late_samples")

_TIOCPKT = getattr(termios, "TIOCPKT", 0x5420)
_TIOCPKT_FLUSHWRITE = getattr(termios, "TIOCPKT_FLUSHWRITE", 2)
DIRECTIONS = ("a>b", "b>a")


class NullModemError(Exception):
    """A setting or an endpoint the null-modem cannot use (message says which)."""


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _check_probability(name: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise NullModemError("%s must be a number between 0 and 1, not %r" % (name, value))
    if not 0.0 <= p < 1.0:
        raise NullModemError("%s must be in [0, 1), not %r" % (name, value))
    return p


class Endpoint:
    """One end of the cable.  Subclasses set ``kind``, ``path`` and ``fifo``."""

    kind = "fd"
    fifo = KERNEL_FIFO  # the most bytes we take in before the writer feels back-pressure
    retry_s = 0.0

    def __init__(self) -> None:
        self.name = "?"
        self.path = ""

    def open(self, now: float) -> None:
        """Called once when the cable starts."""

    def fileno(self) -> Optional[int]:
        """The fd to poll for reading, or None while disconnected."""
        raise NotImplementedError

    def read(self, n: int) -> Tuple[bytes, bool]:
        """Up to ``n`` bytes the peer wrote, and whether it flushed its output."""
        raise NotImplementedError

    def write(self, data: bytes) -> int:
        """Deliver ``data``; returns how many bytes were taken (the rest overran)."""
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        return self.fileno() is not None

    def next_retry(self) -> Optional[float]:
        """Monotonic time of the next reconnect attempt, or None."""
        return None

    def retry(self, now: float) -> Optional[str]:
        """Try to reconnect; returns an event name if the state changed."""
        return None

    def close(self) -> None:
        pass

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "connected": self.connected}


class PtyEndpoint(Endpoint):
    """A pseudo-terminal pair created by us; agents open ``path`` (or ``link``)."""

    kind = "pty"
    fifo = KERNEL_FIFO

    def __init__(self, link: Optional[str] = None) -> None:
        super().__init__()
        self.link = link
        self.master = -1
        self.slave = -1

    def open(self, now: float) -> None:
        if self.master >= 0:
            return
        self.master, self.slave = os.openpty()
        # Raw on both sides: the slave's default ECHO would loop every delivered
        # byte back onto the line, and ICRNL/ONLCR would rewrite 0x0d/0x0a.
        tty.setraw(self.master)
        tty.setraw(self.slave)
        _set_nonblocking(self.master)
        fcntl.ioctl(self.master, _TIOCPKT, (1).to_bytes(4, "little"))
        self.path = os.ttyname(self.slave)
        if self.link:
            parent = os.path.dirname(os.path.abspath(self.link))
            os.makedirs(parent, exist_ok=True)
            tmp = "%s.tmp%d" % (self.link, os.getpid())
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)  # atomic: an agent never sees the link missing

    def fileno(self) -> Optional[int]:
        return self.master if self.master >= 0 else None

    def read(self, n: int) -> Tuple[bytes, bool]:
        try:
            data = os.read(self.master, n + 1)  # packet mode: one status byte first
        except BlockingIOError:
            return b"", False
        except OSError as e:
            if e.errno == errno.EIO:  # cannot happen while we hold the slave open
                return b"", False
            raise
        if not data:
            return b"", False
        if data[0] == 0:
            return data[1:], False
        return b"", bool(data[0] & _TIOCPKT_FLUSHWRITE)

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0  # the agent is not reading and its input buffer is full

    def close(self) -> None:
        if self.link:
            try:
                if os.readlink(self.link) == self.path:
                    os.unlink(self.link)
            except OSError:
                pass
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1

    def describe(self) -> Dict[str, Any]:
        d = super().describe()
        d["link"] = self.link
        return d


class UnixSocketEndpoint(Endpoint):
    """Client of a unix stream socket (QEMU ``-chardev socket,server=on``); reconnects."""

    kind = "unix"
    # QEMU's UART holds the real output queue inside the guest; taking no more
    # than a 16550 FIFO's worth lets back-pressure reach the guest's TIOCOUTQ.
    fifo = UART_FIFO

    def __init__(self, path: str, retry_s: float = 0.25) -> None:
        super().__init__()
        self.path = path
        self.retry_s = retry_s
        self.sock: Optional[socket.socket] = None
        self._next_retry = 0.0
        self.connects = 0

    def open(self, now: float) -> None:
        self.retry(now)

    def fileno(self) -> Optional[int]:
        return self.sock.fileno() if self.sock is not None else None

    def next_retry(self) -> Optional[float]:
        return None if self.sock is not None else self._next_retry

    def retry(self, now: float) -> Optional[str]:
        if self.sock is not None or now < self._next_retry:
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            self._next_retry = now + self.retry_s
            return None
        s.setblocking(False)
        self.sock = s
        self.connects += 1
        return "connect"

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._next_retry = time.monotonic() + self.retry_s

    def read(self, n: int) -> Tuple[bytes, bool]:
        assert self.sock is not None
        try:
            data = self.sock.recv(n)
        except BlockingIOError:
            return b"", False
        except OSError:
            data = b""
        if not data:
            self._drop()
        return data, False

    def write(self, data: bytes) -> int:
        if self.sock is None:
            return 0
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self._drop()
            return 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class FdEndpoint(Endpoint):
    """An existing file descriptor (a socketpair end, a pty master, a tty...)."""

    kind = "fd"

    def __init__(self, fd: int, path: str = "", own: bool = False, fifo: int = KERNEL_FIFO) -> None:
        super().__init__()
        self.fd = fd
        self.path = path or "fd:%d" % fd
        self.own = own
        self.fifo = fifo
        self.eof = False
        _set_nonblocking(fd)

    def fileno(self) -> Optional[int]:
        return None if self.eof or self.fd < 0 else self.fd

    def read(self, n: int) -> Tuple[bytes, bool]:
        try:
            data = os.read(self.fd, n)
        except BlockingIOError:
            return b"", False
        except OSError:
            data = b""
        if not data:
            self.eof = True
        return data, False

    def write(self, data: bytes) -> int:
        if self.fd < 0:
            return 0
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self.eof = True
            return 0

    def close(self) -> None:
        if self.own and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class _Direction:
    """One way of the cable: its transmit queue, in-flight bytes and counters."""

    def __init__(self, name: str, src: Endpoint, dst: Endpoint) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.txq = bytearray()
        self.head_end = 0.0   # when txq[0]'s stop bit is out (valid while txq is not empty)
        self.line_free = 0.0  # when the last transmitted byte's stop bit went out
        self.inflight: Deque[Tuple[float, bytes]] = collections.deque()
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.good_bits = 0    # error-free data bits before the next flipped one
        self.next_garbage = math.inf
        self.starved = False  # stopped reading: txq full, the writer now feels back-pressure


class NullModem:
    """The cable.  ``NullModem(a, b, baud=19200, ...)``; see the module docstring."""

    def __init__(self, a: Optional[Endpoint] = None, b: Optional[Endpoint] = None,
                 baud: int = DEFAULT_BAUD, latency_ms: float = 0.0, drop: float = 0.0,
                 ber: float = 0.0, garbage_per_s: float = 0.0, garbage_max: int = 8,
                 log: Optional[str] = None, control: Optional[str] = None,
                 seed: Optional[int] = None, realtime: bool = False) -> None:
        if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
            raise NullModemError("baud must be a positive integer, not %r" % (baud,))
        self.a = a if a is not None else PtyEndpoint()
        self.b = b if b is not None else PtyEndpoint()
        self.a.name, self.b.name = "a", "b"
        self.baud = baud
        self.byte_time = BITS_PER_BYTE / float(baud)
        self.latency = 0.0
        self.drop = 0.0
        self.ber = 0.0
        self.garbage_per_s = 0.0
        self.garbage_max = max(1, int(garbage_max))
        self.is_cut = False
        self.realtime = realtime
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._dirs = (_Direction("a>b", self.a, self.b), _Direction("b>a", self.b, self.a))
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        _set_nonblocking(self._wake_r)
        _set_nonblocking(self._wake_w)
        self._log_path = log
        self._log = None
        self._log_flushed = 0.0
        self._control_path = control
        self._control: Optional[socket.socket] = None
        self._clients: Dict[int, Tuple[socket.socket, bytearray]] = {}
        try:
            if log:
                self._log = open(log, "a", encoding="ascii")
            now = time.monotonic()
            self.a.open(now)
            self.b.open(now)
            if control:
                self._open_control(control)
            self.set_latency_ms(latency_ms)
            self.set_drop(drop)
            self.set_ber(ber)
            self.set_garbage(garbage_per_s)
        except BaseException:
            self.close()
            raise
        self._event("start", baud=baud, a=self.a.path, b=self.b.path)

    # -- public surface -------------------------------------------------------

    @property
    def paths(self) -> Tuple[str, str]:
        """The device paths agents open (PTY slaves) or the socket paths."""
        return self.a.path, self.b.path

    def start(self) -> "NullModem":
        """Run the cable in a daemon thread (idempotent)."""
        with self._lock:
            if self._closed:
                raise NullModemError("the null-modem is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nullmodem", daemon=True)
                self._thread.start()
        return self

    def __enter__(self) -> "NullModem":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def cut(self) -> None:
        """Pull the cable: from now on every byte leaving a transmitter is lost."""
        with self._lock:
            if not self.is_cut:
                self.is_cut = True
                for d in self._dirs:  # bits already on the wire are lost too
                    for _, data in d.inflight:
                        d.counters["lost_cut"] += len(data)
                    d.inflight.clear()
                self._event("cut")
        self._wake()

    def reconnect(self) -> None:
        """Plug the cable back in: bytes leaving a transmitter from now on arrive."""
        with self._lock:
            if self.is_cut:
                self.is_cut = False
                self._event("reconnect")
        self._wake()

    def set_drop(self, p: float) -> None:
        with self._lock:
            self.drop = _check_probability("drop", p)

    def set_ber(self, p: float) -> None:
        with self._lock:
            self.ber = _check_probability("ber", p)
            for d in self._dirs:
                d.good_bits = self._good_bits()

    def set_latency_ms(self, ms: float) -> None:
        try:
            ms = float(ms)
        except (TypeError, ValueError):
            raise NullModemError("latency_ms must be a number, not %r" % (ms,))
        if not 0.0 <= ms <= 60000.0:
            raise NullModemError("latency_ms must be in 0..60000, not %r" % (ms,))
        with self._lock:
            self.latency = ms / 1000.0
        self._wake()

    def set_garbage(self, per_s: float, max_len: Optional[int] = None) -> None:
        """Random bursts of ``1..max_len`` noise bytes, ``per_s`` bursts a second each way."""
        try:
            per_s = float(per_s)
        except (TypeError, ValueError):
            raise NullModemError("garbage rate must be a number, not %r" % (per_s,))
        if per_s < 0:
            raise NullModemError("garbage rate must be >= 0, not %r" % (per_s,))
        with self._lock:
            self.garbage_per_s = per_s
            if max_len is not None:
                self.garbage_max = max(1, int(max_len))
            now = time.monotonic()
            for d in self._dirs:
                d.next_garbage = now + self._rng.expovariate(per_s) if per_s > 0 else math.inf
        self._wake()

    def inject(self, direction: str, data: bytes) -> None:
        """Put noise bytes on the line next, ahead of whatever is queued."""
        d = self._direction(direction)
        with self._lock:
            self._inject(d, bytes(data), time.monotonic())
        self._wake()

    def counters(self) -> Dict[str, Dict[str, int]]:
        """Per direction: bytes carried, dropped, corrupted, lost while cut, ..."""
        with self._lock:
            out = {}
            for d in self._dirs:
                c = dict(d.counters)
                c["queued"] = len(d.txq)
                c["inflight"] = sum(len(x) for _, x in d.inflight)
                out[d.name] = c
            return out

    def status(self) -> Dict[str, Any]:
        with self._lock:
            st: Dict[str, Any] = {
                "baud": self.baud, "latency_ms": self.latency * 1000.0, "drop": self.drop,
                "ber": self.ber, "garbage_per_s": self.garbage_per_s, "cut": self.is_cut,
                "realtime": self.realtime,
                "a": self.a.describe(), "b": self.b.describe(),
            }
            st.update(self.counters())
            return st

    def wait_idle(self, timeout: float = 5.0, settle: float = 0.02) -> bool:
        """Wait until nothing is queued, in flight, or unread at either end for
        ``settle`` seconds (a pty hands written bytes over asynchronously, so a
        moment of "nothing there" right after a write is not yet idle).
        False on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            with self._lock:
                idle = all(not d.txq and not d.inflight and not self._unread(d.src) for d in self._dirs)
            now = time.monotonic()
            if not idle:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                return True
            time.sleep(0.002)
        return False

    @staticmethod
    def _unread(ep: Endpoint) -> int:
        fd = ep.fileno()
        if fd is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def command(self, line: str) -> str:
        """Run one control command; returns the one-line answer."""
        words = line.strip().split()
        if not words:
            return "error: empty command"
        cmd, args = words[0].lower(), words[1:]
        try:
            if cmd == "cut" and not args:
                self.cut()
            elif cmd == "reconnect" and not args:
                self.reconnect()
            elif cmd == "status" and not args:
                return json.dumps(self.status(), sort_keys=True)
            elif cmd == "ber" and len(args) == 1:
                self.set_ber(float(args[0]))
            elif cmd == "drop" and len(args) == 1:
                self.set_drop(float(args[0]))
            elif cmd == "latency" and len(args) == 1:
                self.set_latency_ms(float(args[0]))
            elif cmd == "garbage" and 1 <= len(args) <= 2:
                n = int(args[0])
                if not 0 < n <= 4096:
                    return "error: garbage takes a byte count 1..4096"
                for name in (args[1:] or list(DIRECTIONS)):
                    self.inject(name, bytes(self._rng.getrandbits(8) for _ in range(n)))
            elif cmd == "help":
                return ("commands: cut | reconnect | status | ber P | drop P | latency MS"
                        " | garbage N [a>b|b>a]")
            else:
                return "error: unknown command %r (try: help)" % line.strip()
        except (NullModemError, ValueError) as e:
            return "error: %s" % e
        return "ok"

    def close(self) -> None:
        """Stop the thread, close the endpoints, remove links and sockets, flush the log."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        with self._lock:
            self._closed = True
            for ep in (self.a, self.b):
                ep.close()
            for s, _ in self._clients.values():
                s.close()
            self._clients.clear()
            if self._control is not None:
                self._control.close()
                self._control = None
                try:
                    os.unlink(self._control_path)  # type: ignore[arg-type]
                except OSError:
                    pass
            if self._log is not None:
                self._event("close")
                self._log.close()
                self._log = None
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    # -- internals --------------------------------------------------------------

    def _direction(self, name: str) -> _Direction:
        for d in self._dirs:
            if d.name == name:
                return d
        raise NullModemError("direction must be 'a>b' or 'b>a', not %r" % (name,))

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full (already woken) or closed

    def _event(self, name: str, **extra: Any) -> None:
        if self._log is None:
            return
        rec: Dict[str, Any] = {"t": time.time(), "event": name}
        rec.update(extra)
        self._log.write(json.dumps(rec) + "\n")
        self._log.flush()  # events are rare and tests read the log while we run

    def _good_bits(self) -> int:
        if self.ber <= 0.0:
            return 1 << 62
        u = self._rng.random()
        return int(math.log(1.0 - u) / math.log(1.0 - self.ber))

    def _open_control(self, path: str) -> None:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left over from a previous run
            else:
                raise NullModemError("control socket %s: a file that is not a socket is in the way" % path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
        except OSError as e:
            s.close()
            raise NullModemError("cannot create control socket %s: %s" % (path, e.strerror))
        s.listen(4)
        s.setblocking(False)
        self._control = s

    def _inject(self, d: _Direction, data: bytes, now: float) -> None:
        if data:
            self._advance(d, now)
            self._put_front(d, data, now)

    def _put_front(self, d: _Direction, data: bytes, now: float) -> None:
        if not d.txq:
            d.head_end = max(d.line_free, now) + self.byte_time
        d.txq[0:0] = data
        d.counters["garbage"] += len(data)

    def _impair(self, d: _Direction, chunk: bytes) -> bytes:
        c = d.counters
        if self.is_cut:
            c["lost_cut"] += len(chunk)
            return b""
        if self.drop > 0.0:
            rnd = self._rng.random
            kept = bytes(x for x in chunk if rnd() >= self.drop)
            c["dropped"] += len(chunk) - len(kept)
            chunk = kept
        if self.ber > 0.0 and chunk:
            bits = 8 * len(chunk)
            if d.good_bits >= bits:
                d.good_bits -= bits
            else:
                buf = bytearray(chunk)
                hit = set()
                pos = d.good_bits
                while pos < bits:
                    buf[pos >> 3] ^= 1 << (pos & 7)
                    c["bits_flipped"] += 1
                    hit.add(pos >> 3)
                    pos += 1 + self._good_bits()
                d.good_bits = pos - bits
                c["corrupted"] += sum(1 for i in hit if buf[i] != chunk[i])
                chunk = bytes(buf)
        return chunk

    def _advance(self, d: _Direction, now: float) -> None:
        """Transmit and deliver everything that is due at ``now``."""
        bt = self.byte_time
        while d.next_garbage <= now:
            n = self._rng.randint(1, self.garbage_max)
            when = d.next_garbage
            d.next_garbage = when + self._rng.expovariate(self.garbage_per_s)
            # Not _inject: that advances the line, which would land here again
            # (recursion as deep as the bursts missed during a stall).
            self._put_front(d, bytes(self._rng.getrandbits(8) for _ in range(n)), when)
        if d.txq and d.head_end <= now:
            late_us = int((now - d.head_end) * 1e6)
            c = d.counters
            c["late_samples"] += 1
            c["late_us_total"] += late_us
            if late_us > c["late_us_max"]:
                c["late_us_max"] = late_us
            k = min(len(d.txq), int((now - d.head_end) / bt) + 1)
            chunk = bytes(d.txq[:k])
            del d.txq[:k]
            last_end = d.head_end + (k - 1) * bt
            d.line_free = last_end
            if d.txq:
                d.head_end = last_end + bt
            chunk = self._impair(d, chunk)
            if chunk:
                d.inflight.append((last_end + self.latency, chunk))
        while d.inflight and d.inflight[0][0] <= now:
            _, data = d.inflight.popleft()
            self._deliver(d, data)

    def _deliver(self, d: _Direction, data: bytes) -> None:
        if not d.dst.connected:
            d.counters["lost_down"] += len(data)
            return
        n = d.dst.write(data)
        if n < len(data):
            d.counters["overrun"] += len(data) - n
        if n:
            d.counters["carried"] += n
            if self._log is not None:
                self._log.write('{"t": %.6f, "dir": "%s", "data": "%s"}\n'
                                % (time.time(), d.name, data[:n].hex()))

    def _receive(self, d: _Direction, now: float) -> None:
        self._advance(d, now)
        room = d.src.fifo - len(d.txq)
        if room <= 0:
            return
        data, flushed = d.src.read(room)
        if flushed:
            self._flush(d, now)
        if data:
            if not d.txq:
                d.head_end = max(d.line_free, now) + self.byte_time
            d.txq += data
        if not d.src.connected:
            self._event("disconnect", end=d.src.name, path=d.src.path)

    def _flush(self, d: _Direction, now: float) -> None:
        n = len(d.txq)
        d.counters["flushed"] += n
        d.txq = bytearray()
        if d.starved:
            # The pty buffers ahead of us are full of bytes written before the
            # flush too; a real UART would have blocked the writer before that.
            try:
                termios.tcflush(d.src.fileno(), termios.TCIFLUSH)  # type: ignore[arg-type]
            except (OSError, TypeError, termios.error):
                pass
            d.starved = False
        self._event("flush", dir=d.name, bytes=n)

    def _control_io(self, fd: int) -> None:
        if self._control is not None and fd == self._control.fileno():
            try:
                conn, _ = self._control.accept()
            except OSError:
                return
            conn.setblocking(False)
            self._clients[conn.fileno()] = (conn, bytearray())
            return
        conn, buf = self._clients[fd]
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            conn.close()
            del self._clients[fd]
            return
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            answer = self.command(line.decode("utf-8", "replace"))
            try:
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(answer.encode() + b"\n")
                conn.setblocking(False)
            except OSError:
                conn.close()
                del self._clients[fd]
                return
        if len(buf) > 4096:
            conn.close()
            del self._clients[fd]

    def _run(self) -> None:
        if self.realtime:
            # On a busy two-core box a normal thread wakes up to 5-10 ms late
            # now and then; the lowest real-time priority keeps wake-ups within
            # ~0.3 ms.  Linux applies it to this thread only.  Without the
            # privilege we run as a normal thread: pacing stays right on
            # average, only the per-byte jitter is larger.
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            except (OSError, AttributeError):
                self.realtime = False
        while True:
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                rlist = [self._wake_r]
                sources: Dict[int, _Direction] = {}
                deadline = math.inf
                for ep in (self.a, self.b):
                    if ep.next_retry() is not None and ep.retry(now):
                        self._event("connect", end=ep.name, path=ep.path)
                    r = ep.next_retry()
                    if r is not None:
                        deadline = min(deadline, r)
                for d in self._dirs:
                    self._advance(d, now)
                    if d.txq:
                        deadline = min(deadline, d.head_end)
                    if d.inflight:
                        deadline = min(deadline, d.inflight[0][0])
                    deadline = min(deadline, d.next_garbage)
                    fd = d.src.fileno()
                    d.starved = len(d.txq) >= d.src.fifo
                    if fd is not None and not d.starved:
                        rlist.append(fd)
                        sources[fd] = d
                if self._control is not None:
                    rlist.append(self._control.fileno())
                    rlist.extend(self._clients)
                if self._log is not None and now - self._log_flushed > 0.1:
                    self._log.flush()
                    self._log_flushed = now
            timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
            if timeout is not None and timeout > 1.0:
                timeout = 1.0
            try:
                ready, _, _ = select.select(rlist, [], [], timeout)
            except (OSError, ValueError):
                ready = []  # an fd was closed under us (close() racing): loop re-checks
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                for fd in ready:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 512):
                                pass
                        except OSError:
                            pass
                    elif fd in sources:
                        self._receive(sources[fd], now)
                    else:
                        self._control_io(fd)
