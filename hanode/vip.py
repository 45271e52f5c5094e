"""Virtual IP (VIP) management through netlink (pyroute2).

Theory of operation
-------------------
A VIP is an extra IPv4 address put on an existing interface, as Heartbeat's
IPaddr/IPaddr2 do. Written forms in haresources: ``192.0.2.100``,
``192.0.2.100/24``, ``192.0.2.100/24/eth0``, ``192.0.2.100/24/eth0:1`` (a
label), ``IPaddr::192.0.2.100/24/eth0/192.0.2.255`` (broadcast). The config
parser splits those into ``Resource.ip/prefixlen/dev/label/broadcast``;
``Vip.from_resource`` takes them from there.

When the interface or prefix length is not given, ``resolve()`` does what
IPaddr does ("we key off the existing route"): it picks the interface that has
an address whose subnet contains the VIP, preferring the most specific subnet,
and takes the prefix length from it. No such interface is a configuration
error that says how to write the VIP explicitly.

Every operation is idempotent and reports what it did: ``add()`` returns False
when the address was already there, ``remove()`` returns False when it was
already gone, so the caller can run them again after a crash or a restart
without special cases.

Calls are synchronous and take about a millisecond: the requests go through
``hanode.rtnl`` (a plain netlink socket, pyroute2's message classes), which
has no event loop of its own and so can be called from the agent's loop
thread as from any other.  (pyroute2's IPRoute, which ``iproute_class`` below
still imports for whoever wants it, costs 1.5 MB more on the appliance.)

What pyroute2 costs, and what is imported of it
-----------------------------------------------
pyroute2 is imported lazily, so ``import hanode.vip`` costs nothing and a
standby node never imports it.  Any ``import pyroute2.x`` runs the package's
``__init__`` first, and pyroute2 0.9's imports every public class: NDB (with
sqlite3), IPDB, nftables, ipset, WireGuard, nl80211, plan9 ... (~400 modules,
+10-11 MB of RSS on the agent).  The agent needs two message classes,
``ifinfmsg`` and ``ifaddrmsg`` (``import_pyroute2``, for ``hanode.rtnl``);
``IPRoute`` from ``pyroute2.iproute.linux`` (``iproute_class``, for the bench's
comparison) costs 1.5 MB more on the appliance.  Both import their modules
with the package registered in ``sys.modules`` but its ``__init__`` not yet run;
the package object answers a name it does not have (PEP 562 ``__getattr__``) by
importing the submodule of that name, or, for a name only the ``__init__``
defines (``from pyroute2 import NDB`` elsewhere in the process), by running the
``__init__`` then: whoever needs the whole package still gets it, on first use.

IPRoute's module also imports ``unittest.mock`` for a single ``Mock()``, the message
queue of a socket that no event loop drives (``IPRSocket``, the LAN watch's),
and with it unittest, difflib and pprint: +1 MB of RSS for an object nothing
calls.  Unless unittest is loaded already, the import runs with a stand-in
``unittest.mock`` whose ``Mock`` is inert (any attribute or call answers
another inert object, recording nothing); the stand-in leaves ``sys.modules``
afterwards, so a later ``import unittest.mock`` gets the real one, and a
pyroute2 that takes more from it at import is imported again with the real one.

pyroute2 0.9's ``config`` and ``process`` modules import ``multiprocessing``
(with pickle: 0.3-0.6 MB of RSS on the appliance) and read ``Pipe``, ``Queue``
and ``Process`` from it, which they call only to run netlink in a child
process (network namespaces), which hanode never asks for.  The import runs
with a stand-in ``multiprocessing`` whose ``Pipe``, ``Queue`` and ``Process``
import the real module when called, and whose other names are the real
module's; it leaves ``sys.modules`` afterwards like the unittest stand-in.
"""
import contextlib
import errno
import importlib
import importlib.util
import socket
import sys
import types
from typing import Any, Callable, Iterator, List, Optional, Tuple

from hanode.core.config.values import ipv4_int, parse_ipv4
from hanode.rtnl import NETLINK_TIMEOUT_S

IFNAMSIZ = 16          # the kernel's limit includes the NUL: names and labels are at most 15 chars


class VipError(Exception):
    """A VIP cannot be resolved, added or removed; the message names the address and device."""


PYROUTE2 = "pyroute2"
IPROUTE_MODULE = "pyroute2.iproute.linux"   # IPRoute (and AsyncIPRoute from 0.9 on)


def _defer_package_init(name: str) -> None:
    """Register package ``name`` in sys.modules without running its ``__init__`` (see the module
    docstring); the ``__init__`` runs when a name only it defines is asked for."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError("no package %s (run tools/setup)" % name, name=name)
    package = importlib.util.module_from_spec(spec)

    def missing(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if importlib.util.find_spec("%s.%s" % (name, attr)) is not None:   # a submodule not yet imported
            return importlib.import_module("%s.%s" % (name, attr))
        if package.__dict__.pop("__getattr__", None) is not None:   # once, even if asked twice at once
            spec.loader.exec_module(package)   # type: ignore[union-attr]
        try:
            return package.__dict__[attr]
        except KeyError:
            raise AttributeError("module %r has no attribute %r" % (name, attr)) from None

    package.__getattr__ = missing   # type: ignore[attr-defined]
    sys.modules[name] = package


class _InertMock:
    """The ``Mock`` of the stand-in ``unittest.mock`` (module docstring)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _InertMock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _InertMock()


def _import_without_unittest(module: str) -> Any:
    """``import module`` with the stand-in ``unittest.mock`` (module docstring)."""
    if "unittest" in sys.modules:
        return importlib.import_module(module)
    package, mock = types.ModuleType("unittest"), types.ModuleType("unittest.mock")
    mock.Mock = _InertMock   # type: ignore[attr-defined]
    package.mock = mock      # type: ignore[attr-defined]
    sys.modules.update({"unittest": package, "unittest.mock": mock})
    try:
        return importlib.import_module(module)
    except (AttributeError, ImportError):
        pass   # a release that takes more than Mock: the real unittest below
    finally:
        for name, stand_in in (("unittest", package), ("unittest.mock", mock)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return importlib.import_module(module)


MULTIPROCESSING = "multiprocessing"
# what pyroute2 0.9 reads from multiprocessing as it is imported, to call for child processes only
CALLED_LATER = ("Pipe", "Queue", "Process")


def _real_multiprocessing() -> types.ModuleType:
    if isinstance(sys.modules.get(MULTIPROCESSING), _LaterMultiprocessing):
        del sys.modules[MULTIPROCESSING]   # still importing pyroute2: the rest of it gets the real one
    return importlib.import_module(MULTIPROCESSING)


class _LaterMultiprocessing(types.ModuleType):
    """The stand-in ``multiprocessing`` (module docstring)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in CALLED_LATER:
            return getattr(_real_multiprocessing(), name)

        def called_later(*args: Any, **kwargs: Any) -> Any:
            return getattr(_real_multiprocessing(), name)(*args, **kwargs)
        called_later.__name__ = called_later.__qualname__ = name
        return called_later


@contextlib.contextmanager
def _multiprocessing_later() -> Iterator[None]:
    """The stand-in ``multiprocessing`` in sys.modules while pyroute2 is imported (module docstring)."""
    if MULTIPROCESSING in sys.modules:
        yield
        return
    stand_in = _LaterMultiprocessing(MULTIPROCESSING, "multiprocessing, imported when first called (hanode.vip)")
    sys.modules[MULTIPROCESSING] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(MULTIPROCESSING) is stand_in:
            del sys.modules[MULTIPROCESSING]


# what hanode.rtnl builds its requests and reads the answers with
RTNL_MODULES = ("pyroute2.netlink.rtnl.ifinfmsg", "pyroute2.netlink.rtnl.ifaddrmsg", "pyroute2.netlink.exceptions")


def import_pyroute2() -> None:
    """pyroute2's rtnl message classes, importing only their modules (the package ``__init__``
    deferred, multiprocessing later: the module docstring); call it off the loop, once."""
    if all(name in sys.modules for name in RTNL_MODULES):
        return
    _defer_package_init(PYROUTE2)
    with _multiprocessing_later():
        for name in RTNL_MODULES:
            importlib.import_module(name)


def iproute_class() -> Any:
    """pyroute2's IPRoute, importing only its module and what that needs (call it off the loop:
    the first call takes 50-100 ms, seconds under QEMU)."""
    if IPROUTE_MODULE in sys.modules:
        return sys.modules[IPROUTE_MODULE].IPRoute
    _defer_package_init(PYROUTE2)
    with _multiprocessing_later():
        return _import_without_unittest(IPROUTE_MODULE).IPRoute


def netlink_call(fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(rtnl)`` with a fresh ``hanode.rtnl.Rtnl`` (synchronous: from any thread, the loop's
    too; a request takes about a millisecond).  A kernel that does not answer is a VipError."""
    from hanode.rtnl import Rtnl
    try:
        with Rtnl() as rtnl:
            return fn(rtnl)
    except socket.timeout:
        raise VipError("netlink did not answer within %.0f s" % NETLINK_TIMEOUT_S) from None


# IPv4 on integers, not with the standard library's ipaddress module (0.26 MB of the agent's
# memory): the syntax check is the configuration parser's (hanode.core.config.values.parse_ipv4,
# which accepts the text ipaddress.IPv4Address does: four decimal octets, no leading zeros), and
# a subnet test and a broadcast address are a shift and an or
def in_subnet(ip: str, local: str, prefixlen: int) -> bool:
    """Is ``ip`` in the subnet of ``local``/``prefixlen`` (0-32)?"""
    return (ipv4_int(ip) ^ ipv4_int(local)) >> (32 - prefixlen) == 0


def broadcast_address(ip: str, prefixlen: int) -> str:
    """The broadcast address of ``ip``'s subnet of length ``prefixlen`` (0-32)."""
    return socket.inet_ntoa((ipv4_int(ip) | (0xFFFFFFFF >> prefixlen)).to_bytes(4, "big"))


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _links(ipr: Any) -> dict:
    return {link["index"]: _attr(link, "IFLA_IFNAME") for link in ipr.get_links()}


def _ipv4_addrs(ipr: Any) -> List[Tuple[int, str, int, Optional[str]]]:
    """(ifindex, local address, prefixlen, label) for every IPv4 address in this namespace."""
    out = []
    for a in ipr.get_addr(family=socket.AF_INET):
        local = _attr(a, "IFA_LOCAL") or _attr(a, "IFA_ADDRESS")
        if local:
            out.append((a["index"], local, a["prefixlen"], _attr(a, "IFA_LABEL")))
    return out


def link_info(ifname: str) -> Tuple[int, str]:
    """(ifindex, MAC as "aa:bb:cc:dd:ee:ff") of ``ifname``; VipError if there is no such interface."""
    try:
        idx = socket.if_nametoindex(ifname)
    except OSError:
        raise VipError("no interface %s" % ifname) from None
    return idx, _attr(netlink_call(lambda rtnl: rtnl.get_link(idx)), "IFLA_ADDRESS") or ""


def _netlink_code(e: BaseException) -> Optional[int]:
    return getattr(e, "code", None)


class Vip:
    """One virtual IPv4 address: where it belongs, and add/remove/present on that interface."""

    def __init__(self, ip: str, prefixlen: Optional[int] = None, dev: Optional[str] = None,
                 label: Optional[str] = None, broadcast: Optional[str] = None):
        if parse_ipv4(ip) is None:
            raise VipError("%r is not an IPv4 address" % (ip,))
        self.ip = ip
        if prefixlen is not None:
            prefixlen = int(prefixlen)
            if not 1 <= prefixlen <= 32:
                raise VipError("%s: prefix length %d is not between 1 and 32" % (ip, prefixlen))
        if dev and ":" in dev:  # Heartbeat's "eth0:1" form, if the parser did not split it
            dev, alias = dev.split(":", 1)
            label = label or "%s:%s" % (dev, alias)
        if broadcast is not None and parse_ipv4(broadcast) is None:
            raise VipError("%s: broadcast %r is not an IPv4 address" % (ip, broadcast))
        self.prefixlen = prefixlen
        self.dev = dev or None
        self.label = label or None
        self.broadcast = broadcast
        if self.dev:
            self._check_name(self.dev, "interface name")
        if self.label and self.dev:
            self.label = self._normalise_label(self.label, self.dev)

    @classmethod
    def from_resource(cls, res: Any) -> "Vip":
        """Build from a config Resource (``.ip .prefixlen .dev .label .broadcast``)."""
        return cls(res.ip, getattr(res, "prefixlen", None), getattr(res, "dev", None),
                   getattr(res, "label", None), getattr(res, "broadcast", None))

    def __repr__(self) -> str:
        return "Vip(%s)" % self

    def __str__(self) -> str:
        parts = [self.ip]
        if self.prefixlen is not None:
            parts.append(str(self.prefixlen))
            if self.dev:
                parts.append(self.label or self.dev)
        return "/".join(parts)

    def _check_name(self, name: str, what: str) -> None:
        if len(name) >= IFNAMSIZ:
            raise VipError("%s: %s %r is %d characters; the kernel allows at most %d"
                           % (self.ip, what, name, len(name), IFNAMSIZ - 1))

    def _normalise_label(self, label: str, dev: str) -> str:
        # The kernel shows a label as the interface name in ifconfig; iproute2 insists it is
        # the device name or "<dev>:<something>", and so do we (Heartbeat writes eth0:0).
        if label != dev and not label.startswith(dev + ":"):
            if ":" in label:
                raise VipError("%s: label %r must be %s or start with %s:" % (self.ip, label, dev, dev))
            label = "%s:%s" % (dev, label)
        self._check_name(label, "label")
        return label

    # -- resolution ---------------------------------------------------------------------------

    def _resolve(self, ipr: Any) -> int:
        """Fill in dev/prefixlen when not given; return the interface index."""
        links = _links(ipr)
        if self.dev is not None and self.prefixlen is not None:
            for idx, name in links.items():
                if name == self.dev:
                    return idx
            raise VipError("no interface %s (for VIP %s)" % (self.dev, self.ip))
        if self.dev is not None and self.dev not in links.values():
            raise VipError("no interface %s (for VIP %s)" % (self.dev, self.ip))
        best = None
        for idx, local, plen, _label in _ipv4_addrs(ipr):
            if plen >= 32 or idx not in links:
                continue
            if self.dev is not None and links[idx] != self.dev:
                continue
            if not in_subnet(self.ip, local, plen):
                continue
            # Most specific subnet first; an interface's own address beats the VIP itself
            # (which is only a hint once added); then the lowest ifindex, for stability.
            rank = (plen, local != self.ip, -idx)
            if best is None or rank > best[0]:
                best = (rank, idx, plen)
        if best is None:
            hint_len = self.prefixlen if self.prefixlen is not None else 24
            if self.dev is not None:
                raise VipError("no address on %s has a subnet containing %s; give the prefix length: %s/%d/%s"
                               % (self.dev, self.ip, self.ip, hint_len, self.dev))
            raise VipError("no interface has a subnet containing %s; give one: %s/%d/eth0"
                           % (self.ip, self.ip, hint_len))
        _rank, idx, plen = best
        if self.dev is None:
            self.dev = links[idx]
            if self.label:
                self.label = self._normalise_label(self.label, self.dev)
        if self.prefixlen is None:
            self.prefixlen = plen
        return idx

    def resolve(self) -> "Vip":
        """Decide the interface and prefix length (if not given); VipError with a hint if impossible."""
        netlink_call(self._resolve)
        return self

    def resolved(self) -> bool:
        """Are the interface and prefix length known (given, or decided by an earlier ``resolve``)?
        Once they are, an add needs no netlink dump: the interface index comes from the kernel by
        name (``if_nametoindex``, one ioctl), so a recreated interface is found under its new index."""
        return self.dev is not None and self.prefixlen is not None

    def _broadcast(self) -> Optional[str]:
        if self.broadcast:
            return self.broadcast
        if self.prefixlen is not None and self.prefixlen <= 30:
            return broadcast_address(self.ip, self.prefixlen)
        return None

    # -- operations ---------------------------------------------------------------------------

    def _entries(self, ipr: Any, idx: Optional[int]) -> List[Tuple[int, int]]:
        return [(i, plen) for i, local, plen, _l in _ipv4_addrs(ipr)
                if local == self.ip and (idx is None or i == idx)]

    def present(self) -> bool:
        """Is the VIP configured on its interface?"""
        def op(ipr: Any) -> bool:
            return bool(self._entries(ipr, self._resolve(ipr)))
        return netlink_call(op)

    def where(self) -> List[str]:
        """Every interface currently carrying the VIP (normally none or one)."""
        def op(ipr: Any) -> List[str]:
            links = _links(ipr)
            return [links.get(i, str(i)) for i, _p in self._entries(ipr, None)]
        return netlink_call(op)

    def add(self) -> bool:
        """Put the VIP on its interface; False if it was already there.

        Resolved (see ``resolved``), it is one netlink request: the kernel refuses a second copy of
        the same address and prefix on the interface (EEXIST), which is "already there" - the
        dumps of every link and address (~6 ms of parsing, 20+ ms on a busy box) stay off the
        failover's path.  (A copy with another prefix length, which only a hand-made address can
        be, is then left beside ours instead of counting as ours.)"""
        def op(ipr: Any) -> bool:
            idx = self._index_by_name() if self.resolved() else None
            if idx is None:
                idx = self._resolve(ipr)
                if self._entries(ipr, idx):
                    return False
            kwargs = {"index": idx, "address": self.ip, "prefixlen": self.prefixlen}
            brd = self._broadcast()
            if brd:
                kwargs["broadcast"] = brd
            if self.label:
                kwargs["label"] = self.label
            try:
                ipr.addr("add", **kwargs)
            except Exception as e:
                if _netlink_code(e) == errno.EEXIST:  # added meanwhile by someone else: same outcome
                    return False
                raise VipError("cannot add %s to %s: %s" % (self, self.dev, e)) from e
            return True
        return netlink_call(op)

    def _index_by_name(self) -> Optional[int]:
        """The resolved interface's index from the kernel (no netlink), None if it has none."""
        assert self.dev is not None
        try:
            return socket.if_nametoindex(self.dev)
        except OSError:
            return None

    def remove(self) -> bool:
        """Take the VIP off; False if it was not there."""
        def op(ipr: Any) -> bool:
            try:
                idx: Optional[int] = self._resolve(ipr)
            except VipError:
                # Nothing has a subnet containing it (the interface lost its addresses, or the
                # VIP was a /32): remove it wherever it still is.
                idx = None
            removed = False
            for i, plen in self._entries(ipr, idx):
                try:
                    ipr.addr("del", index=i, address=self.ip, prefixlen=plen)
                    removed = True
                except Exception as e:
                    if _netlink_code(e) in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                        continue  # gone meanwhile
                    raise VipError("cannot remove %s from %s: %s" % (self.ip, self.dev, e)) from e
            return removed
        return netlink_call(op)

    def link(self) -> Tuple[int, str]:
        """(ifindex, MAC) of the VIP's interface, resolving it first (what arp.py needs)."""
        self.resolve()
        assert self.dev is not None
        return link_info(self.dev)


# struct ifreq (<net/if.h>): the name, then a union whose largest member is struct ifmap
# {unsigned long mem_start, mem_end; unsigned short base_addr; unsigned char irq, dma, port;}.
# Its size follows the C ABI: 40 bytes on LP64 (x86_64, aarch64), 32 on ILP32 (armhf, i386,
# MIPS32) - so it is computed with the native struct rules ("0L" pads to a long's alignment),
# never written down.  struct ifconf is {int ifc_len; char *ifc_buf;}: "iP" pads the same way.
_SOCKADDR_SIZE = 16
SIOCGIFCONF = 0x8912   # <linux/sockios.h>: the same number on every architecture


def ifreq_size() -> int:
    """sizeof(struct ifreq) for this process's C ABI."""
    import struct
    return IFNAMSIZ + max(_SOCKADDR_SIZE, struct.calcsize("LLHBBB0L"))


def configured_ipv4() -> List[str]:
    """Every IPv4 address configured on this box (this namespace), without netlink.

    SIOCGIFCONF lists each address with its label, secondaries included; it needs
    no pyroute2, so the daemon can tell at once whether a VIP survived a crash
    (and adopt it) before its first heartbeat goes out.  (pyroute2's import
    takes 3-5 s under QEMU TCG and a few MB of the agent's memory; the ioctl is
    one system call.)  Entries are ``struct ifreq`` of ``ifreq_size()`` bytes:
    the name (16), then ``struct sockaddr_in`` - family and port (4), then the
    address in network byte order, so endianness plays no part.
    """
    import array
    import fcntl
    import struct
    entry = ifreq_size()
    ifconf = struct.Struct("iP")
    count = 64
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while True:
            buf = array.array("B", bytes(entry * count))
            addr, _ = buf.buffer_info()
            used = ifconf.unpack(fcntl.ioctl(s.fileno(), SIOCGIFCONF, ifconf.pack(entry * count, addr)))[0]
            if used < entry * count:
                break
            count *= 2   # full: there may be more
    raw = buf.tobytes()[:used]
    sin_addr = IFNAMSIZ + 4
    return [socket.inet_ntoa(raw[i + sin_addr:i + sin_addr + 4]) for i in range(0, used, entry)]
