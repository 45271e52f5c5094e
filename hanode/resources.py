"""Runs haresources groups: start left to right, stop right to left, Heartbeat's way.

Theory of operation
-------------------
A group is one haresources line: ``node1 192.0.2.100 httpd``. Acquiring it
starts each resource left to right; releasing it stops them right to left.

* IP resources (a bare address, ``IPaddr::...``, ``IPaddr2::...``) are handled
  natively: the address is added through netlink (``hanode.vip``) and
  announced with gratuitous ARP (``hanode.arp``: ``garp_count`` rounds
  ``garp_interval_ms`` apart, in the background so the next resource starts at
  once). Releasing cancels a pending announcement and removes the address.
* Other resources are scripts, looked up in ``resource_dirs`` (default
  ``<config dir>/resource.d`` then ``/etc/init.d``; the first regular,
  executable file wins) and called as Heartbeat calls them:
  ``<path> [args...] start|stop|status``, with Heartbeat's ``HA_*`` variables
  in the environment.

Exit codes: start/stop succeed on 0 only. ``status`` is "running" on 0, "not
running" on the LSB codes 1-3 and on 7 (OCF_NOT_RUNNING, which Heartbeat's
resource.d wrappers return); Heartbeat itself decides from the text on stdout
(``*[Nn][Oo][Tt] *[Rr]unning*`` -> no; ``*[Rr]unning*`` or ``*OK*`` -> yes;
anything else -> no), and that rule still applies to other exit codes and
overrides a 0 that comes with "not running" or a usage message (scripts from
before LSB that exit 0 whatever they print).

Acquire skips a resource whose status says it is already running. The first
failed start gives the group up: the failed resource and everything to its
left are stopped, right to left, and acquire returns ``(False, reason)``. A
stop that fails is retried ``stop_retries`` times ``stop_retry_interval_ms``
apart ("Retrying failed stop operation [x]"); if it keeps failing and status
says the resource is still running, release returns ``(False, "... it may
still be running")`` after stopping everything else it can.

Every script run has a deadline (``resource_timeout_ms``, default 30 s). A
script that misses it gets SIGTERM, then SIGKILL, sent to its whole process
group (it runs in a session of its own), and the failure says so. A timed-out
stop is not retried: it would most likely hang again, a full timeout each.

Output: stdout and stderr are read through non-blocking pipes as the script
writes them, split into lines and logged with the script's name; after
``max_output_lines`` lines, or for lines longer than ``max_line_chars``, the
rest is counted and dropped, so a script printing megabytes costs neither
memory nor loop latency. Reading stops shortly after the script exits, even if
a daemon it started still holds the pipe (that pipe is then read in the
background until it closes, so the daemon does not die of SIGPIPE).

One action at a time per group (an ``asyncio.Lock`` per group key); different
groups may run concurrently. ``log(level, text)`` receives every message
(levels: debug, info, warning, error, critical), in Heartbeat's vocabulary.

The runner is the agent's only resource adapter: every action takes a group
*key* (``acquire``, ``release``, ``probe``, ``status``, ``recheck_vips``) and
looks the group up once, here. Importing pyroute2 costs 100+ ms and 9-13 MB
of memory, so it is imported only when an address may have to change:
``start_warm_up`` does it in a worker thread (the daemon calls it when the peer
is late, before a failover needs it), and every action that changes an address
first waits for it (``ready``, which starts it if nobody did): a netlink call
made on the loop thread while the warm-up holds the import lock would stall the
loop. ``active_groups`` (groups whose address is on this box at start: left
over by a crash) and the periodic VIP recheck ask without netlink
(``configured_ipv4``): a standby node never imports pyroute2, an active one
only for its first acquire. The warm-up also resolves every VIP (interface and prefix length:
netlink dumps), so a failover's probe needs no netlink at all and its add is one request
(``Vip.add``); a probe of resolved addresses does not wait for the warm-up either, it only
starts it (the acquire after it waits).

*Probe.* ``probe(key)`` ARP-probes every VIP of the group at once. Someone
answering means "in use"; so does a probe that could not be done (interface
down or gone, no CAP_NET_RAW, an address that resolves to no interface):
"nobody answered" cannot be told from "nobody was asked", and an address taken
blind has two holders as soon as the LAN is back. The node retries; the runner
says why once per episode, and once more when probing works again.

*Conflict watch.* From the moment a probe starts (or an acquire starts adding
the address) until it has been removed, the runner listens for
ARP claiming it from another MAC (``arp.Watch``, RFC 5227 section 2.4): the
probe and the add are not atomic, and another box may add the address in
between, and a holder may answer the probe after its wait (the watch hears it:
while the core is still probing it ignores the report, the probe's own answer
decides; the queue is never drained between the probe and the watch). Each
conflict is passed to ``report_conflicts``'s sink as (group key,
detail naming the address and the other MAC); the core decides whether to
defend (``defend(key)``: one gratuitous ARP per address) or to yield
(``drop_addresses(key)``: the group's addresses are removed at once, without
the group lock; an acquire in progress gives up at its next step, rolls back
and returns a failure; the core's Release then stops the rest).

*VIP recheck.* ``keep_vips(running)`` starts the runner's own periodic task:
every ``VIP_RECHECK_S`` it re-adds and re-announces any VIP missing from a
group that ``running()`` names (an ``ifdown``/``ifup`` or a DHCP client can
remove addresses it did not add). ``close`` stops it.
"""
import asyncio
import fnmatch
import os
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from hanode.realtime import scheduling

LogFn = Callable[[str, str], None]

DEFAULT_TIMEOUT_MS = 30000
VIP_RECHECK_S = 5.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Handed down by systemd to the agent; a script must not talk to systemd in the agent's name.
_PRIVATE_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                "HANODE_WATCHDOG_FD", "HANODE_RESTARTED")
_STATUS_TEXT_BYTES = 4096
# Control characters from a script would corrupt the log's own line structure.
_SANITISE = {c: "?" for c in list(range(0, 9)) + list(range(10, 32)) + [127]}


def _stderr_log(level: str, text: str) -> None:
    sys.stderr.write("%s: %s\n" % (level, text))


def status_says_running(rc: int, stdout: str) -> bool:
    """Decide "running" from a status action's exit code and stdout (see the module docstring)."""
    from hanode.lsb import NOT_RUNNING_TEXT
    text_not = fnmatch.fnmatchcase(stdout, NOT_RUNNING_TEXT)
    text_yes = not text_not and (fnmatch.fnmatchcase(stdout, "*[Rr]unning*") or "OK" in stdout)
    if rc == 0:
        return not text_not and "usage" not in stdout.lower()
    if rc in (1, 2, 3, 7):
        return False
    return text_yes


class ScriptResult:
    """What one script run did."""

    def __init__(self, argv: List[str]):
        self.argv = argv
        self.rc: Optional[int] = None
        self.timed_out = False
        self.error: Optional[str] = None     # could not be run at all
        self.stdout_head = ""                # first few KB of stdout (status text)
        self.stderr_head = ""                # first few KB of stderr (a usage message)
        self.lines = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.duration_s = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and self.error is None

    def why(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return "timed out after %.1f s; its process group was killed" % self.duration_s
        if self.rc is not None and self.rc < 0:
            return "killed by signal %d" % -self.rc
        return "Return code %s from %s" % (self.rc, self.argv[0])


class _OutputSink:
    """Splits a pipe's bytes into lines and logs them, within a line and byte budget."""

    def __init__(self, runner: "ResourceRunner", label: str, level: str, budget: Dict[str, int],
                 result: ScriptResult, head: str):
        self.runner = runner
        self.label = label
        self.level = level
        self.budget = budget
        self.result = result
        self.head = head   # the ScriptResult attribute that keeps the first few KB
        self.partial = bytearray()
        self.skipping = False  # inside an over-long line: drop until its newline

    def feed(self, data: bytes) -> None:
        kept = getattr(self.result, self.head)
        if len(kept) < _STATUS_TEXT_BYTES:
            setattr(self.result, self.head, kept + data[:_STATUS_TEXT_BYTES - len(kept)].decode("utf-8", "replace"))
        if self.budget["lines"] <= 0:
            # Budget spent: just count (a C-speed scan), keep nothing.
            n = data.count(b"\n")
            self.result.dropped_bytes += len(data)
            if n:
                self.result.dropped_lines += n
                self.partial = bytearray()
                self.skipping = data[-1:] != b"\n"
            elif data:
                self.skipping = True
            return
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._append(data[start:])
                return
            self._append(data[start:nl])
            self._end_line()
            start = nl + 1

    def _append(self, chunk: bytes) -> None:
        if self.skipping:
            self.result.dropped_bytes += len(chunk)
            return
        room = self.runner.max_line_chars - len(self.partial)
        if len(chunk) > room:
            self.partial += chunk[:room]
            self.result.dropped_bytes += len(chunk) - room
            self.skipping = True
        else:
            self.partial += chunk

    def _end_line(self) -> None:
        line = self.partial.decode("utf-8", "replace").rstrip("\r").translate(_SANITISE)
        truncated = self.skipping
        self.partial = bytearray()
        self.skipping = False
        if self.budget["lines"] <= 0:
            self.result.dropped_lines += 1
            self.result.dropped_bytes += len(line)
            return
        self.budget["lines"] -= 1
        self.result.lines += 1
        self.runner._log(self.level, "%s: %s%s" % (self.label, line, " [line truncated]" if truncated else ""))

    def close(self) -> None:
        if self.partial or self.skipping:
            self._end_line()


async def _off_loop(fn: Callable[[], Any]) -> Any:
    """A netlink call (a few ms, but 100+ ms on a loaded box) runs in a worker thread, so that
    the agent's loop - and every heartbeat - never waits for it; at the loop thread's scheduling
    policy (``_at_priority``)."""
    return await asyncio.get_running_loop().run_in_executor(None, _at_priority, scheduling(), fn)


def _at_priority(sched: Optional[Tuple[int, Any]], fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in this worker thread with the caller's scheduling (policy and priority), then
    put the thread's own back.  A worker started before the agent went real-time is an ordinary
    thread: the failover's VIP add then waited behind the busy processes it is meant to beat
    (50-90 ms in 3 of 54 loaded failovers, against ~3 ms)."""
    mine = scheduling()
    if sched is None or mine is None or mine == sched:
        return fn()
    try:
        os.sched_setscheduler(0, sched[0], sched[1])
    except OSError:
        return fn()
    try:
        return fn()
    finally:
        try:
            os.sched_setscheduler(0, mine[0], mine[1])
        except OSError:
            pass


def _import_netlink(vips: Iterable[Any] = ()) -> None:
    """Import what the first acquire needs (pyroute2 costs 100+ ms) and resolve ``vips`` (their
    interface and prefix length: netlink dumps, 6-20+ ms), off the loop and before a failover
    needs them; a VIP that cannot be resolved now is resolved (and its error reported) by the
    action that needs it."""
    import hanode.vip
    hanode.vip.import_pyroute2()
    import hanode.arp  # noqa: F401
    for vip in vips:
        try:
            vip.resolve()
        except (hanode.vip.VipError, OSError):
            pass


class _NoWatch:
    """Stands in for a conflict watch that could not be started."""

    def held(self) -> None:
        pass


class ResourceRunner:
    """Starts, stops and checks the resource groups of a Config (see the module docstring)."""

    def __init__(self, config: Any, log: Optional[LogFn] = None, env: Optional[Dict[str, str]] = None, *,
                 stop_retries: int = 3, stop_retry_interval_ms: int = 1000, max_output_lines: int = 200,
                 max_line_chars: int = 1000, kill_grace_ms: int = 1000, drain_ms: int = 200,
                 recheck_s: float = VIP_RECHECK_S):
        self.config = config
        self.log = log or _stderr_log
        self.stop_retries = stop_retries
        self.stop_retry_interval_ms = stop_retry_interval_ms
        self.max_output_lines = max_output_lines
        self.max_line_chars = max_line_chars
        self.kill_grace_ms = kill_grace_ms
        self.drain_ms = drain_ms
        self.recheck_s = recheck_s
        self.config_dir = getattr(config, "config_dir", None) or "/etc/ha.d"
        dirs = getattr(config, "resource_dirs", None)
        self.resource_dirs: List[str] = list(dirs) if dirs else [os.path.join(self.config_dir, "resource.d"),
                                                                   "/etc/init.d"]
        self.timeout_ms = int(getattr(config, "resource_timeout_ms", None) or DEFAULT_TIMEOUT_MS)
        self.monitor_timeout_ms = int(getattr(config, "monitor_timeout_ms", None) or self.timeout_ms)
        self.garp_count = int(getattr(config, "garp_count", 5))
        self.garp_interval_ms = int(getattr(config, "garp_interval_ms", 200))
        self.me = getattr(config, "me", None) or socket.gethostname().lower()
        self.env = self._base_env(env)
        self._groups: Dict[str, Any] = {g.key: g for g in getattr(config, "groups", [])}
        self._locks: Dict[str, asyncio.Lock] = {}
        self._held: set = set()
        self._vips: Dict[str, Any] = {}
        self._garp: Dict[str, "asyncio.Task[Any]"] = {}
        self._lingering: Dict[int, "asyncio.Future[None]"] = {}  # pipes still held by scripts' children
        self._warm: Optional["asyncio.Future[None]"] = None
        self._recheck: Optional["asyncio.Task[None]"] = None
        self._probe_trouble: Dict[str, str] = {}  # group key -> why its last probe could not be done
        self._watches: Dict[str, Any] = {}  # VIP -> its arp.Watch (conflict detection while held)
        self._conflict_sink: Optional[Callable[[str, str], None]] = None
        self._defences: set = set()  # pending defend and drop tasks
        self._abandoned: set = set()  # group keys whose acquire in progress must give up (drop_addresses)
        self._not_lsb: set = set()  # resources whose status said running right after a stop (said once)

    # -- plumbing -----------------------------------------------------------------------------

    def _log(self, level: str, text: str) -> None:
        try:
            self.log(level, text)
        except Exception:  # a broken log sink must not break failover
            pass

    def _base_env(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env.setdefault("PATH", DEFAULT_PATH)
        cfg = self.config
        ha = {
            "HA_CURHOST": self.me,
            "HA_DIR": self.config_dir,
            "HA_RESOURCEDIR": self.resource_dirs[0],
            "HA_RCDIR": os.path.join(self.config_dir, "rc.d"),
            "HA_FUNCS": os.path.join(self.config_dir, "shellfuncs"),
            "HA_LOGD": "yes" if getattr(cfg, "use_logd", False) else "no",
            "HA_DEBUG": str(getattr(cfg, "debug", 0) or 0),
        }
        if getattr(cfg, "auto_failback", "legacy") in ("on", "off"):
            ha["HA_NICEFAILBACK"] = "yes"  # Heartbeat sets these only in nice_failback mode
            ha["HA_DONTASK"] = "yes"
        for var, attr in (("HA_LOGFACILITY", "logfacility"), ("HA_LOGFILE", "logfile"),
                          ("HA_DEBUGLOG", "debugfile")):
            value = getattr(cfg, attr, None)
            if value:
                ha[var] = str(value)
        env.update(ha)
        if extra:
            env.update(extra)
        return env

    def _group(self, key: str) -> Any:
        g = self._groups.get(key)
        if g is None:
            raise KeyError("no resource group %r in haresources" % (key,))
        return g

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _describe(self, g: Any) -> str:
        return " ".join([g.preferred] + [r.token for r in g.resources])

    def locate(self, script: str) -> Optional[str]:
        """First regular executable file named ``script`` in resource_dirs, or None."""
        if "/" in script:
            return None  # names only, as Heartbeat: a path would escape the search directories
        from hanode.configdir import find_script   # the one search rule check-config reports too
        return find_script(self.resource_dirs, script)[0]

    def reconfigure(self, config: Any, groups: Any = None) -> None:
        """Put a reloaded configuration's settings in force (timeouts, gratuitous ARP, the scripts'
        HA_* environment). ``groups``: where to look a group up from now on (``get``, ``items``),
        e.g. the node's own definitions, which it swaps only once a group is stopped there."""
        self.config = config
        self.timeout_ms = int(getattr(config, "resource_timeout_ms", None) or DEFAULT_TIMEOUT_MS)
        self.monitor_timeout_ms = int(getattr(config, "monitor_timeout_ms", None) or self.timeout_ms)
        self.garp_count = int(getattr(config, "garp_count", 5))
        self.garp_interval_ms = int(getattr(config, "garp_interval_ms", 200))
        self.env = self._base_env(None)
        if groups is not None:
            self._groups = groups

    def holds(self, key: str) -> bool:
        return self._group(key).key in self._held

    # -- start-up -----------------------------------------------------------------------------

    def start_warm_up(self) -> None:
        """Import pyroute2 and the ARP module in a worker thread, once (see the module docstring)."""
        if self._warm is None:
            vips = []
            for _key, g in self._groups.items():
                for res in g.resources:
                    if res.is_ip:
                        try:
                            vips.append(self._vip(res))
                        except Exception:   # a bad address: the action that needs it says so
                            pass
            self._warm = asyncio.get_running_loop().run_in_executor(None, _import_netlink, vips)

    async def ready(self) -> None:
        """Wait for the warm-up, starting it if needed (shielded: a cancelled action must not cancel it)."""
        self.start_warm_up()
        await asyncio.shield(self._warm)

    def active_groups(self) -> List[str]:
        """Keys of the groups whose address is configured on this box right now (left over by a
        crash). Asked without netlink, so that the first heartbeat need not wait for pyroute2."""
        from hanode.vip import configured_ipv4
        here = set(configured_ipv4())
        return [key for key, g in self._groups.items() if any(r.is_ip and r.ip in here for r in g.resources)]

    async def found_running(self, scripts: bool = True) -> List[str]:
        """``active_groups``, plus (``scripts``) the groups without an address whose scripts'
        ``status`` says one of them runs: what an agent restart left running, adopted by the next
        agent (a group only partly running is completed by its start, which skips what runs)."""
        found = self.active_groups()
        for key, g in self._groups.items() if scripts else ():
            if key in found or any(r.is_ip for r in g.resources):
                continue
            for res in g.resources:
                if (await self.script_status(res))[0]:
                    found.append(key)
                    break
        return [key for key, _ in self._groups.items() if key in found]   # haresources order

    # -- running scripts ----------------------------------------------------------------------

    async def run_script(self, path: str, args: List[str], action: str,
                         timeout_ms: Optional[int] = None) -> ScriptResult:
        """Run ``path args... action`` with the deadline (default resource_timeout), capturing
        output into the log."""
        argv = [path] + list(args) + [action]
        result = ScriptResult(argv)
        quiet = action == "status"
        level = "debug" if quiet else "info"
        self._log(level, "Running %s" % " ".join(argv))
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=self.env,
                start_new_session=True, close_fds=True, cwd="/")
        except OSError as e:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            result.error = "cannot run %s: %s" % (path, e.strerror or e)
            self._log("error", result.error)
            return result
        os.close(out_w)
        os.close(err_w)
        name = os.path.basename(path)
        budget = {"lines": self.max_output_lines}
        eofs = []
        for fd, label, keep in ((out_r, name, "stdout_head"), (err_r, name + " (stderr)", "stderr_head")):
            sink = _OutputSink(self, label, level, budget, result, keep)
            eof = loop.create_future()
            eofs.append(eof)
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._pipe_readable, loop, fd, sink, eof)
        try:
            try:
                result.rc = await asyncio.wait_for(proc.wait(), (timeout_ms or self.timeout_ms) / 1000.0)
            except asyncio.TimeoutError:
                result.timed_out = True
                result.rc = await self._kill_group(proc, " ".join(argv))
            except asyncio.CancelledError:
                # The agent is shutting down mid-action: leave no half-run script behind.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                raise
            # Output written just before exit is still in the pipes. A daemon the script started
            # without redirecting its output holds them open for good: do not wait for it, but keep
            # reading in the background (closing would kill it with SIGPIPE at its next write).
            await asyncio.wait(eofs, timeout=self.drain_ms / 1000.0)
            for fd, eof in zip((out_r, err_r), eofs):
                if not eof.done():
                    self._lingering[fd] = eof
                    eof.add_done_callback(lambda _f, fd=fd: self._lingering.pop(fd, None))
                    self._log("debug", "%s %s: a process it started keeps its output open; still reading it"
                              % (name, action))
        except BaseException:
            for fd, eof in zip((out_r, err_r), eofs):
                if not eof.done():
                    loop.remove_reader(fd)
                    os.close(fd)
                    eof.cancel()
            raise
        finally:
            result.duration_s = time.monotonic() - started
        if result.dropped_lines or result.dropped_bytes:
            self._log("warning", "%s %s: output too long; not logged: %d more lines, %d bytes in all"
                      % (name, action, result.dropped_lines, result.dropped_bytes))
        if result.timed_out:
            self._log("error", "%s %s timed out after %.1f s; killed its process group"
                      % (name, action, result.duration_s))
        return result

    def _pipe_readable(self, loop: asyncio.AbstractEventLoop, fd: int, sink: _OutputSink,
                       eof: "asyncio.Future[None]") -> None:
        # One chunk per callback, so a chatty script shares the loop fairly with everything else.
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            sink.feed(data)
            return
        sink.close()
        loop.remove_reader(fd)
        os.close(fd)
        if not eof.done():
            eof.set_result(None)

    async def _kill_group(self, proc: Any, what: str) -> Optional[int]:
        # The script runs in its own session: its pid is the process group id of everything it
        # started, daemons included, and nobody else is in that group.
        for sig, wait_s in ((signal.SIGTERM, self.kill_grace_ms / 1000.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                return await asyncio.wait_for(proc.wait(), wait_s)
            except asyncio.TimeoutError:
                continue
        self._log("critical", "%s: process %d survived SIGKILL" % (what, proc.pid))
        return None

    # -- one resource -------------------------------------------------------------------------

    def _vip(self, res: Any) -> Any:
        from hanode.vip import Vip
        vip = self._vips.get(res.token)
        if vip is None:
            vip = self._vips[res.token] = Vip.from_resource(res)
        return vip

    def _announce(self, vip: Any) -> None:
        from hanode import arp
        old = self._garp.pop(vip.ip, None)
        if old is not None:
            old.cancel()
        if self.garp_count <= 0:
            return
        self._log("info", "Sending gratuitous ARP for %s on %s (%d x %d ms)"
                  % (vip.ip, vip.dev, self.garp_count, self.garp_interval_ms))
        task = asyncio.ensure_future(arp.announce(vip.dev, vip.ip, self.garp_count, self.garp_interval_ms))
        self._garp[vip.ip] = task

        def done(t: "asyncio.Task[Any]") -> None:
            if self._garp.get(vip.ip) is t:
                del self._garp[vip.ip]
            if not t.cancelled() and t.exception() is not None:
                self._log("warning", "gratuitous ARP for %s failed: %s" % (vip.ip, t.exception()))
        task.add_done_callback(done)

    async def script_status(self, res: Any) -> Tuple[Optional[bool], str]:
        """(running?, detail); running is None when the script cannot be found or run."""
        path = self.locate(res.script)
        if path is None:
            return None, "Cannot locate resource script %s" % res.script
        r = await self.run_script(path, res.args, "status")
        if r.error or r.timed_out:
            return None, r.why()
        running = status_says_running(r.rc if r.rc is not None else -1, r.stdout_head)
        return running, "exit %s%s" % (r.rc, (": " + r.stdout_head.strip()[:200]) if r.stdout_head.strip() else "")

    async def _start_one(self, res: Any, key: str) -> Tuple[bool, str]:
        if res.is_ip:
            from hanode.vip import VipError
            try:
                vip = self._vip(res)
                if not vip.resolved():   # normally done by the warm-up: no netlink dump on the way
                    await _off_loop(vip.resolve)
                self._watch(key, vip)  # before the add: a rival's probe counts
                if key in self._abandoned:   # yielded on the way here (drop_addresses): do not add it
                    return True, "not added: another box keeps it"
                added = await _off_loop(vip.add)
            except (VipError, OSError) as e:
                self._unwatch(self._vip(res))
                self._log("error", "cannot add %s: %s" % (res.token, e))
                return False, str(e)
            self._watch(key, vip).held()
            where = "%s %s %s" % (vip.ip, "added to" if added else "already on", vip.label or vip.dev)
            if key in self._abandoned:   # yielded during the add: announcing would point the LAN here
                self._log("info", where)
                return True, "not announced: another box keeps it"
            self._announce(vip)   # first: clients wait for it, the log line can wait for them
            self._log("info", where)
            return True, "added" if added else "already present"
        path = self.locate(res.script)
        if path is None:
            msg = "Cannot locate resource script %s" % res.script
            self._log("error", msg)
            return False, msg
        running, detail = await self.script_status(res)
        if running:
            self._log("info", "Resource %s already running (status %s); not starting it" % (res.token, detail))
            return True, "already running"
        r = await self.run_script(path, res.args, "start")
        if not r.ok:
            self._log("error", r.why())
            return False, r.why()
        return True, "started"

    async def _stop_one(self, res: Any) -> Tuple[bool, str]:
        if res.is_ip:
            from hanode.vip import VipError
            vip = self._vip(res)
            task = self._garp.pop(vip.ip, None)
            if task is not None:
                task.cancel()
            last = ""
            for attempt in range(self.stop_retries + 1):
                try:
                    removed = await _off_loop(vip.remove)
                    self._unwatch(vip)
                    self._log("info", "%s %s" % (vip.ip, ("removed from %s" % (vip.label or vip.dev))
                                                 if removed else "was not configured"))
                    return True, "removed" if removed else "not present"
                except (VipError, OSError) as e:
                    last = str(e)
                    self._log("error", "cannot remove %s: %s" % (res.token, e))
                if attempt < self.stop_retries:
                    self._log("info", "Retrying failed stop operation [%s]" % res.token)
                    await asyncio.sleep(self.stop_retry_interval_ms / 1000.0)
            return False, "%s: %s; it may still be configured" % (res.token, last)
        path = self.locate(res.script)
        if path is None:
            # Nothing we could have started with it; say so rather than block the release.
            self._log("warning", "Cannot locate resource script %s; assuming it is stopped" % res.script)
            return True, "script not found"
        r = await self.run_script(path, res.args, "stop")
        attempt = 0
        while not r.ok and not r.timed_out and attempt < self.stop_retries:
            self._log("error", r.why())
            attempt += 1
            await asyncio.sleep(self.stop_retry_interval_ms / 1000.0)
            self._log("info", "Retrying failed stop operation [%s]" % res.token)
            r = await self.run_script(path, res.args, "stop")
        if r.ok:
            return True, "stopped"
        self._log("error", r.why())
        running, detail = await self.script_status(res)
        if running is False:
            self._log("error", "Resource script for %s probably not LSB-compliant." % res.token)
            self._log("warning", "it (%s) MUST succeed on a stop when already stopped" % res.token)
            return True, "stop failed but status says stopped"
        msg = "stop of %s failed (%s, %d attempts); it may still be running" % (res.token, r.why(), attempt + 1)
        self._log("critical", "Resource STOP failure: " + msg)
        return False, msg

    # -- groups -------------------------------------------------------------------------------

    async def acquire(self, key: str) -> Tuple[bool, str]:
        """Start the group left to right; on a failure stop what was started and return (False, why)."""
        g = self._group(key)
        # a drop before this acquire was asked for was for an earlier one; one that comes while it
        # waits for the netlink warm-up or the group's lock is for this one
        self._abandoned.discard(g.key)
        await self.ready()
        async with self._lock(g.key):
            self._log("info", "Acquiring resource group: %s" % self._describe(g))
            notes = []
            for i, res in enumerate(g.resources):
                ok, detail = await self._start_one(res, g.key)
                if ok and g.key in self._abandoned:
                    ok, detail = False, "given up: another box keeps its address"
                if not ok:
                    self._log("critical", "Giving up resources due to failure of %s" % res.token)
                    for done in reversed(g.resources[:i + 1]):
                        stopped, why = await self._stop_one(done)
                        if not stopped:
                            detail += "; and while giving up: " + why
                    self._held.discard(g.key)
                    self._abandoned.discard(g.key)
                    return False, "%s: %s" % (res.token, detail)
                notes.append("%s %s" % (res.token, detail))
            self._held.add(g.key)
            self._log("info", "Resource group %s acquired" % g.key)
            return True, ", ".join(notes)

    async def release(self, key: str) -> Tuple[bool, str]:
        """Stop the group right to left; (False, why) if something may still be running."""
        await self.ready()
        g = self._group(key)
        async with self._lock(g.key):
            self._log("info", "Releasing resource group: %s" % self._describe(g))
            failures = []
            for res in reversed(g.resources):
                ok, detail = await self._stop_one(res)
                if not ok:
                    failures.append(detail)
            self._held.discard(g.key)
            if failures:
                return False, "; ".join(failures)
            self._log("info", "Resource group %s released" % g.key)
            return True, "released"

    async def announce(self, key: str) -> List[str]:
        """Gratuitous ARP again for each VIP of a group we hold (the core's Announce: the peer
        released the group we keep); returns the addresses announced."""
        await self.ready()
        g = self._group(key)
        if g.key not in self._held:
            return []
        announced = []
        for res in g.resources:
            if res.is_ip:
                self._announce(self._vip(res))
                announced.append(self._vip(res).ip)
        return announced

    async def status(self, key: str) -> Dict[str, Any]:
        """Each resource's state: {"group", "held", "state": all|some|none, "resources": [...]}."""
        await self.ready()
        g = self._group(key)
        items = []
        from hanode.vip import VipError
        for res in g.resources:
            if res.is_ip:
                try:
                    running: Optional[bool] = await _off_loop(self._vip(res).present)
                    detail = "on %s" % self._vip(res).dev if running else "not configured"
                except (VipError, OSError) as e:
                    running, detail = None, str(e)
            else:
                running, detail = await self.script_status(res)
            items.append({"resource": res.token, "running": running, "detail": detail})
        count = sum(1 for it in items if it["running"])
        state = "all" if count == len(items) else ("none" if count == 0 else "some")
        return {"group": g.key, "preferred": g.preferred, "held": g.key in self._held, "state": state,
                "resources": items}

    # -- monitoring (monitor_interval; the core decides: hanode/core/monitor.py) -------------

    async def check(self, key: str) -> List[Tuple[str, str]]:
        """Each resource's state for the core's Check, concurrently: (result, detail) in group
        order, result one of monitor.RESULTS.  A script's ``status`` has ``monitor_timeout``; one
        that hangs past it failed (a hung service serves nobody).  An address: still configured
        (asked without netlink)."""
        from hanode.core.monitor import RESULT_FAILED, RESULT_RUNNING, RESULT_UNKNOWN
        from hanode.lsb import classify
        from hanode.vip import configured_ipv4
        g = self._group(key)

        async def one(res: Any) -> Tuple[str, str]:
            if res.is_ip:
                if res.ip in configured_ipv4():
                    return RESULT_RUNNING, "configured"
                return RESULT_FAILED, "%s is not configured" % res.ip
            path = self.locate(res.script)
            if path is None:
                return RESULT_UNKNOWN, "Cannot locate resource script %s" % res.script
            r = await self.run_script(path, res.args, "status", timeout_ms=self.monitor_timeout_ms)
            if r.timed_out:
                return RESULT_FAILED, "status " + r.why()
            if r.error:
                return RESULT_UNKNOWN, r.error
            return classify(r.rc, r.stdout_head, r.stderr_head)
        return list(await asyncio.gather(*(one(res) for res in g.resources)))

    async def restart(self, key: str, index: int) -> Tuple[bool, str]:
        """Restart the group in place from resource ``index`` on (the core's Restart): stop the
        resources from the last down to it, right to left, then start them left to right."""
        g = self._group(key)
        await self.ready()
        async with self._lock(g.key):
            if g.key not in self._held:
                return False, "not held here"
            part = g.resources[index:]
            self._log("info", "Restarting resource group %s from %s: %s"
                      % (g.key, part[0].token, " ".join(r.token for r in part)))
            for res in reversed(part):
                ok, detail = await self._stop_one(res)
                if not ok:
                    return False, "stop of %s: %s" % (res.token, detail)
            for res in part:
                if res.is_ip:
                    ok, detail = await self._start_one(res, g.key)
                else:
                    ok, detail = await self._start_stopped(res)
                if not ok:
                    return False, "start of %s: %s" % (res.token, detail)
            self._log("info", "Resource group %s restarted from %s" % (g.key, part[0].token))
            return True, "restarted"

    async def _start_stopped(self, res: Any) -> Tuple[bool, str]:
        """Start a script resource just stopped by a restart.  Its status must say stopped now;
        one that still says running (exit 0 while stopped) is not LSB-conformant - monitoring
        cannot see it crash - which is said once; it is started anyway (an acquire would skip
        it)."""
        running, detail = await self.script_status(res)
        if running and res.token not in self._not_lsb:
            self._not_lsb.add(res.token)
            self._log("warning", "Resource %s: its status says running right after a successful stop (%s): "
                      "not LSB-conformant (exit 0 while stopped), so monitoring cannot see it fail; "
                      "starting it anyway (said once)" % (res.token, detail))
        path = self.locate(res.script)
        if path is None:
            return False, "Cannot locate resource script %s" % res.script
        r = await self.run_script(path, res.args, "start")
        if not r.ok:
            self._log("error", r.why())
            return False, r.why()
        return True, "started"

    async def probe(self, key: str) -> Tuple[bool, str]:
        """ARP-probe every VIP of the group at once: (in_use, detail) for the core's Probe output.

        in_use is True when anyone on the LAN answered for one of the addresses (detail names
        the address and the MAC), and when a probe could not be done (see the module docstring):
        the address is then never taken blind. The reason is logged once per episode.
        Whether to probe is the core's decision (``vip_probe``; and always after the group was
        yielded in an address conflict), so a Probe is always carried out.
        """
        g = self._group(key)
        from hanode import arp
        from hanode.vip import VipError
        if all(self._vip(res).resolved() for res in g.resources if res.is_ip):
            self.start_warm_up()   # the acquire after the probe needs pyroute2; the probe itself does not
        else:
            await self.ready()
        count = int(getattr(self.config, "probe_count", 3))
        interval = int(getattr(self.config, "probe_interval_ms", 5))
        wait = int(getattr(self.config, "probe_wait_ms", 10))
        vips = []
        problems = []
        for res in g.resources:
            if res.is_ip:
                try:
                    vip = self._vip(res)
                    vips.append(vip if vip.resolved() else await _off_loop(vip.resolve))
                except (VipError, OSError) as e:
                    problems.append("cannot probe %s: %s" % (res.ip, e))
        # the conflict watch listens from before the first probe, so an answer that comes after the
        # probe's wait is still heard (see the module docstring) instead of being drained
        started = [v for v in vips if v.ip not in self._watches]
        for v in vips:
            self._watch(g.key, v)
        answers = await asyncio.gather(*(arp.probe(v.dev, v.ip, count, interval, wait) for v in vips),
                                       return_exceptions=True)
        in_use = []
        for v, a in zip(vips, answers):
            if isinstance(a, BaseException):
                problems.append("cannot probe %s on %s: %s" % (v.ip, v.dev, a))
            elif a:
                in_use.append("%s is answered by %s on %s" % (v.ip, a, v.dev))
        for text in in_use:   # the node says it once, loudly; every retry would flood the log
            self._log("debug", "ARP probe: %s" % text)
        self._note_probe_trouble(g.key, "; ".join(problems))
        if problems or in_use:
            for v in started:   # not taken: nothing of ours to watch
                self._unwatch(v)
        if problems:
            return True, "; ".join(in_use + problems) + " (counted as in use: the address is not taken blind)"
        if in_use:
            return True, "; ".join(in_use)
        for v in vips:   # the window until the add is covered too (see the module docstring)
            self._watch(g.key, v)
        return False, "nobody answered for %s" % (" ".join(v.ip for v in vips) or "(no address)")

    # -- conflict watch (see the module docstring) ---------------------------------------------

    def report_conflicts(self, sink: Callable[[str, str], None]) -> None:
        """Send every address conflict to ``sink(group key, detail)`` (the agent feeds the core)."""
        self._conflict_sink = sink

    def _watch(self, key: str, vip: Any) -> Any:
        """The conflict watch of ``vip`` (resolved), started if it is not running; None if the
        ARP socket cannot be opened (said once: the probe reports the same trouble)."""
        from hanode import arp
        watch = self._watches.get(vip.ip)
        if watch is not None and watch.current():
            return watch
        if watch is not None:
            watch.close()

        def conflict(mac: str) -> None:
            if self._conflict_sink is None:
                return
            try:
                self._conflict_sink(key, "%s is claimed by %s on %s" % (vip.ip, mac, vip.dev))
            except Exception as e:   # runs in the socket's reader: it must go on reading
                self._log("error", "reporting an address conflict of %s failed: %r" % (vip.ip, e))
        try:
            watch = self._watches[vip.ip] = arp.Watch(vip.dev, vip.ip, conflict)
        except arp.ArpError as e:
            self._watches.pop(vip.ip, None)
            self._log("error", "cannot watch %s for address conflicts: %s" % (vip.ip, e))
            return _NoWatch()
        return watch

    def _unwatch(self, vip: Any) -> None:
        watch = self._watches.pop(vip.ip, None)
        if watch is not None:
            watch.close()

    def defend(self, key: str) -> None:
        """Send one gratuitous ARP for each address of the group we hold (RFC 5227 section 2.4
        (c); the core limits it to one per DEFEND_INTERVAL)."""
        from hanode import arp
        for res in self._group(key).resources:
            if res.is_ip and res.token in self._vips and self._vips[res.token].ip in self._watches:
                vip = self._vips[res.token]
                self._log("info", "Defending %s on %s: one gratuitous ARP" % (vip.ip, vip.dev))
                task = asyncio.ensure_future(arp.defend(vip.dev, vip.ip))
                self._defences.add(task)
                task.add_done_callback(self._defended)

    def _defended(self, task: "asyncio.Task[Any]") -> None:
        self._defences.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log("warning", "defending or dropping an address failed: %s" % task.exception())

    def drop_addresses(self, key: str) -> None:
        """Remove the group's addresses now (the core yields them in a conflict), without the
        group lock; an acquire in progress gives up at its next step (see the module docstring)."""
        self._abandoned.add(self._group(key).key)
        task = asyncio.ensure_future(self._drop(key))
        self._defences.add(task)
        task.add_done_callback(self._defended)

    async def _drop(self, key: str) -> None:
        from hanode.vip import VipError
        for res in self._group(key).resources:
            if not res.is_ip:
                continue
            vip = self._vip(res)
            announcing = self._garp.pop(vip.ip, None)
            if announcing is not None:
                announcing.cancel()
            try:
                removed = await _off_loop(vip.remove)
            except (VipError, OSError) as e:
                self._log("error", "cannot drop %s: %s (the release retries)" % (vip.ip, e))
                continue
            if removed:
                self._log("info", "%s dropped from %s (address conflict)" % (vip.ip, vip.label or vip.dev))

    def _note_probe_trouble(self, key: str, why: str) -> None:
        """Log a probe that could not be done once per episode (and when the reason changes),
        and once when probing works again: the node retries every few hundred ms."""
        before = self._probe_trouble.get(key, "")
        if why and why != before:
            self._log("error", "ARP probe of resource group %s could not be done: %s; its address counts "
                      "as in use and is not taken until a probe succeeds (retrying)" % (key, why))
        elif before and not why:
            self._log("info", "ARP probe of resource group %s works again" % key)
        if why:
            self._probe_trouble[key] = why
        else:
            self._probe_trouble.pop(key, None)

    async def recheck_vips(self, key: str) -> List[str]:
        """Re-add and re-announce any VIP of a held group that vanished; return the addresses fixed."""
        from hanode.vip import configured_ipv4
        g = self._group(key)
        here = configured_ipv4()   # no netlink while every address is there: the common case
        if all(res.ip in here for res in g.resources if res.is_ip):
            return []
        await self.ready()
        lock = self._lock(g.key)
        if g.key not in self._held or lock.locked():
            return []  # not ours, or an acquire/release is changing it right now
        from hanode.vip import VipError
        fixed = []
        async with lock:
            for res in g.resources:
                if not res.is_ip:
                    continue
                vip = self._vip(res)
                try:
                    if await _off_loop(vip.present):
                        self._watch(g.key, vip).held()   # a recreated interface needs a new socket
                        continue
                    await _off_loop(vip.add)
                    self._watch(g.key, vip).held()
                except (VipError, OSError) as e:
                    self._log("error", "VIP %s is missing and cannot be re-added: %s" % (vip.ip, e))
                    continue
                self._log("warning", "VIP %s had vanished from %s; re-added" % (vip.ip, vip.label or vip.dev))
                self._announce(vip)
                fixed.append(vip.ip)
        return fixed

    def keep_vips(self, running: Callable[[], Iterable[str]]) -> None:
        """Start the periodic VIP recheck of the groups ``running()`` names (see the module docstring)."""
        self._recheck = asyncio.ensure_future(self._recheck_every(running))

    async def _recheck_every(self, running: Callable[[], Iterable[str]]) -> None:
        while True:
            await asyncio.sleep(self.recheck_s)
            for key in running():
                try:
                    await self.recheck_vips(key)
                except Exception as e:   # never let a recheck end the task
                    self._log("error", "VIP recheck of %s failed: %r" % (key, e))

    async def close(self) -> None:
        """Stop the VIP recheck, cancel pending announcements, stop reading leftover pipes and
        close the ARP sockets (the daemon calls this at shutdown)."""
        loop = asyncio.get_running_loop()
        if self._recheck is not None:
            self._recheck.cancel()
            await asyncio.gather(self._recheck, return_exceptions=True)
            self._recheck = None
        try:
            if self._warm is not None:
                await asyncio.shield(self._warm)
        except Exception as e:
            self._log("error", "importing pyroute2 failed: %r (run tools/setup)" % (e,))
        for fd, eof in list(self._lingering.items()):
            loop.remove_reader(fd)
            os.close(fd)
            eof.cancel()
        self._lingering.clear()
        for watch in self._watches.values():
            watch.close()
        self._watches.clear()
        tasks = list(self._garp.values()) + list(self._defences)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._garp.clear()
        from hanode import arp
        arp.close_sockets()
