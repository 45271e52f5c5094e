"""A small rtnetlink client: links, IPv4 addresses, address add/delete, link events.

Theory of operation
-------------------
hanode needs four netlink requests (dump the links, dump the IPv4 addresses,
add an address, delete one) and the link events.  pyroute2's ``IPRoute`` does
all of that and much more: its module imports rtnl's whole marshal (every tc
qdisc, filter and action class), requests, parsers - 1.5 MB of the agent's
memory on the appliance.  Here the requests are built and the answers read with
pyroute2's public message classes alone (``ifinfmsg``, ``ifaddrmsg``; the
library stays the one that knows the kernel's formats), over a plain
``AF_NETLINK`` socket: synchronous, no event loop of its own, so it can be
called from any thread, the agent's loop thread too (each request takes about
a millisecond).

An answer is read until the kernel's ACK (an ``NLMSG_ERROR`` with error 0) or,
for a dump, ``NLMSG_DONE``; an error answer raises pyroute2's ``NetlinkError``
with the kernel's errno as ``code``, as IPRoute does.  Messages of another
request (a late answer, an event on a socket bound to a group) are skipped by
sequence number.
"""
import itertools
import os
import socket
import struct
from typing import Any, Iterator, List, Optional, Tuple

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTMGRP_LINK = 1
LINK_EVENTS = {RTM_NEWLINK: "RTM_NEWLINK", RTM_DELLINK: "RTM_DELLINK"}
_HEADER = struct.Struct("=IHHII")   # struct nlmsghdr: length, type, flags, sequence, port
_ERROR_CODE = struct.Struct("=i")   # struct nlmsgerr's first field, after the header
RECV_BYTES = 65536
NETLINK_TIMEOUT_S = 5.0


def message_classes() -> Tuple[Any, Any]:
    """pyroute2's ifinfmsg and ifaddrmsg (their modules only: ``hanode.vip.import_pyroute2``)."""
    from hanode.vip import import_pyroute2
    import_pyroute2()
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    return ifinfmsg, ifaddrmsg


def netlink_error(code: int) -> Exception:
    from pyroute2.netlink.exceptions import NetlinkError
    return NetlinkError(code, os.strerror(code))


def messages(data: bytes) -> Iterator[Tuple[int, int, bytes]]:
    """(type, sequence, the message's bytes) of each message in one datagram."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, seq, _port = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            return   # truncated: the kernel never sends that, nothing after it can be read
        yield kind, seq, data[offset:offset + length]
        offset += (length + 3) & ~3


def decode(cls: Any, raw: bytes) -> Any:
    msg = cls(raw)
    msg.decode()
    return msg


class Rtnl:
    """One NETLINK_ROUTE socket; ``groups``: the multicast groups to hear (RTMGRP_LINK)."""

    def __init__(self, groups: int = 0) -> None:
        self.ifinfmsg, self.ifaddrmsg = message_classes()
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            self.socket.bind((0, groups))
        except OSError:
            self.socket.close()
            raise
        self._seq = itertools.count(1)

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close()

    def fileno(self) -> int:
        return self.socket.fileno()

    def send(self, msg: Any, kind: int, flags: int) -> int:
        seq = next(self._seq)
        msg["header"]["type"] = kind
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.socket.send(msg.data)
        return seq

    def request(self, msg: Any, kind: int, flags: int) -> List[bytes]:
        """Send ``msg`` and read its answer: the messages of a dump, [] for an ACK."""
        seq = self.send(msg, kind, flags)
        self.socket.settimeout(NETLINK_TIMEOUT_S)
        try:
            return self._answer(seq)
        finally:
            self.socket.settimeout(None)

    def _answer(self, seq: int) -> List[bytes]:
        out: List[bytes] = []
        while True:
            for kind, msg_seq, raw in messages(self.socket.recv(RECV_BYTES)):
                if msg_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    (code,) = _ERROR_CODE.unpack_from(raw, _HEADER.size)
                    if code:
                        raise netlink_error(-code)
                    return out
                out.append(raw)

    # -- what hanode asks -------------------------------------------------------------------
    def get_links(self) -> List[Any]:
        return [decode(self.ifinfmsg, raw) for raw in self.request(self.ifinfmsg(), RTM_GETLINK,
                                                                     NLM_F_REQUEST | NLM_F_DUMP)]

    def get_link(self, index: int) -> Any:
        msg = self.ifinfmsg()
        msg["index"] = index
        return decode(self.ifinfmsg, self.request(msg, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK)[0])

    def get_addr(self, family: int = socket.AF_INET) -> List[Any]:
        msg = self.ifaddrmsg()
        msg["family"] = family
        return [decode(self.ifaddrmsg, raw) for raw in self.request(msg, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP)]

    def addr(self, command: str, index: int, address: str, prefixlen: int, broadcast: Optional[str] = None,
             label: Optional[str] = None) -> None:
        """``add`` (refused with EEXIST if it is there) or ``del`` one IPv4 address."""
        msg = self.ifaddrmsg()
        msg["family"] = socket.AF_INET
        msg["index"] = index
        msg["prefixlen"] = prefixlen
        attrs = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if broadcast:
            attrs.append(("IFA_BROADCAST", broadcast))
        if label:
            attrs.append(("IFA_LABEL", label))
        msg["attrs"] = attrs
        if command == "add":
            self.request(msg, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        elif command == "del":
            self.request(msg, RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
        else:
            raise ValueError("addr: command %r is neither add nor del" % command)

    def link_events(self) -> Iterator[Tuple[str, Any]]:
        """What one read of a socket bound to RTMGRP_LINK brings: (RTM_NEWLINK or RTM_DELLINK, msg)."""
        for kind, _seq, raw in messages(self.socket.recv(RECV_BYTES)):
            if kind in LINK_EVENTS:
                yield LINK_EVENTS[kind], decode(self.ifinfmsg, raw)

    def request_links(self) -> None:
        """Ask for a dump of the links, whose messages then come as events (the LAN watch's start)."""
        self.send(self.ifinfmsg(), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)

    def dump_events(self) -> Iterator[Tuple[str, Any]]:
        """After ``request_links``: the dump's links as events, and any event that comes meanwhile,
        until the dump is done (blocking for the kernel's answer, ~1 ms)."""
        while True:
            data = self.socket.recv(RECV_BYTES)
            for kind, _seq, raw in messages(data):
                if kind == NLMSG_DONE:
                    return
                if kind in LINK_EVENTS:
                    yield LINK_EVENTS[kind], decode(self.ifinfmsg, raw)
