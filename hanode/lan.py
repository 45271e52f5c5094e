"""LAN health observation: the carrier of the VIP interfaces and the ping nodes (CPython only).

Theory of operation
-------------------
One OS concern: how good this box's LAN is right now.  ``LanWatch`` reports a
raw health (``hanode.core.health.health_of``) through ``report(value, detail)``
each time it changes; the core settles it (hysteresis) and decides with the
peer's (``hanode/core/health.py``).

*Carrier.*  A netlink route socket bound to the link multicast group
(pyroute2's ``IPRSocket``, ``RTMGRP_LINK``) is read from the asyncio loop
(``add_reader``: no polling, no thread): every RTM_NEWLINK/RTM_DELLINK of a
watched interface updates its carrier - IFF_UP and IFF_LOWER_UP both set.  A
dump at start gives the first state; an interface that is deleted counts as
no carrier until one of the same name appears again (a new index: names are
what ha.cf and haresources speak).  A socket whose receive buffer overflowed
(ENOBUFS: events were lost) is replaced and the state dumped again.  Carrier
loss reaches the node within milliseconds: the kernel sends the event when
the driver (or ``ip link set dev down``, or the veth peer) changes it.

*Ping nodes.*  ha.cf's ``ping`` addresses and ``ping_group`` members are sent
an ICMP echo (raw socket, our own identifier) every ``interval_ms`` (the
keepalive, as Heartbeat pings); a node is reachable while one of its addresses
answered within ``deadping_ms`` (Heartbeat's ``deadping``, default the
deadtime): deadping / keepalive echoes missed in a row lose it.  ICMP rather
than ARP because a ping node need not be on-link (Heartbeat's ping nodes are
routed addresses, e.g. a router beyond the switch), and an echo answered
proves the path both ways through the IP stack, not only the neighbour's NIC.
The first report waits until every node has answered once or ``deadping_ms``
has passed, so that a starting box does not claim a LAN worse than it has.
A send that fails (no route, the interface down) is a miss like any other.

pyroute2 (its ``ifinfmsg`` class, through ``hanode.rtnl``) is imported only
by ``start``, never at ``import hanode.lan``.
"""

import asyncio
import errno
import os
import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from hanode.core.health import health_of

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ECHO_PAYLOAD = b"hanode-l"   # 8 bytes: makes our echoes easy to recognise in a capture
RECV_MAX = 2048


def _ms() -> int:
    return int(time.monotonic() * 1000)


def icmp_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    checksum = icmp_checksum(header + ECHO_PAYLOAD)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum, ident, seq) + ECHO_PAYLOAD


def echo_reply_from(packet: bytes, ident: int) -> Optional[str]:
    """The source address of an ICMP echo reply to our identifier (``packet`` as a raw IPv4
    socket delivers it: IP header first), else None."""
    if len(packet) < 20:
        return None
    header_len = (packet[0] & 0x0F) * 4
    if len(packet) < header_len + 8:
        return None
    kind, _code, _sum, their_ident, _seq = struct.unpack("!BBHHH", packet[header_len:header_len + 8])
    if kind != ICMP_ECHO_REPLY or their_ident != ident:
        return None
    return socket.inet_ntoa(packet[12:16])


class LanWatch:
    """Carrier of ``interfaces`` and reachability of the ping nodes; ``report(health, detail)``
    on every change (and once at start)."""

    def __init__(self, interfaces: List[str], ping: List[str], ping_groups: List[Tuple[str, List[str]]],
                 interval_ms: int, deadping_ms: int, report: Callable[[int, str], None],
                 log: Callable[[str, str], None], clock: Callable[[], int] = _ms) -> None:
        self.interfaces = sorted(set(interfaces))
        # ping nodes: (name, addresses); a plain ping address is a node of its own
        self.nodes: List[Tuple[str, List[str]]] = [(a, [a]) for a in ping] + [
            (name, list(addrs)) for name, addrs in ping_groups]
        self.interval_ms = interval_ms
        self.deadping_ms = deadping_ms
        self.report = report
        self.log = log
        self.clock = clock
        self.carrier: Dict[str, bool] = {name: False for name in self.interfaces}
        self.present: Dict[str, bool] = {name: False for name in self.interfaces}
        self.answered: Dict[str, int] = {}   # address -> when its last echo reply came
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0
        self.started_at: Optional[int] = None
        self.reported: Optional[Tuple[int, str]] = None
        self.events = 0          # link events read
        self.resyncs = 0         # netlink sockets replaced after an overflow
        self.echoes_sent = 0
        self.replies = 0
        self._nl: Any = None
        self._icmp: Optional[socket.socket] = None
        self._pinger: Optional["asyncio.Task[None]"] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Open the netlink and ICMP sockets on the running loop and make the first report."""
        self._loop = asyncio.get_running_loop()
        self.started_at = self.clock()
        if self.interfaces:
            self._open_netlink()
        if self.nodes:
            self._icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            self._icmp.setblocking(False)
            self._loop.add_reader(self._icmp.fileno(), self._read_icmp)
            self._pinger = asyncio.ensure_future(self._ping_loop())
        self._evaluate()

    def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None
        self._close_netlink()
        if self._icmp is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._icmp.fileno())
            self._icmp.close()
            self._icmp = None

    # --------------------------------------------------------------- carrier
    def _open_netlink(self) -> None:
        from hanode.rtnl import RTMGRP_LINK, Rtnl
        nl = Rtnl(groups=RTMGRP_LINK)
        self._nl = nl
        # the state now, before anything is reported: the dump's RTM_NEWLINK messages (and any
        # event that comes meanwhile) are read at once, blocking for the kernel's answer (~1 ms)
        nl.request_links()
        for event, msg in nl.dump_events():
            self.link_message(event, msg.get_attr("IFLA_IFNAME"), msg["flags"])
        assert self._loop is not None
        self._loop.add_reader(nl.fileno(), self._read_netlink)

    def _close_netlink(self) -> None:
        if self._nl is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._nl.fileno())
            self._nl.close()
            self._nl = None

    def _read_netlink(self) -> None:
        try:
            events = list(self._nl.link_events())
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                self.log("error", "LAN watch: netlink read failed: %s; reopening" % e)
            self.resyncs += 1   # events were lost: start over from a fresh dump
            self._close_netlink()
            self._open_netlink()
            return
        changed = False
        for event, msg in events:
            changed |= self.link_message(event, msg.get_attr("IFLA_IFNAME"), msg["flags"])
        if changed:
            self._evaluate()

    def link_message(self, event: str, name: Optional[str], flags: int) -> bool:
        """One RTM_NEWLINK/RTM_DELLINK; True if a watched interface's carrier changed."""
        if name not in self.carrier:
            return False
        self.events += 1
        gone = event == "RTM_DELLINK"
        up = not gone and bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
        if not gone and not self.present[name] and self.reported:
            self.log("info", "LAN watch: interface %s is back" % name)
        elif gone and self.present[name]:
            self.log("warning", "LAN watch: interface %s was deleted: no carrier until it is back" % name)
        self.present[name] = not gone
        if up == self.carrier[name]:
            return False
        self.carrier[name] = up
        return True

    # ------------------------------------------------------------ ping nodes
    async def _ping_loop(self) -> None:
        while True:
            self.send_echoes()
            await asyncio.sleep(self.interval_ms / 1000.0)
            self._evaluate()

    def send_echoes(self) -> None:
        assert self._icmp is not None
        self.seq = (self.seq + 1) & 0xFFFF
        packet = echo_request(self.ident, self.seq)
        for _name, addrs in self.nodes:
            for addr in addrs:
                try:
                    self._icmp.sendto(packet, (addr, 0))
                    self.echoes_sent += 1
                except OSError:
                    pass   # no route, interface down: a miss like a lost echo

    def _read_icmp(self) -> None:
        assert self._icmp is not None
        while True:
            try:
                packet = self._icmp.recv(RECV_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            src = echo_reply_from(packet, self.ident)
            if src is not None:
                first = src not in self.answered
                self.answered[src] = self.clock()
                self.replies += 1
                if first:
                    self._evaluate()

    def reachable(self, now: int) -> List[str]:
        """Names of the ping nodes with an address that answered within deadping."""
        return [name for name, addrs in self.nodes
                if any(now - self.answered.get(a, -1 << 62) <= self.deadping_ms for a in addrs)]

    # ----------------------------------------------------------------- health
    def health(self, now: int) -> Tuple[int, str]:
        """(raw health, detail in words)."""
        dark = [n for n in self.interfaces if not self.carrier[n]]
        reached = self.reachable(now)
        lost = [name for name, _ in self.nodes if name not in reached]
        words = []
        if dark:
            words.append("no carrier on %s" % " ".join(
                n if self.present[n] else n + " (gone)" for n in dark))
        if lost:
            words.append("ping node%s %s lost" % ("s" if len(lost) > 1 else "", " ".join(lost)))
        if not words:
            words.append("carrier on %s%s" % (" ".join(self.interfaces) or "no VIP interface",
                                              "; %d ping node(s) reached" % len(reached) if self.nodes else ""))
        return health_of(not dark, len(reached)), "; ".join(words)

    def _evaluate(self) -> None:
        now = self.clock()
        if self.reported is None and self.nodes and self.started_at is not None:
            # the first report: once every node answered, or deadping has passed
            if len(self.reachable(now)) < len(self.nodes) and now - self.started_at < self.deadping_ms:
                return
        value = self.health(now)
        if self.reported is None or value[0] != self.reported[0]:
            self.reported = value
            self.report(value[0], value[1])

    def reconfigure(self, cfg: Any) -> None:
        """A reload: the ping round and deadping follow keepalive and deadtime (the targets and
        the interfaces are set at start)."""
        self.interval_ms, self.deadping_ms = cfg.keepalive_ms, cfg.deadping()

    def status(self) -> Dict[str, Any]:
        now = self.clock()
        return {
            "interfaces": {n: ("up" if self.carrier[n] else ("no carrier" if self.present[n] else "gone"))
                           for n in self.interfaces},
            "ping_nodes": {name: name in self.reachable(now) for name, _ in self.nodes},
            "reported": self.reported[0] if self.reported else None,
            "link_events": self.events, "netlink_resyncs": self.resyncs,
            "echoes_sent": self.echoes_sent, "echo_replies": self.replies,
        }


def vip_interfaces(cfg: Any, log: Callable[[str, str], None]) -> List[str]:
    """The interfaces that carry the VIPs of every group (as the runner would add them)."""
    from hanode.vip import Vip, VipError
    names: List[str] = []
    for group in cfg.groups:
        for res in group.resources:
            if not res.is_ip:
                continue
            try:
                vip = Vip.from_resource(res)
                dev = vip.dev or vip.resolve().dev
            except VipError as e:
                log("warning", "LAN watch: %s; its interface's carrier is not watched" % e)
                continue
            if dev and dev not in names:
                names.append(dev)
    return names


async def start_watch(cfg: Any, report: Callable[[int, str], None],
                      log: Callable[[str, str], None]) -> Optional[LanWatch]:
    """The daemon's LAN watch: the carrier of the VIP interfaces and the ping nodes, reported to
    ``report`` (the agent's ``lan_changed``).  Without it the node has no LAN health and the LAN
    moves nothing, so a failure to start it is said loudly but does not stop hanode: None."""
    loop = asyncio.get_running_loop()
    interfaces = await loop.run_in_executor(None, vip_interfaces, cfg, log)   # netlink: off the loop
    watch = LanWatch(interfaces, cfg.ping, cfg.ping_groups, cfg.keepalive_ms, cfg.deadping(), report, log)
    try:
        await watch.start()
    except OSError as e:
        log("critical", "LAN watch could not start (%s): this box's LAN health is unknown, so a LAN "
            "loss here moves nothing" % e)
        watch.close()
        return None
    log("info", "LAN watch: carrier of %s; ping nodes: %s" % (
        " ".join(interfaces) or "no VIP interface", " ".join(name for name, _ in watch.nodes) or "none"))
    return watch
