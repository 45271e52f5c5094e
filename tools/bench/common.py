"""What every benchmark shares: the machine, statistics, CPU load, and a running pair.

Theory of operation
-------------------
The figures measure real agents: ``Pair`` wraps a ``hanode.lab.bed.Lab`` (three
namespaces on a private bridge, the paced 19200-baud null-modem between two
PTYs, ``hanode run`` on both nodes) without changing it.  It starts both
agents, waits until node1 holds the VIP, and then measures ``window``s: a
stretch of steady operation, optionally with the CPU loaded, line noise, or
both.  A window reads everything it reports from outside the agents:

- the cable's byte log (timestamps of the bytes as they leave the simulated
  line), cut into frames at each 0x00 and verified with the lab's own key, so
  frame sizes, arrival intervals and rejected frames come from the wire;
- ``hanode status --json`` before and after (the agents' counters);
- the node logs (``is dead``, ``Late heartbeat``, ``stalled`` lines);
- ``/proc/<pid>/schedstat`` (CPU time in ns, summed over the agent's threads)
  and ``/proc/<pid>/status`` (RSS) of each agent.

The simulated cable is a thread of this process, while on a real box it is
hardware; so that CPU load does not make the *cable* late, its thread runs
SCHED_FIFO 1 (``Lab`` does not expose that, so ``cable_realtime`` sets it on
the thread's native id).  The agents themselves run as configured.

``Load`` is the "both cores busy" condition: one ``while True: pass`` Python
process per CPU, started here and killed by PID.

Windows are cached by their parameters within one run (``Context.cache``), so
the figures that read the same steady state (wire, jitter, footprint) share it,
and consecutive windows of the same timing run on one pair (``shared_pair``):
building a lab and cold-starting two agents costs seconds.
"""
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from hanode.lab.bed import AGENT_PYTHON_OPTIONS, NODES, Lab, LabError, VIP  # noqa: F401  (LabError, VIP: re-exported for the figures)
from hanode.lab.presets import TIMINGS  # noqa: F401  (re-exported for the figures)

BYTE_TIME_MS = 10 * 1000.0 / 19200   # one 8N1 byte at 19200 baud
LINE_BYTES_PER_S = 19200 / 10.0



REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# imports every hanode module and what the agent loads lazily, so their bytecode gets cached
WARM_UP = """
import importlib, pkgutil, hanode
names = [i.name for i in pkgutil.walk_packages(hanode.__path__, 'hanode.') if not i.name.endswith('__main__')]
for m in names + ['pyroute2', 'sdnotify', 'serial']:
    try:
        importlib.import_module(m)
    except BaseException:
        pass
"""


class BenchError(Exception):
    """A benchmark could not run (says why and where to look)."""


# ------------------------------------------------------------------ context
class Context:
    """Options and shared state of one ``python -m tools.bench`` run."""

    def __init__(self, quick: bool = False, soak_s: Optional[float] = None, verbose: bool = True) -> None:
        self.quick = quick
        self.soak_s = soak_s
        self.failovers: Optional[int] = None   # --failovers N: the failover figure as a soak at the edge timing
        self.timing: Optional[str] = None      # --timing: the one timing of --failovers / the narrow safe soak
        self.loaded = False                    # --loaded: both cores busy and realtime on (issue 17's target)
        self.client_interval_ms: Optional[float] = None   # --client-interval
        self.standing_service = False          # --standing-service: the group is the VIP alone
        self.verbose = verbose
        self.cache: Dict[Any, Dict[str, Any]] = {}
        self.pair: Optional["Pair"] = None   # see shared_pair
        self.pair_key: Any = None
        self.machine = machine()
        self.lab_count = 0
        self.t0 = time.time()
        self.load_seen = self.machine["loadavg"][0]
        # agents cache their bytecode as an installed hanode does (a wheel install compiles it),
        # but outside the work tree; PYTHONDONTWRITEBYTECODE in the caller's environment would
        # otherwise make every start compile the modules changed since the last cache
        self.pycache = tempfile.mkdtemp(prefix="hanode-bench-pyc-")
        self.pycache_warm = False
        self.others_seen = self.machine["other_namespaces"]

    def say(self, text: str) -> None:
        # every progress step also samples how busy the machine is, for the report's caveat
        self.load_seen = max(self.load_seen, os.getloadavg()[0])
        self.others_seen = max(self.others_seen, other_namespaces())
        if self.verbose:
            sys.stderr.write("[bench %6.1f s] %s\n" % (time.time() - self.t0, text))
            sys.stderr.flush()

    def agent_env(self, **extra: str) -> Dict[str, str]:
        env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": self.pycache}
        if not self.pycache_warm:
            # with a cache prefix Python looks for bytecode only there, so the first agent would
            # compile everything it imports (and keep the compiler's memory): fill it first, at
            # the default optimization level and at the agents' (-OO: the .opt-2.pyc files; with
            # the site module, which finds the dependencies here)
            self.pycache_warm = True
            full = dict(os.environ)
            full.update(env)
            full["PYTHONPATH"] = REPO_ROOT
            for options in ([], [o for o in AGENT_PYTHON_OPTIONS if o.startswith("-O")]):
                subprocess.run([sys.executable] + options + ["-c", WARM_UP], env=full, capture_output=True,
                               timeout=300)
        env.update(extra)
        return env

    def close(self) -> None:
        release_pair(self)
        shutil.rmtree(self.pycache, ignore_errors=True)

    def prefix(self) -> str:
        # our own names: other engineers' labs use hn<pid>..., and two of our labs never collide
        self.lab_count += 1
        return "hb%dx%d" % (os.getpid(), self.lab_count)


def machine() -> Dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count() or 1,
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "other_namespaces": other_namespaces(),
    }


def machine_line(m: Dict[str, Any]) -> str:
    return "%d x %s, Linux %s, CPython %s, load %.2f at start%s" % (
        m["nproc"], m["cpu"], m["kernel"], m["python"], m["loadavg"][0],
        (", %d other network namespaces (other tests running)" % m["other_namespaces"])
        if m.get("other_namespaces") else "")


def other_namespaces() -> int:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    mine = "hb%dx" % os.getpid()
    return sum(1 for line in out.splitlines() if line.strip() and not line.startswith(mine))


def is_root() -> bool:
    return os.geteuid() == 0


# --------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def dist(values: Sequence[float], qs: Sequence[float] = (50, 95)) -> Dict[str, Any]:
    """n, min, mean, the given percentiles (keys p50, p95, p99, p99.9) and max, rounded to 0.1."""
    vals = [v for v in values if v is not None]
    out: Dict[str, Any] = {"n": len(vals)}
    if not vals:
        return out
    out["min"] = round(min(vals), 1)
    out["mean"] = round(sum(vals) / len(vals), 1)
    for q in qs:
        out["p%s" % ("%g" % q)] = round(percentile(vals, q), 1)
    out["max"] = round(max(vals), 1)
    return out


def fmt_dist(d: Optional[Dict[str, Any]], keys: Sequence[str] = ("p50", "p95", "max"), unit: str = "") -> str:
    if not d or not d.get("n"):
        return "-"
    return " / ".join(_num(d.get(k)) for k in keys) + unit


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.0f" % v if abs(v) >= 100 else ("%.1f" % v if abs(v) >= 1 else "%.2f" % v)
    return str(v)


def ms(value: Any) -> float:
    """An ha.cf time ("100ms", "1", "1.5s") in ms."""
    text = str(value).strip().lower()
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("s"):
        return float(text[:-1]) * 1000
    return float(text) * 1000


def named_timing(name: str) -> Dict[str, str]:
    """A preset's timing by name, or "KEEPALIVE/DEADTIME" in ms (e.g. "40/120": ``pair_timing``)."""
    if name in TIMINGS:
        return dict(TIMINGS[name])
    try:
        keepalive, deadtime = (int(x) for x in name.split("/"))
    except ValueError:
        raise BenchError("timing %r is neither a preset (%s) nor KEEPALIVE/DEADTIME in ms"
                         % (name, ", ".join(TIMINGS))) from None
    if not 0 < keepalive < deadtime:
        raise BenchError("timing %r: the keepalive must be more than 0 and less than the dead time" % name)
    return pair_timing(keepalive, deadtime)


def pair_timing(keepalive_ms: int, deadtime_ms: int) -> Dict[str, str]:
    """A Lab timing for (keepalive, deadtime): warntime 1.5 x keepalive, so one lost frame counts as late."""
    return {"keepalive": "%dms" % keepalive_ms, "warntime": "%dms" % (keepalive_ms * 3 // 2),
            "deadtime": "%dms" % deadtime_ms, "initdead": "10"}


# ---------------------------------------------------------------- CPU load
class Load:
    """``with Load(n):`` n busy-looping processes (started here, killed by PID)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: List[subprocess.Popen] = []

    def __enter__(self) -> "Load":
        try:
            for _ in range(self.n):
                self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                                   stdin=subprocess.DEVNULL))
            if self.procs:
                time.sleep(0.3)   # past their start-up: from here on they only spin
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


# --------------------------------------------------------------- /proc
def _per_thread(pids: List[int], read_one: Callable[[int, str], int]) -> Optional[Dict[Tuple[int, str], int]]:
    """``read_one(pid, tid)`` for every thread of ``pids``, keyed by (pid, tid); None if every pid is
    gone.  A thread that ends while it is read is left out."""
    snapshot: Dict[Tuple[int, str], int] = {}
    found = False
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        found = True
        for tid in tids:
            try:
                snapshot[(pid, tid)] = read_one(pid, tid)
            except (OSError, ValueError, IndexError):
                pass
    return snapshot if found else None


def grown(before: Optional[Dict[Any, int]], after: Optional[Dict[Any, int]]) -> Optional[int]:
    """What per-thread counters (``_per_thread``) added between two snapshots: a thread's growth,
    all of a thread born in between (a smaller count under a known tid is a new thread with a reused
    tid).  A thread that ended in between is lost with its count: the sum never goes negative, as
    a difference of two sums over the threads alive at each end can (Heartbeat's processes come and
    go; so do an agent's worker threads)."""
    if before is None or after is None:
        return None
    total = 0
    for key, value in after.items():
        old = before.get(key, 0)
        total += value - old if value >= old else value
    return total


def _schedstat_ns(pid: int, tid: str) -> int:
    with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
        return int(f.read().split()[0])


def _voluntary_switches(pid: int, tid: str) -> int:
    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise ValueError("no voluntary_ctxt_switches")


def cpu_ns(pids: List[int]) -> Optional[Dict[Tuple[int, str], int]]:
    """CPU time so far of every thread of ``pids`` in ns (schedstat); ``grown`` of two is the CPU
    time spent between them."""
    return _per_thread(pids, _schedstat_ns)


def cpu_ticks(pid: int) -> Optional[int]:
    """utime + stime of pid from /proc/<pid>/stat (clock ticks)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def wakeups(pids: List[int]) -> Optional[Dict[Tuple[int, str], int]]:
    """Voluntary context switches so far of every thread of ``pids`` (how often each blocked and
    was woken); ``grown`` of two is the wake-ups between them."""
    return _per_thread(pids, _voluntary_switches)


def read_calls(pid: int) -> Optional[int]:
    """Read-type system calls so far (/proc/<pid>/io syscr)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("syscr:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def mem_kb(pid: int) -> Dict[str, int]:
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


# ------------------------------------------------------------------ logs
def log_lines(lab: Lab, node: str) -> List[Tuple[float, str, str]]:
    """(time, LEVEL, message) of the node's log; times have the log's ms resolution."""
    return lab.log_lines(node)


def first_served(lab: Lab, node: str, since: float) -> Optional[float]:
    """When the client was first answered by ``node`` after ``since``, or None."""
    times = [e["t"] for e in lab.client_events() if e["ok"] and e["body"] == node and e["t"] >= since]
    return min(times) if times else None


def first_line(lab: Lab, node: str, text: str, since: float, until: float = math.inf) -> Optional[float]:
    for t, _, msg in log_lines(lab, node):
        if text in msg and since <= t <= until:
            return t
    return None


# ------------------------------------------------------------------ lab stalls
class StallProbe:
    """How long this process stalled in a window, and the VM's steal time in it.

    The simulated cable is a thread of this process: when the process or the whole VM stops for
    longer than the dead time, both directions of the line fall silent at once and a node is
    declared dead - a fault of the lab, not of the agents.  A thread that sleeps ``TICK_S`` and
    records how late it woke sees such a stall as the cable does (it needs the same CPU and the
    same GIL).  One such thread runs pinned to each CPU: on a VM the host takes one CPU away
    at a time (steal), and a thread on the other one runs on time - the cable's thread, asleep
    on the CPU taken, wakes as late as the probe pinned there (a probe free to move was 19 ms
    late while both directions stayed silent 120 ms).  ``with StallProbe() as probe:`` ...
    ``probe.longest_ms``, ``probe.steal_ms``."""
    TICK_S = 0.005

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.steal_ms: Optional[float] = None
        self._stop = threading.Event()
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        self._threads = [threading.Thread(target=self._run, args=(cpu,), name="stall-probe", daemon=True)
                         for cpu in cpus]
        self._steal0: Optional[int] = None

    def __enter__(self) -> "StallProbe":
        self._steal0 = steal_ticks()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        steal1 = steal_ticks()
        if self._steal0 is not None and steal1 is not None:
            self.steal_ms = round((steal1 - self._steal0) * 1000.0 / os.sysconf("SC_CLK_TCK"), 1)

    def _run(self, cpu: Optional[int]) -> None:
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})   # (0: this thread)
            except OSError:
                pass
        due = time.monotonic() + self.TICK_S
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            now = time.monotonic()
            self.longest_ms = max(self.longest_ms, (now - due) * 1000.0)
            due = now + self.TICK_S


def steal_ticks() -> Optional[int]:
    """The VM's steal time so far, all CPUs, in clock ticks (``/proc/stat``; None where unknown)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ cable
@contextlib.contextmanager
def bench_threads_fifo() -> Iterator[None]:
    """Run every thread of this process SCHED_FIFO 1 for a window.

    The cable's SCHED_FIFO thread still needs the GIL; if another thread of this process (the
    main thread, the watchers' collectors) were preempted by the busy processes while holding
    it, the cable would wait - lateness of the lab, not of the agents (48 ms seen with only the
    main thread raised).  These threads only sleep, read pipes and sample /proc during a window;
    processes they start do not inherit the policy (SCHED_RESET_ON_FORK)."""
    before: Dict[int, int] = {}
    for tid in _own_threads():
        try:
            policy = os.sched_getscheduler(tid)
            if policy == os.SCHED_FIFO:
                continue   # the cable's: already real-time
            os.sched_setscheduler(tid, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(1))
            before[tid] = policy
        except (OSError, AttributeError):
            pass
    try:
        yield
    finally:
        for tid, policy in before.items():
            try:
                os.sched_setscheduler(tid, policy, os.sched_param(0))
            except OSError:
                pass


def _own_threads() -> List[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [threading.get_native_id()]


def watchers_realtime(lab: Lab) -> List[str]:
    """Run the lab's observers (the client, the VIP monitors, sniffers: they stand for other
    machines on the LAN) SCHED_FIFO 1, so that busy loops on the agents' CPUs do not make the
    *measurement* late; the agents and their services keep their own policy.  Returns whom."""
    done = []
    for name, w in lab.watchers.items():
        try:
            os.sched_setscheduler(w.proc.pid, os.SCHED_FIFO, os.sched_param(1))
            done.append(name)
        except (OSError, AttributeError):
            pass
    return done


def cable_realtime(lab: Lab) -> bool:
    """Run the lab's cable thread SCHED_FIFO 1 (see the module docstring)."""
    thread = getattr(lab.cable, "_thread", None)
    tid = getattr(thread, "native_id", None)
    if tid is None:
        return False
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
        return True
    except (OSError, AttributeError):
        return False


def lab_auth(lab: Lab) -> Any:
    """The Auth the lab's nodes use, from their own configuration."""
    from hanode.configdir import load
    from hanode.core.auth import Auth
    cfg = load(os.path.join(lab.node_dir("node1"), "ha.d"), me="node1")
    return Auth.from_config(cfg)


def cable_frames(lab: Lab, auth: Any, since: float = 0.0,
                 until: float = math.inf) -> Dict[str, List[Tuple[float, int, str]]]:
    """Frames on each direction of the cable: (time the 0x00 left the line, bytes, verdict).

    Verdict is "ok" or decode_one's reason ("bad_tag", "garbage", ...).  a>b is
    node1 -> node2.  Bytes before ``since`` only complete a frame; frames ending
    outside [since, until] are left out.
    """
    from hanode.core.frame import decode_one
    out: Dict[str, List[Tuple[float, int, str]]] = {"a>b": [], "b>a": []}
    pending = {"a>b": bytearray(), "b>a": bytearray()}
    for t, d, data in cable_chunks(lab, until):
        buf = pending[d]
        for i, byte in enumerate(data):
            if byte != 0:
                buf.append(byte)
                continue
            end = byte_time(t, data, i)
            if since <= end <= until:
                if len(buf) == 0:
                    verdict = "empty"
                else:
                    frame, verdict = decode_one(bytes(buf), auth)
                out[d].append((end, len(buf) + 1, verdict))
            buf.clear()
    return out


def cable_chunks(lab: Lab, until: float = math.inf) -> Iterator[Tuple[float, str, bytes]]:
    """(time, direction, bytes) of each chunk in the cable's byte log, up to a second past until."""
    try:
        f = open(os.path.join(lab.workdir, "cable.log"))
    except OSError:
        return
    with f:
        for n, line in enumerate(f):
            if n % 100 == 0:
                time.sleep(0)   # the GIL to the cable, a thread of this process that is still running
            if '"data"' not in line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue   # the last line may be half written
            if e["t"] > until + 1.0:
                break
            yield e["t"], e["dir"], bytes.fromhex(e["data"])


def byte_time(t: float, chunk: bytes, i: int) -> float:
    """When byte i of a chunk logged at t left the line: the chunk's time is its last byte's."""
    return t - (len(chunk) - 1 - i) * BYTE_TIME_MS / 1000.0


def intervals_ms(frames: List[Tuple[float, int, str]]) -> List[float]:
    ok = [t for t, _, v in frames if v == "ok"]
    return [(b - a) * 1000.0 for a, b in zip(ok, ok[1:])]


# ------------------------------------------------------------------ a pair
def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(interval)
    return None


class Pair:
    """Both agents running in a Lab, node1 holding the VIP.  ``with Pair(ctx, timing) as p:``."""

    def __init__(self, ctx: Context, timing: Any, realtime: bool = False, client_interval: Optional[float] = None,
                 lab_args: Optional[Dict[str, Any]] = None) -> None:
        self.ctx = ctx
        self.timing = TIMINGS[timing] if isinstance(timing, str) else dict(timing)
        self.realtime = realtime
        self.client_interval = client_interval
        self.lab = Lab(timing=self.timing, realtime=realtime, prefix=ctx.prefix(), **(lab_args or {}))
        self.auth: Any = None
        self.cable_rt = False

    def __enter__(self) -> "Pair":
        try:
            self.lab.__enter__()
            self.cable_rt = cable_realtime(self.lab)
            self.auth = lab_auth(self.lab)
            if self.client_interval:
                self.lab.start_client(self.client_interval)
            for node in NODES:
                self.lab.start(node, env=self.ctx.agent_env())
            self.wait_held("node1", ms(self.timing["initdead"]) / 1000 + 30)
        except BaseException:
            self.lab.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lab.close()

    def wait_held(self, node: str, timeout: float, since: float = 0.0) -> float:
        """Wait until node has the VIP (its VIP monitor saw it added after ``since``); returns when."""
        def added() -> Optional[float]:
            spans = [s for s, _ in self.lab.vip_intervals(node) if s >= since]
            return spans[0] if spans else None
        t = wait_for(added, timeout)
        if t is None:
            raise BenchError("%s did not take the VIP within %.0f s; logs in %s (node dirs, stderr.log)"
                             % (node, timeout, self.lab.workdir))
        return t

    def pids(self) -> Dict[str, int]:
        return {n: p.pid for n, p in self.lab.procs.items() if p.poll() is None}

    def statuses(self) -> Dict[str, Optional[Dict[str, Any]]]:
        """``hanode status`` of each powered node, asked on its control socket from here."""
        from hanode.control import ControlError, request
        out: Dict[str, Optional[Dict[str, Any]]] = {}
        for n in NODES:
            if self.lab.powered.get(n):
                try:
                    out[n] = request("status", os.path.join(self.lab.node_dir(n), "control.sock"), timeout=10)
                except (ControlError, OSError):
                    out[n] = None
        return out

    def window(self, seconds: float, load: int = 0, ber: float = 0.0, sample_every: float = 1.0) -> Dict[str, Any]:
        """Measure ``seconds`` of steady operation; see the module docstring."""
        lab = self.lab
        before = self.statuses()
        nm_before = lab.cable.counters() if lab.cable else {}
        pids = self.pids()
        with Load(load), bench_threads_fifo():
            if ber:
                lab.cable.set_ber(ber)
            t0 = time.time()
            cpu0 = {n: (cpu_ns([p]), cpu_ticks(p), wakeups([p]), read_calls(p)) for n, p in pids.items()}
            mem: Dict[str, Dict[str, int]] = {}
            while time.time() - t0 < seconds:
                time.sleep(min(sample_every, max(0.0, seconds - (time.time() - t0))))
                for n, p in pids.items():
                    m = mem_kb(p)
                    if m.get("VmRSS", 0) >= mem.get(n, {}).get("VmRSS", 0):
                        mem[n] = m
            cpu1 = {n: (cpu_ns([p]), cpu_ticks(p), wakeups([p]), read_calls(p)) for n, p in pids.items()}
            t1 = time.time()
            if ber:
                lab.cable.set_ber(0.0)
        nm_after = lab.cable.counters() if lab.cable else {}
        time.sleep(0.3)   # the cable log is flushed every 0.1 s
        after = self.statuses()
        span = t1 - t0
        clk = os.sysconf("SC_CLK_TCK")
        cpu = {}
        for n in pids:
            (ns0, tk0, wk0, rd0), (ns1, tk1, wk1, rd1) = cpu0[n], cpu1[n]
            spent_ns, woken = grown(ns0, ns1), grown(wk0, wk1)
            cpu[n] = {
                "wakeups_per_s": round(woken / span, 1) if woken is not None else None,
                "reads_per_s": round((rd1 - rd0) / span, 1) if rd0 is not None and rd1 is not None else None,
                "cpu_pct": round(spent_ns / 1e9 / span * 100, 3) if spent_ns is not None else None,
                "cpu_pct_stat": (round((tk1 - tk0) / clk / span * 100, 3)
                                 if tk0 is not None and tk1 is not None else None),
                "rss_kb": mem.get(n, {}).get("VmRSS"), "hwm_kb": mem.get(n, {}).get("VmHWM"),
                "rss_anon_kb": mem.get(n, {}).get("RssAnon"), "threads": mem.get(n, {}).get("Threads"),
            }
        frames = cable_frames(lab, self.auth, t0, t1)
        logs = {n: [(t, lvl, msg) for t, lvl, msg in log_lines(lab, n) if t0 <= t <= t1] for n in NODES}
        counters = {}
        agent = {}
        for n in NODES:
            b, a = before.get(n), after.get(n)
            if b and a:
                counters[n] = _counter_delta(b["counters"], a["counters"])
                # uart_replaced: a frame still unsent when the next was due, flushed on purpose
                agent[n] = _counter_delta({k: v for k, v in b.get("agent", {}).items() if k != "pid"},
                                          {k: v for k, v in a.get("agent", {}).items() if k != "pid"})
        nm = {}
        for d in ("a>b", "b>a"):
            if d in nm_before and d in nm_after:
                nm[d] = {k: nm_after[d][k] - nm_before[d].get(k, 0)
                         for k in ("carried", "corrupted", "bits_flipped", "dropped")}
                # how late the cable's own thread delivered a byte: a lifetime maximum, so known for
                # this window only when the window raised it
                late = nm_after[d].get("late_us_max", 0)
                nm[d]["late_ms_max"] = round(late / 1000.0, 1) if late > nm_before[d].get("late_us_max", 0) else None
        return {
            "timing": dict(self.timing), "seconds": round(span, 2), "load": load, "ber": ber,
            "realtime": self.realtime, "cable_fifo": self.cable_rt,
            "frames": frames, "logs": logs, "counters": counters, "agent": agent, "nullmodem": nm, "cpu": cpu,
            "cable_frames": lab.cable_frames(),
            "false_failovers": {n: sum(1 for _, _, m in logs[n] if "is dead" in m) for n in NODES},
            "stalls": {n: sum(1 for _, _, m in logs[n] if "stalled" in m) for n in NODES},
        }


def _counter_delta(b: Dict[str, Any], a: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in a.items():
        if isinstance(v, dict):
            out[k] = _counter_delta(b.get(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v - b.get(k, 0)
    return out


def shared_pair(ctx: Context, timing: Any, realtime: bool = False) -> Pair:
    """The context's open pair if it has this timing, else a new one (the old one closed first,
    so no idle pair keeps running in the background of another measurement)."""
    t = TIMINGS[timing] if isinstance(timing, str) else dict(timing)
    key = (tuple(sorted(t.items())), realtime)
    if ctx.pair is not None and ctx.pair_key == key:
        return ctx.pair
    release_pair(ctx)
    pair = Pair(ctx, t, realtime=realtime)
    pair.__enter__()
    ctx.pair, ctx.pair_key = pair, key
    time.sleep(1.0)   # past the cold start's flurry of state frames
    return pair


def release_pair(ctx: Context) -> None:
    if ctx.pair is not None:
        pair, ctx.pair, ctx.pair_key = ctx.pair, None, None
        pair.__exit__(None, None, None)


def steady(ctx: Context, timing: Any, seconds: float, load: int = 0, realtime: bool = False,
           ber: float = 0.0) -> Dict[str, Any]:
    """One cached window on the shared pair of that timing (see Context.cache)."""
    t = TIMINGS[timing] if isinstance(timing, str) else dict(timing)
    key = (tuple(sorted(t.items())), seconds, load, realtime, ber)
    if key not in ctx.cache:
        ctx.say("steady window: keepalive %s deadtime %s, %s s, load %d, realtime %s, BER %g"
                % (t["keepalive"], t["deadtime"], seconds, load, realtime, ber))
        ctx.cache[key] = shared_pair(ctx, t, realtime).window(seconds, load=load, ber=ber)
    return ctx.cache[key]


def find_steady(ctx: Context, keepalive_ms: float, load: int = 0, realtime: bool = False,
                ber: float = 0.0) -> Optional[Dict[str, Any]]:
    """A cached window with this keepalive and conditions, whatever its deadtime and length."""
    best = None
    for key, w in ctx.cache.items():
        t = dict(key[0])
        if ms(t["keepalive"]) == keepalive_ms and key[2:] == (load, realtime, ber):
            if best is None or w["seconds"] > best["seconds"]:
                best = w
    return best
