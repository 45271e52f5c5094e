"""Gratuitous ARP announcements and fast RFC 5227-style ARP probes (AF_PACKET, stdlib only).

Theory of operation
-------------------
*Announce.* After taking a VIP, the new holder tells the LAN so that switches
and clients stop sending to the old holder's MAC. Each round sends two
broadcast frames: an ARP request with sender IP = target IP = VIP (the RFC 5227
"ARP announcement", what ``arping -U`` sends) and an ARP reply with the same
addresses (what ``arping -A`` and Heartbeat's ``send_arp`` send, for hosts that
only learn from replies). The first round goes out at once, the others
``interval_ms`` apart.

*Probe.* Before taking a VIP while the serial link is down, a node checks that
nobody on the LAN still answers for it. It sends ``count`` RFC 5227 probes
(sender IP 0.0.0.0, so no neighbour learns anything from it; target = VIP)
``interval_ms`` apart and listens until ``wait_ms`` after the last one. A
holder's kernel answers a probe at once with a unicast ARP reply. Conflicts are
(RFC 5227 section 2.1.1): any ARP packet whose *sender* IP is the VIP (the
holder's reply, or its announcement), or another node's probe for the same
VIP (both nodes probing at once). An ordinary request *for* the VIP from a
client (sender IP set, target VIP) is not a conflict: clients keep asking for
the VIP exactly when its holder has died, and that must not block a takeover.
Frames from our own MAC, and our own outgoing frames, are ignored. The first
conflict ends the probe early. RFC 5227's timings (1-2 s between probes,
2 s of waiting after the last) are for hosts that do not know who else exists
and whose probes may cross slow bridges; here the peer is known and on the
same segment, and a holder's kernel answers a probe from its ARP softirq,
whatever its processes are doing: 0.1 ms median, 2 ms at most over 600 probes
between two namespaces with both CPUs busy (a loaded prober included).  So the
defaults are 3 probes 5 ms apart (one lost probe or answer is not enough to
miss a holder) and a 10 ms wait after the last: 20 ms in all, each probe
given 10-20 ms for an answer that takes 2 at most.  An answer that still comes
later is not lost: the runner's conflict watch (below) listens from before the
first probe until the address is gone, so a late holder is heard as a
conflict and the core yields or defends as for any double claim.

*Watch.* A probe only covers the moment it runs; between a probe that heard
nothing and the address being added there is a window (executor, group lock,
netlink) in which another box can probe, hear nothing and add the address too.
So a holder keeps listening (RFC 5227 section 2.4, ongoing address conflict
detection): ``Watch`` reports every ARP packet from another MAC whose sender
IP is the VIP, and - while the address is still being acquired - every probe
for it from another MAC. Once the address is ours a probe is not a conflict:
our kernel answers it and the prober backs off. What to do about a conflict
(defend or yield) is the core's decision; the watch only reports.

Sockets are non-blocking and read through ``loop.add_reader`` - no threads,
no external arping. A socket is created with protocol 0 and only then bound
to (interface, ETH_P_ARP), so it never queues frames from other interfaces.
One socket per interface is kept open and shared (see ``_Port``: closing one
costs the kernel ~10 ms); ``close_sockets()`` closes them at shutdown.
Needs CAP_NET_RAW.
"""
import asyncio
import errno
import socket
import struct
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from hanode.core.config.values import ipv4_int, parse_ipv4

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
PACKET_OUTGOING = 4
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_IP = b"\x00" * 4
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # 28 bytes after the 14-byte Ethernet header
_ETH_HLEN = 14
_MIN_FRAME = 60  # Ethernet minimum without FCS; padded explicitly rather than relying on the driver
_RCVBUF = 65536  # bounds what queues up between probes (the kernel doubles it)


class ArpError(Exception):
    """An ARP socket could not be opened or used; the message names the interface."""


class ArpPacket(NamedTuple):
    op: int
    sha: bytes   # sender hardware address
    spa: bytes   # sender protocol (IPv4) address
    tha: bytes
    tpa: bytes
    eth_src: bytes


def mac_str(mac: bytes) -> str:
    return ":".join("%02x" % b for b in mac)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError("not a MAC address: %r" % text)
    return bytes(int(p, 16) for p in parts)


def _ip_bytes(ip: str) -> bytes:
    if parse_ipv4(ip) is None:   # hanode.vip: why not ipaddress
        raise ArpError("%r is not an IPv4 address" % (ip,))
    return ipv4_int(ip).to_bytes(4, "big")


def build_frame(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes, dst: bytes = BROADCAST) -> bytes:
    """An Ethernet frame carrying one ARP packet (IPv4 over Ethernet), padded to 60 bytes."""
    frame = dst + sha + struct.pack("!H", ETH_P_ARP) + _ARP.pack(ARPHRD_ETHER, ETH_P_IP, 6, 4, op, sha, spa, tha, tpa)
    return frame + b"\x00" * (_MIN_FRAME - len(frame))


def parse_frame(frame: bytes) -> Optional[ArpPacket]:
    """The ARP packet in an Ethernet frame, or None if it is not IPv4-over-Ethernet ARP."""
    if len(frame) < _ETH_HLEN + _ARP.size or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH_HLEN)
    if htype != ARPHRD_ETHER or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return ArpPacket(op, sha, spa, tha, tpa, frame[6:12])


def is_conflict(pkt: ArpPacket, vip: bytes, own_mac: bytes, probes: bool = True) -> bool:
    """Does this ARP packet show that someone else has (or is claiming) ``vip``?
    ``probes``: does another node's probe for ``vip`` count (not once the address is ours)?"""
    if pkt.sha == own_mac or pkt.eth_src == own_mac:
        return False
    if pkt.spa == vip:
        return True  # a reply or announcement from the VIP's holder
    return probes and pkt.op == ARPOP_REQUEST and pkt.spa == ZERO_IP and pkt.tpa == vip  # a rival prober


def open_socket(ifname: str) -> Tuple[socket.socket, bytes]:
    """A new non-blocking raw ARP socket bound to ``ifname``, and that interface's MAC."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise ArpError("cannot open a raw ARP socket for %s: permission denied (needs root or CAP_NET_RAW)"
                       % ifname) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.bind((ifname, ETH_P_ARP))
        _name, _proto, _pkttype, hatype, addr = sock.getsockname()
        if hatype != ARPHRD_ETHER or len(addr) != 6:
            raise ArpError("%s is not an Ethernet interface (hardware type %d); cannot send ARP" % (ifname, hatype))
        sock.setblocking(False)
        return sock, bytes(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.ENODEV:
            raise ArpError("no interface %s" % ifname) from None
        raise ArpError("cannot bind a raw ARP socket to %s: %s" % (ifname, e.strerror or e)) from None
    except BaseException:
        sock.close()
        raise


class _Port:
    """The one cached ARP socket of an interface, shared by every announce, probe and watch on it.

    Closing an AF_PACKET socket waits for an RCU grace period in the kernel (8-20 ms
    measured), which would stall the event loop after every probe; so the socket stays
    open and is reused. Frames go to every probe and watch currently listening (a watch
    listens for as long as its address is held, so every ARP frame on the LAN then wakes
    the loop once: a broadcast LAN carries a few per second per host); while nobody
    listens the kernel queue fills up to the (small) receive buffer and is drained
    when the next listener starts, so old frames never count as answers.
    """

    def __init__(self, ifname: str):
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.sock, self.mac = open_socket(ifname)
        self.listeners: List[Callable[[ArpPacket], None]] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def listen(self, cb: Callable[[ArpPacket], None]) -> None:
        if not self.listeners:
            self.drain()
            self.loop = asyncio.get_running_loop()
            self.loop.add_reader(self.sock.fileno(), self._readable)
        self.listeners.append(cb)

    def unlisten(self, cb: Callable[[ArpPacket], None]) -> None:
        if cb in self.listeners:
            self.listeners.remove(cb)
        if not self.listeners and self.loop is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.sock.fileno())
            self.loop = None

    def _readable(self) -> None:
        # Drain everything queued: a busy LAN must not leave a backlog between callbacks.
        while self.listeners:
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            pkt = parse_frame(data)
            if pkt is not None:
                for cb in list(self.listeners):
                    cb(pkt)

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.listeners = []
        self.loop = None
        self.sock.close()


_ports: Dict[str, _Port] = {}


def _port(ifname: str) -> _Port:
    """The cached socket for ``ifname``, reopened if the interface was recreated meanwhile."""
    try:
        ifindex = socket.if_nametoindex(ifname)
    except OSError:
        stale = _ports.pop(ifname, None)
        if stale is not None:
            stale.close()
        raise ArpError("no interface %s" % ifname) from None
    port = _ports.get(ifname)
    if port is not None and port.ifindex != ifindex:
        _ports.pop(ifname).close()
        port = None
    if port is None:
        port = _ports[ifname] = _Port(ifname)
    return port


def close_sockets() -> None:
    """Close every cached ARP socket (at shutdown; each close costs the kernel ~10 ms)."""
    while _ports:
        _ports.popitem()[1].close()


class Watch:
    """Ongoing conflict detection for one address (see the module docstring): calls
    ``on_conflict(mac)`` for each conflicting packet, from the event loop's reader on the
    interface's shared socket - no thread, no polling. Starts in "acquiring" mode (a rival's
    probe counts); ``held()`` once the address is configured; ``close()`` when it is gone."""

    def __init__(self, ifname: str, ip: str, on_conflict: Callable[[str], None]):
        self.ifname = ifname
        self.ip = ip
        self.vip = _ip_bytes(ip)
        self.on_conflict = on_conflict
        self.acquiring = True
        self.port = _port(ifname)
        self.port.listen(self._on_packet)

    def held(self) -> None:
        self.acquiring = False

    def current(self) -> bool:
        """Still listening on the interface's socket? (False once the interface was recreated
        or the socket closed: then a new Watch is needed.)"""
        return _ports.get(self.ifname) is self.port and self._on_packet in self.port.listeners

    def _on_packet(self, pkt: ArpPacket) -> None:
        if is_conflict(pkt, self.vip, self.port.mac, probes=self.acquiring):
            self.on_conflict(mac_str(pkt.sha))

    def close(self) -> None:
        self.port.unlisten(self._on_packet)


async def _send(loop: asyncio.AbstractEventLoop, port: _Port, frame: bytes) -> None:
    try:
        await loop.sock_sendall(port.sock, frame)
    except OSError as e:
        if e.errno == errno.ENETDOWN:
            raise ArpError("cannot send ARP on %s: the interface is down" % port.ifname) from None
        if e.errno in (errno.ENXIO, errno.ENODEV):  # the interface went away under the cached socket
            _ports.pop(port.ifname, None)
            port.close()
            raise ArpError("cannot send ARP on %s: no such interface any more" % port.ifname) from None
        raise ArpError("cannot send ARP on %s: %s" % (port.ifname, e.strerror or e)) from None


async def announce(ifname: str, ip: str, count: int = 5, interval_ms: int = 200) -> int:
    """Send ``count`` rounds of gratuitous ARP (request + reply) for ``ip``; return frames sent."""
    loop = asyncio.get_running_loop()
    spa = _ip_bytes(ip)
    sent = 0
    for i in range(count):
        if i:
            await asyncio.sleep(interval_ms / 1000.0)
        # Looked up each round: an interface recreated mid-announcement gets a fresh socket.
        port = _port(ifname)
        await _send(loop, port, build_frame(ARPOP_REQUEST, port.mac, spa, ZERO_MAC, spa))
        await _send(loop, port, build_frame(ARPOP_REPLY, port.mac, spa, port.mac, spa))
        sent += 2
    return sent


async def defend(ifname: str, ip: str) -> int:
    """One round of gratuitous ARP for ``ip`` (RFC 5227 section 2.4 (c): a holder's defence)."""
    return await announce(ifname, ip, count=1)


async def probe(ifname: str, ip: str, count: int = 3, interval_ms: int = 5, wait_ms: int = 10) -> Optional[str]:
    """RFC 5227-style probe for ``ip``: the MAC of whoever answers for it, or None if nobody does."""
    loop = asyncio.get_running_loop()
    vip = _ip_bytes(ip)
    port = _port(ifname)
    found: "asyncio.Future[str]" = loop.create_future()

    def on_packet(pkt: ArpPacket) -> None:
        if not found.done() and is_conflict(pkt, vip, port.mac):
            found.set_result(mac_str(pkt.sha))

    port.listen(on_packet)
    try:
        frame = build_frame(ARPOP_REQUEST, port.mac, ZERO_IP, ZERO_MAC, vip)
        for i in range(count):
            if i:
                await asyncio.wait([found], timeout=interval_ms / 1000.0)
                if found.done():
                    break
            await _send(loop, port, frame)
        if not found.done():
            await asyncio.wait([found], timeout=wait_ms / 1000.0)
        return found.result() if found.done() else None
    finally:
        port.unlisten(on_packet)
        if not found.done():
            found.cancel()
