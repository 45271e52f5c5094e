"""Network-namespace helpers for the integration tests.

Theory of operation
-------------------
Every test that touches the network builds its own little world: a "switch"
namespace holding a Linux bridge, and N node namespaces, each with a veth whose
other end is a port of that bridge, built by ``hanode.lab.netns`` (the same code
as the lab's LAN). Nothing is created in the host's own namespace (not even the
veth ends), so tests never touch the real network and can run in parallel:
names carry the pid and a counter. Addresses come only
from 192.0.2.0/24 (and 198.51.100.0/24 for a second LAN); no route out exists.

Code runs inside a namespace in one of three ways:

* ``ns_run(ns, argv)`` - a command under ``ip netns exec`` (a fresh process,
  with /sys remounted for that namespace);
* ``in_netns(ns, fn, *args)`` - a Python callable in a forked child that did
  ``setns(CLONE_NEWNET)``; coroutine functions are run with ``asyncio.run``.
  The return value (or the exception with its traceback) comes back pickled.
  Closures and lambdas work because the child is a fork, not a new interpreter;
* ``spawn_in_netns(ns, fn, *args)`` - the same in the background: the child can
  call ``signal_ready()`` once it is listening, and the parent waits for that
  with ``task.wait_ready()`` before acting, so there are no sleeps in tests.

A forked child only switches its network namespace, not its mount namespace,
so it must not rely on /sys/class/net (netlink, ioctls and sockets are fine).

Teardown: ``Lan.close()`` kills (by pid) the children this module started in
its namespaces, then deletes the namespaces, which destroys the veths and the
bridge with them. It runs from a ``finally`` in the fixtures.
"""
import ctypes
import os
import pickle
import select
import shlex
import signal
import subprocess
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from hanode.lab.netns import add_namespace, bridge, configure, delete_namespace, unique_name

CLONE_NEWNET = 0x40000000
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_READY_FD: Optional[int] = None  # set in a spawned child: signal_ready() writes here


def have_netns_privileges() -> bool:
    import shutil
    return os.geteuid() == 0 and shutil.which("ip") is not None and os.path.isdir("/proc/self/ns")


def run(argv: Union[str, Sequence[str]], check: bool = True, timeout: float = 20.0,
        input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run a command in the test's own namespace, capturing output; raise with the output on failure."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    proc = subprocess.run(list(argv), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError("command failed (exit %d): %s\nstdout: %s\nstderr: %s" % (
            proc.returncode, " ".join(argv), proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace")))
    return proc


def ns_run(ns: str, argv: Union[str, Sequence[str]], check: bool = True, timeout: float = 20.0,
           input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run a command inside namespace ``ns`` (``ip netns exec``)."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    return run(["ip", "netns", "exec", ns] + list(argv), check=check, timeout=timeout, input=input)


def ns_python(ns: str, code: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run Python source in a fresh interpreter inside ``ns``, with the repository importable."""
    env_code = "import sys; sys.path.insert(0, %r)\n" % REPO_ROOT
    return ns_run(ns, [sys.executable, "-c", env_code + code], check=check, timeout=timeout)


_libc = None


def setns(ns: str) -> None:
    """Move the calling thread into network namespace ``ns`` (by its /run/netns name)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (ns, os.strerror(err)))
    finally:
        os.close(fd)


def signal_ready() -> None:
    """Called by a function running under spawn_in_netns once it is ready (e.g. listening)."""
    if _READY_FD is not None:
        os.write(_READY_FD, b"R")


class NsCallError(AssertionError):
    """The function raised inside the namespace; the message carries the child's traceback."""


class NsTask:
    """A forked child running a Python callable inside a namespace."""

    def __init__(self, ns: str, fn: Callable, args: tuple, kwargs: dict):
        global _READY_FD
        self.ns = ns
        self.name = getattr(fn, "__name__", repr(fn))
        res_r, res_w = os.pipe()
        rdy_r, rdy_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            status = 0
            try:
                os.close(res_r)
                os.close(rdy_r)
                _READY_FD = rdy_w
                setns(ns)
                if _is_coroutine_function(fn):
                    import asyncio
                    value = asyncio.run(fn(*args, **kwargs))
                else:
                    value = fn(*args, **kwargs)
                payload = pickle.dumps(("ok", value))
            except BaseException as e:  # the parent re-raises it with the traceback
                status = 1
                payload = pickle.dumps(("error", "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())))
            try:
                _write_all(res_w, payload)
            finally:
                os._exit(status)
        os.close(res_w)
        os.close(rdy_w)
        self.pid: Optional[int] = pid
        self._res_r = res_r
        self._rdy_r = rdy_r
        self._buf = bytearray()
        self._done = False
        self._value: Any = None
        _LIVE_CHILDREN.setdefault(ns, set()).add(pid)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the child called signal_ready() (or fail if it ended or timed out first)."""
        r, _, _ = select.select([self._rdy_r], [], [], timeout)
        if not r:
            self.kill()
            raise TimeoutError("%s in %s did not signal ready within %.1f s" % (self.name, self.ns, timeout))
        if os.read(self._rdy_r, 1) != b"R":
            self.result(timeout=5.0)  # re-raises the child's error
            raise NsCallError("%s in %s ended without signalling ready" % (self.name, self.ns))

    def result(self, timeout: float = 20.0) -> Any:
        """The callable's return value; re-raises its exception as NsCallError with its traceback."""
        if self._done:
            return self._value
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise TimeoutError("%s in %s did not finish within %.1f s" % (self.name, self.ns, timeout))
            r, _, _ = select.select([self._res_r], [], [], left)
            if r:
                chunk = os.read(self._res_r, 65536)
                if not chunk:
                    break
                self._buf += chunk
        os.close(self._res_r)
        os.close(self._rdy_r)
        self._reap()
        self._done = True
        if not self._buf:
            raise NsCallError("%s in %s died without a result" % (self.name, self.ns))
        kind, value = pickle.loads(bytes(self._buf))
        if kind == "error":
            raise NsCallError("in namespace %s, %s raised %s" % (self.ns, self.name, value))
        self._value = value
        return value

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def _reap(self) -> None:
        if self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            _LIVE_CHILDREN.get(self.ns, set()).discard(self.pid)
            self.pid = None


_LIVE_CHILDREN: Dict[str, set] = {}


def _is_coroutine_function(fn: Callable) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def in_netns(ns: str, fn: Callable, *args: Any, timeout: float = 20.0, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` inside namespace ``ns`` and return its (picklable) result."""
    return NsTask(ns, fn, args, kwargs).result(timeout=timeout)


def spawn_in_netns(ns: str, fn: Callable, *args: Any, **kwargs: Any) -> NsTask:
    """Start ``fn`` inside ``ns`` in the background; collect with ``.result()``."""
    return NsTask(ns, fn, args, kwargs)


def kill_children(ns: str) -> None:
    """Kill (by pid) the children this module started in ``ns`` that are still running."""
    for pid in list(_LIVE_CHILDREN.get(ns, ())):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    _LIVE_CHILDREN.pop(ns, None)


class Lan:
    """N node namespaces on one bridged Ethernet segment, plus optional extra segments.

    ``lan.nodes[i]`` is node i's namespace name; on the first segment its interface is
    ``lan.ifname`` (default ``eth0``) with address ``lan.addr(i)`` (192.0.2.<first_host+i>/24)
    and MAC ``lan.mac(i)``. ``add_segment("198.51.100", "eth1")`` joins the same nodes to a
    second bridge. Use as a context manager or call ``close()`` in a finally.
    """

    def __init__(self, n: int = 2, subnet: str = "192.0.2", prefixlen: int = 24, ifname: str = "eth0",
                 first_host: int = 1, prefix: str = "hn"):
        if not 1 <= n <= 50:
            raise ValueError("n must be 1..50")
        self.n = n
        self.ifname = ifname
        self.subnet = subnet
        self.prefixlen = prefixlen
        self.first_host = first_host
        self.nodes: List[str] = []
        self.switches: List[str] = []
        self._namespaces: List[str] = []
        self.segments: List[Dict[str, Any]] = []
        try:
            for i in range(n):
                self.nodes.append(self._add_ns(unique_name(prefix + "n")))
            self.add_segment(subnet, ifname, prefixlen=prefixlen, first_host=first_host)
        except BaseException:
            self.close()
            raise

    def _add_ns(self, name: str) -> str:
        self._namespaces.append(name)
        add_namespace(name)
        return name

    def add_segment(self, subnet: str, ifname: str, prefixlen: int = 24, first_host: int = 1) -> Dict[str, Any]:
        """Join every node to a new bridge (in its own namespace) with ``subnet.<first_host+i>``."""
        if not (subnet.startswith("192.0.2") or subnet.startswith("198.51.100")):
            raise ValueError("test addresses must come from 192.0.2.0/24 or 198.51.100.0/24, not %s" % subnet)
        seg_no = len(self.segments)
        sw = self._add_ns(unique_name("hns"))
        self.switches.append(sw)
        bridge(sw, self.nodes, ifname)
        for i, node in enumerate(self.nodes):
            configure(node, ifname, "%s.%d/%d" % (subnet, first_host + i, prefixlen), mac=_mac(seg_no, first_host + i))
        seg = {"switch": sw, "subnet": subnet, "ifname": ifname, "prefixlen": prefixlen, "first_host": first_host,
               "no": seg_no}
        self.segments.append(seg)
        return seg

    def addr(self, i: int, segment: int = 0) -> str:
        seg = self.segments[segment]
        return "%s.%d" % (seg["subnet"], seg["first_host"] + i)

    def mac(self, i: int, segment: int = 0) -> str:
        return _mac(segment, self.segments[segment]["first_host"] + i)

    def run(self, i: int, argv: Union[str, Sequence[str]], **kw: Any) -> subprocess.CompletedProcess:
        return ns_run(self.nodes[i], argv, **kw)

    def call(self, i: int, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return in_netns(self.nodes[i], fn, *args, **kwargs)

    def spawn(self, i: int, fn: Callable, *args: Any, **kwargs: Any) -> NsTask:
        return spawn_in_netns(self.nodes[i], fn, *args, **kwargs)

    def close(self) -> None:
        errors = []
        for ns in reversed(self._namespaces):
            kill_children(ns)
            proc = delete_namespace(ns)
            if proc.returncode != 0 and os.path.exists("/run/netns/" + ns):
                errors.append("%s: %s" % (ns, proc.stderr.strip()))
        self._namespaces = []
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))

    def __enter__(self) -> "Lan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _mac(segment: int, host: int) -> str:
    """A locally administered MAC that says which segment and host it is (02:68:6e = "hn")."""
    return "02:68:6e:%02x:%02x:%02x" % (segment, host >> 8 & 0xFF, host & 0xFF)


def namespaces_alive(names: Iterable[str]) -> List[str]:
    """Which of ``names`` still exist (used by the teardown test)."""
    return [n for n in names if os.path.exists("/run/netns/" + n)]
