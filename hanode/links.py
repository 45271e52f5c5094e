"""The agent's links - the serial heartbeat and the UDP path - as the loop sees them.

Theory of operation
-------------------
``hanode.agent.Agent`` knows a link by this protocol and nothing else:

- ``name``: the name the core's liveness tracks it under (the port, or the
  interface of a ``ucast`` line);
- ``async read() -> bytes``: the next bytes from the peer (``b""`` is allowed:
  nothing usable this time);
- ``write(data)``: send one frame now, or drop it; an ``OSError`` is counted
  and logged by the agent, never fatal;
- ``close()``.

Both wait for input the same way: ``aio.readable(port.stream)`` (an fd on
CPython, a native stream on MicroPython), then a non-blocking read through
their own port object.  This module runs on MicroPython as well (the serial
link is the one a board uses; the UDP link needs ``SO_BINDTODEVICE``, Linux).

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

try:
    from typing import List, Tuple
except ImportError:   # MicroPython: annotations only
    pass

FRAME_BYTES = 24     # the longest heartbeat frame on the wire (docs/protocol.md)
DATAGRAM_MAX = 2048
_UDP_DEAD_PATH = (100, 101, 111, 113)   # ENETDOWN, ENETUNREACH, ECONNREFUSED, EHOSTUNREACH


class SerialLink:
    """A serial port (``hanode.uart.Serial`` or anything with its surface) as a link."""

    def __init__(self, serial, name=None):
        self.serial = serial
        self.name = name or serial.port
        # a frame takes 12.5 ms at 19200 baud and arrives a few bytes at a time
        self.frame_ms = max(1, FRAME_BYTES * 10 * 1000 // (getattr(serial, "baudrate", 19200) or 19200) + 1)

    async def read(self):
        await aio.readable(self.serial.stream)
        data = self.serial.read(256)
        if data and not data.endswith(b"\x00"):
            # wait for the rest of the frame and read it at once: one wake-up a frame instead of
            # one every few bytes (idle CPU), at the cost of at most one frame time of latency
            await aio.sleep_ms(self.frame_ms)
            data += self.serial.read(256) or b""
        return data

    def write(self, data):
        # a frame still queued in the kernel is stale: replace it rather than queue behind it
        self.serial.write_latest(data)

    def close(self):
        self.serial.close()


class UdpLink:
    """One ``ucast <dev> <peer>`` line: datagrams to and from the peer through ``dev``."""

    def __init__(self, dev: str, peer: str, port: int) -> None:
        import socket
        self.dev = dev
        self.peer = peer
        self.port = port
        self.name = dev
        self.ignored = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode() + b"\0")
        except OSError as e:
            self.sock.close()
            raise OSError(e.errno, "ucast %s %s: cannot bind to interface %s: %s" % (dev, peer, dev, e.strerror))
        self.sock.setblocking(False)
        try:
            self.sock.bind(("0.0.0.0", port))
        except OSError as e:
            self.sock.close()
            raise OSError(e.errno, "ucast %s %s: cannot bind UDP port %d: %s" % (dev, peer, port, e.strerror))

    async def read(self) -> bytes:
        await aio.readable(self.sock.fileno())
        return self.recv()

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

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, (self.peer, self.port))
        except (BlockingIOError, InterruptedError):
            pass   # a full socket buffer drops this beat; the next one is due in a keepalive
        except OSError as e:
            if e.errno not in _UDP_DEAD_PATH:   # unreachable peer, link down: the path is dead for now
                raise

    def close(self) -> None:
        self.sock.close()


def ucast_links(ucast: "List[Tuple[str, str]]", port: int,
                own_addresses: "List[str]") -> "Tuple[List[UdpLink], List[str]]":
    """The UDP links for the ucast lines, skipping those aimed at this box itself.
    Returns (links, notes) where notes say what was skipped."""
    links, notes = [], []
    for dev, peer in ucast:
        if peer in own_addresses:
            notes.append("ucast %s %s: that is this box's own address; ignored (the same ha.cf serves both nodes)"
                         % (dev, peer))
            continue
        links.append(UdpLink(dev, peer, port))
    return links, notes
