"""The second heartbeat path: UDP unicast on the LAN (ha.cf ``ucast <dev> <peer>``).

Theory of operation
-------------------
Each ``ucast`` line becomes one link carrying exactly the frames the serial
port carries, one frame per datagram, to ``<peer>:udpport`` through ``<dev>``
(SO_BINDTODEVICE, so the path is the one the line names).  The core treats it
as one more link: the peer is alive while any link delivers, and duplicates
(the same frame over both paths) only refresh the link they came in on.
Heartbeat lets both nodes share one ha.cf by ignoring a ucast to one of the
box's own addresses; so does hanode.  Datagrams from any address other than
the configured peer are ignored before they reach the decoder.
"""
import socket
from typing import List, Tuple

from hanode import aio


class UdpLink:
    def __init__(self, dev: str, peer: str, port: int) -> None:
        self.dev = dev
        self.peer = peer
        self.port = port
        self.name = "%s" % dev
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

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, n: int = 2048) -> bytes:
        """One datagram from the peer (b"" for anything else or nothing)."""
        try:
            data, (addr, _) = self.sock.recvfrom(2048)
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
            # unreachable peer, link down: the LAN path is just dead for now
            if e.errno not in (101, 113, 111, 100):   # ENETUNREACH, EHOSTUNREACH, ECONNREFUSED, ENETDOWN
                raise

    async def read(self) -> bytes:   # the agent's link surface
        return await aio.read_ready(_Readable(self), 2048)

    def close(self) -> None:
        self.sock.close()


class _Readable:
    """What aio.read_ready wants: fileno() and read(n)."""

    def __init__(self, link: UdpLink) -> None:
        self.link = link

    def fileno(self) -> int:
        return self.link.fileno()

    def read(self, n: int) -> bytes:
        return self.link.recv(n)


def links_for(ucast: List[Tuple[str, str]], port: int, own_addresses: List[str]) -> Tuple[List[UdpLink], List[str]]:
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
