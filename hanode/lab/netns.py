"""Network namespaces joined by a bridge: the LAN of the lab and of the integration tests.

Theory of operation
-------------------
Everything is built with iproute2's ``ip`` and lives in namespaces this code
created: a "switch" namespace holds the bridge ``br0`` (STP off, so ports
forward at once), and each member namespace gets one end of a veth pair whose
other end is a port of that bridge.  Nothing touches the host's own namespace,
so a test never reaches the real network.  Names carry the process id and a
counter (``unique_name``): parallel test sessions, and several labs in one
process, never share a namespace name.  Deleting a namespace destroys its
veth ends and bridge with it.
"""
import os
import subprocess
from typing import List, Optional, Sequence

_names_made = 0


class LabError(RuntimeError):
    """A lab or namespace could not be built or used; the message says what ``ip`` answered."""


def unique_name(prefix: str = "hn") -> str:
    """A namespace/object name unique to this process and call (netns names are file names)."""
    global _names_made
    _names_made += 1
    return "%s%dx%d" % (prefix, os.getpid(), _names_made)


def ip(*args: str, check: bool = True, batch: Optional[List[str]] = None,
       timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run ``ip ARGS`` (with ``batch``: ``ip ARGS -batch -`` fed those commands)."""
    argv = ["ip"] + list(args) + (["-batch", "-"] if batch is not None else [])
    text = "".join(line + "\n" for line in batch) if batch is not None else None
    result = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError("%s: %s" % (" ".join(argv) + ("" if text is None else " <<" + text.replace("\n", "; ")),
                                   result.stderr.strip() or "exit status %d" % result.returncode))
    return result


def add_namespace(name: str) -> None:
    """A new network namespace with its loopback up."""
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def delete_namespace(name: str) -> subprocess.CompletedProcess:
    return ip("netns", "del", name, check=False)


def bridge(switch: str, members: Sequence[str], ifname: str) -> None:
    """A bridge br0 in namespace ``switch`` with port p<i> wired to interface ``ifname`` of members[i]."""
    commands = ["link add br0 type bridge stp_state 0", "link set br0 up"]
    for i, member in enumerate(members):
        commands.append("link add p%d type veth peer name %s netns %s" % (i, ifname, member))
        commands.append("link set p%d master br0 up" % i)
    ip("-n", switch, batch=commands)


def configure(ns: str, ifname: str, address: str, mac: Optional[str] = None) -> None:
    """Give ``ifname`` in ``ns`` an address ("192.0.2.11/24"), optionally a MAC, and bring it up."""
    commands = ["link set %s address %s" % (ifname, mac)] if mac else []
    commands += ["addr add %s dev %s" % (address, ifname), "link set %s up" % ifname]
    ip("-n", ns, batch=commands)
