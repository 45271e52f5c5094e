"""A two-box test bed on one Linux machine: namespaces, a LAN, a null-modem, a web service.

Theory of operation
-------------------
``Lab`` builds what `hanode demo`, the integration tests and the benchmarks
need, and always tears it down (``with Lab() as lab:``):

- network namespaces ``<prefix>-node1``, ``-node2`` and ``-client``, each with
  one veth into a fourth namespace ``<prefix>-lan`` that holds a bridge: the
  LAN touches no host interface and has no route out.  Addresses come from
  192.0.2.0/24 only (nodes .11/.12, client .20, VIP .100);
- the serial cable: a ``hanode.lab.cable.NullModem`` between two PTYs at
  19200 baud, with a byte log, reachable as ``<workdir>/<node>/ttyS0``;
- per-node Heartbeat configuration (``ha.cf``, ``authkeys`` mode 600,
  ``haresources``) and a ``webapp`` init script in ``resource.d`` that serves
  the node's name on port 80 (what the classic ``httpd`` resource does);
- ``start(node)``: ``hanode run`` inside the node's namespace, as a real
  process whose PID we keep; ``power_off(node)``: every process we started
  in that namespace killed with SIGKILL, the VIP gone and the LAN link down, as
  a box that lost power; ``power_on(node)`` brings link and agent back;
- watchers: a VIP monitor per node namespace (netlink address events with
  timestamps) and an HTTP client in the client namespace that GETs the VIP
  every ``interval`` and reports each answer, from which outages and the
  double-holder time are computed.

Only processes started here are ever signalled, by PID.
"""
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from hanode.lab.cable import NullModem, PtyEndpoint
from hanode.lab.netns import LabError, add_namespace, bridge, configure, delete_namespace, ip, unique_name
from hanode.lab.presets import KEY, TIMINGS

NODES = ("node1", "node2")
ADDRS = {"node1": "192.0.2.11", "node2": "192.0.2.12", "client": "192.0.2.20"}
VIP = "192.0.2.100"
PREFIXLEN = 24
# the interpreter's options of every hanode process the lab starts, as the appliance runs it
# (image/build's /usr/bin/hanode, `#!/usr/bin/python3 -SOO`): -S, no site module, so none of this
# machine's .pth files (editable-install finders, CA bundle hooks) is in the agent's memory or
# start-up (hanode and its dependencies come from agent_env()'s PYTHONPATH); -OO, no docstrings
# in memory (0.8 MB of the agent's RSS) and no assert statements (hanode's only say what mypy
# cannot see; help texts come from hanode.cli, not from __doc__)
AGENT_PYTHON_OPTIONS = ("-S", "-OO")
LOG_LINE = re.compile(r"^(\d{4}/\d\d/\d\d_\d\d:\d\d:\d\d\.\d{3}) hanode\[\d+\]: (\w+): (.*)$")

WEBAPP = r'''#!/bin/sh
# webapp: the demo's web service, an LSB init script as Heartbeat's httpd would be.
# Serves "<node name>" on port 80.  hanode runs it: start | stop | status.
# A thread a connection, and a connection idle for 2 s dropped: a request whose address moved
# away mid-connection (a failback) never gets its FIN here, and must not hold the service.
PIDFILE="@STATE@/webapp.pid"
case "$1" in
start)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "webapp is running"; exit 0; fi
    @PYTHON@ -c '
import http.server, socketserver, sys
body = (sys.argv[1] + "\n").encode()
class H(http.server.BaseHTTPRequestHandler):
    timeout = 2   # a connection that brings no request is dropped, as httpd does (its Timeout)
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
' "@NODE@" >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    # ready when the port answers (the server takes ~50 ms to start)
    i=0; while [ $i -lt 100 ]; do
        if @PYTHON@ -c 'import socket; socket.create_connection(("127.0.0.1", 80), 0.2)' 2>/dev/null; then exit 0; fi
        i=$((i+1)); sleep 0.02
    done
    echo "webapp did not start"; exit 1 ;;
stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null; rm -f "$PIDFILE"; fi
    exit 0 ;;
status)
    # LSB: 0 running, 1 dead with its pid file left (killed, crashed), 3 not running.  A killed
    # process stays a zombie until whoever inherited it reaps it (a container's init may take
    # seconds): kill -0 still reaches a zombie, so its state in /proc decides.
    if [ -f "$PIDFILE" ]; then
        state=$(sed 's/^.*) //' "/proc/$(cat "$PIDFILE")/stat" 2>/dev/null | cut -c1)
        if [ -n "$state" ] && [ "$state" != Z ]; then echo "webapp is running"; exit 0; fi
        echo "webapp is dead but its pid file exists"; exit 1
    fi
    echo "webapp is not running"; exit 3 ;;
*) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
'''

VIP_MONITOR = r'''
import json, sys, time
from pyroute2 import IPRoute
vip = sys.argv[1]
ipr = IPRoute()
ipr.bind()
def present():
    return any(a.get_attr("IFA_ADDRESS") == vip for a in ipr.get_addr(family=2))
print(json.dumps({"t": time.time(), "event": "initial", "present": present()}), flush=True)
while True:
    for msg in ipr.get():
        if msg.get("event") in ("RTM_NEWADDR", "RTM_DELADDR") and msg.get_attr("IFA_ADDRESS") == vip:
            print(json.dumps({"t": time.time(), "event": "add" if msg["event"] == "RTM_NEWADDR" else "del"}),
                  flush=True)
'''

# One HTTP GET of the page at ADDRESS: (ok, body), body the exception's name when it failed.
HTTP_GET = r'''
import socket


def get(address, timeout):
    body, ok = "", False
    try:
        s = socket.create_connection((address, 80), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        body = data.split(b"\r\n\r\n", 1)[-1].decode().strip()
        ok = data.startswith(b"HTTP/1.0 200") and bool(body)
    except OSError as e:
        body = type(e).__name__
    return ok, body
'''

CLIENT = HTTP_GET + r'''
import json, sys, time
vip, interval = sys.argv[1], float(sys.argv[2])
while True:
    start = time.time()
    ok, body = get(vip, interval)
    print(json.dumps({"t": start, "ok": ok, "body": body}), flush=True)
    time.sleep(max(0.0, interval - (time.time() - start)))
'''


class Watcher:
    """A subprocess printing JSON lines; collected by a thread with arrival times."""

    def __init__(self, argv: List[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: List[Dict[str, Any]] = []
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Lab:
    def __init__(self, timing: str = "tight", auto_failback: str = "on", workdir: Optional[str] = None,
                 prefix: Optional[str] = None, extra_ha_cf: Any = "", haresources: Optional[str] = None,
                 authkeys: Optional[Dict[str, str]] = None, resource_scripts: Optional[Dict[str, str]] = None,
                 vip_probe: bool = True, realtime: bool = False, keep_workdir: bool = False,
                 cable_log: bool = True) -> None:
        self.timing = TIMINGS[timing] if isinstance(timing, str) else dict(timing)
        self.auto_failback = auto_failback
        # unique: two labs in one process never share namespace names, even when an earlier one
        # could not delete its namespaces
        self.prefix = prefix or unique_name()
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="hanode-lab-")
        self.keep_workdir = keep_workdir
        self.extra_ha_cf = extra_ha_cf
        self.haresources = haresources or "node1 %s/%d/eth0 webapp\n" % (VIP, PREFIXLEN)
        self.authkeys = authkeys or {n: "auth 1\n1 hmac-sha256 %s\n" % KEY for n in NODES}
        self.resource_scripts = resource_scripts or {}
        self.vip_probe = vip_probe
        self.realtime = realtime
        self.cable_log = cable_log
        self.namespaces: List[str] = []
        self.procs: Dict[str, subprocess.Popen] = {}
        self.started_at: Dict[str, float] = {}
        self.watchers: Dict[str, Watcher] = {}
        self.cable: Optional[NullModem] = None
        self.powered = {n: False for n in NODES}
        self.marks: List[Tuple[float, str]] = []

    # ------------------------------------------------------------- building
    def ns(self, who: str) -> str:
        return "%s-%s" % (self.prefix, who)

    def node_dir(self, node: str) -> str:
        return os.path.join(self.workdir, node)

    def webapp(self, node: str, verb: str) -> subprocess.CompletedProcess:
        """Run the node's webapp init script (start, stop, status) in its namespace, outside hanode."""
        script = os.path.join(self.node_dir(node), "ha.d", "resource.d", "webapp")
        return subprocess.run(["ip", "netns", "exec", self.ns(node), script, verb], capture_output=True, text=True,
                              timeout=60)

    def __enter__(self) -> "Lab":
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def build(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, addresses on port 80)")
        if shutil.which("ip") is None:
            raise LabError("the 'ip' command (iproute2) is missing: run tools/setup")
        boxes = NODES + ("client",)
        for who in ("lan",) + boxes:
            self.namespaces.append(self.ns(who))
            add_namespace(self.ns(who))
        bridge(self.ns("lan"), [self.ns(who) for who in boxes], "eth0")
        for who in boxes:
            configure(self.ns(who), "eth0", "%s/%d" % (ADDRS[who], PREFIXLEN))
        ends = []
        for node in NODES:
            os.makedirs(os.path.join(self.node_dir(node), "state"), exist_ok=True)
            os.makedirs(os.path.join(self.node_dir(node), "lock"), exist_ok=True)
            ends.append(PtyEndpoint(link=os.path.join(self.node_dir(node), "ttyS0")))
        self.cable = NullModem(ends[0], ends[1], baud=19200,
                               log=os.path.join(self.workdir, "cable.log") if self.cable_log else None)
        self.cable.start()
        for node in NODES:
            self.write_config(node)
        for node in NODES:
            self.watchers["vip-" + node] = Watcher(
                ["ip", "netns", "exec", self.ns(node), sys.executable, "-c", VIP_MONITOR, VIP], "vip-" + node)
        # A monitor sees only what happens after it has bound its netlink socket (it then prints its
        # "initial" line); an agent started before that could add and remove the VIP unseen, and the
        # double-holder time would miss it.  Importing pyroute2 takes seconds on a loaded box.
        for node in NODES:
            watcher = self.watchers["vip-" + node]
            if self.wait_for(lambda: bool(watcher.events) or watcher.proc.poll() is not None, 60) is None \
                    or not watcher.events:
                raise LabError("the VIP monitor in %s did not start (exit status %s)"
                               % (self.ns(node), watcher.proc.poll()))

    def write_config(self, node: str) -> None:
        d = self.node_dir(node)
        ha = os.path.join(d, "ha.d")
        rd = os.path.join(ha, "resource.d")
        os.makedirs(rd, exist_ok=True)
        t = self.timing
        lines = [
            "# written by hanode.lab for %s" % node,
            "keepalive %s" % t["keepalive"], "warntime %s" % t["warntime"],
            "deadtime %s" % t["deadtime"], "initdead %s" % t["initdead"],
            "baud 19200", "serial %s" % os.path.join(d, "ttyS0"),
            "auto_failback %s" % self.auto_failback,
            "node node1", "node node2",
            "logfile %s" % os.path.join(d, "ha-log"),
            "realtime %s" % ("on" if self.realtime else "off"),
            "vip_probe %s" % ("on" if self.vip_probe else "off"),
            "state_dir %s" % os.path.join(d, "state"),
            "control_socket %s" % os.path.join(d, "control.sock"),
            "resource_dir %s" % rd,
            "resource_timeout 10",
        ]
        extra = self.extra_ha_cf.get(node, "") if isinstance(self.extra_ha_cf, dict) else self.extra_ha_cf
        with open(os.path.join(ha, "ha.cf"), "w") as f:
            f.write("\n".join(lines) + "\n" + extra)
        keys = os.path.join(ha, "authkeys")
        with open(keys, "w") as f:
            f.write(self.authkeys[node])
        os.chmod(keys, 0o600)
        with open(os.path.join(ha, "haresources"), "w") as f:
            f.write(self.haresources)
        scripts = {"webapp": WEBAPP}
        scripts.update(self.resource_scripts)
        for name, text in scripts.items():
            path = os.path.join(rd, name)
            with open(path, "w") as f:
                f.write(text.replace("@STATE@", os.path.join(d, "state")).replace("@NODE@", node)
                        .replace("@PYTHON@", sys.executable))
            os.chmod(path, 0o755)

    # ---------------------------------------------------------------- boxes
    def hanode_argv(self, node: str, *args: str) -> List[str]:
        return [sys.executable] + list(AGENT_PYTHON_OPTIONS) + ["-m", "hanode"] + list(args)

    def start(self, node: str, extra: Tuple[str, ...] = (), env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Start `hanode run` for node in its namespace; extra: more arguments; env: more environment."""
        d = self.node_dir(node)
        argv = ["ip", "netns", "exec", self.ns(node)] + self.hanode_argv(
            node, "run", "--config-dir", os.path.join(d, "ha.d"), "--node", node,
            "--lock-dir", os.path.join(d, "lock")) + list(extra)
        out = open(os.path.join(d, "stderr.log"), "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=agent_env(env))
        out.close()
        self.procs[node] = proc
        self.started_at[node] = time.time()
        self.powered[node] = True
        self.mark("%s powered on (hanode pid %d)" % (node, proc.pid))
        return proc

    def ns_pids(self, node: str) -> List[int]:
        result = ip("netns", "pids", self.ns(node), check=False)
        return [int(p) for p in result.stdout.split() if p.isdigit()]

    def kill_node_processes(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Every process in the node's namespace (all started by this lab) except the VIP monitor."""
        keep = set()
        watcher = self.watchers.get("vip-" + node)
        if watcher is not None:
            keep.add(watcher.proc.pid)
        for pid in self.ns_pids(node):
            if pid in keep:
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        proc = self.procs.get(node)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def power_off(self, node: str) -> None:
        """Power loss: processes gone at once, the box's addresses gone, its LAN port dark."""
        self.mark("%s power loss" % node)
        self.kill_node_processes(node)
        ip("-n", self.ns(node), "link", "set", "eth0", "down")
        ip("-n", self.ns(node), "addr", "del", "%s/%d" % (VIP, PREFIXLEN), "dev", "eth0", check=False)
        self.powered[node] = False
        self._clear_pidfiles(node)

    def power_on(self, node: str, **start_args: Any) -> subprocess.Popen:
        ip("-n", self.ns(node), "link", "set", "eth0", "up")
        return self.start(node, **start_args)

    def _clear_pidfiles(self, node: str) -> None:
        state = os.path.join(self.node_dir(node), "state")
        for name in os.listdir(state):
            if name.endswith(".pid"):
                os.unlink(os.path.join(state, name))

    def signal(self, node: str, sig: int) -> None:
        """Signal the node's hanode process (the one we started) by PID."""
        proc = self.procs[node]
        # 'ip netns exec' execs the command, so the Popen PID is hanode itself
        os.kill(proc.pid, sig)

    def cli(self, node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = agent_env()
        argv = self.hanode_argv(node, *args)
        if args and args[0] in ("status", "standby", "takeover"):
            argv += ["--socket", os.path.join(self.node_dir(node), "control.sock")]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)

    def status(self, node: str) -> Optional[Dict[str, Any]]:
        result = self.cli(node, "status", "--json", timeout=10)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def wait_for(self, predicate, timeout: float, interval: float = 0.02) -> Optional[float]:
        start = time.time()
        while time.time() - start < timeout:
            try:
                if predicate():
                    return time.time() - start
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(interval)
        return None

    def holder(self, node_view: str = "node1") -> Optional[str]:
        st = self.status(node_view)
        return st["groups"][0]["held_by"] if st else None

    def log_lines(self, node: str) -> List[Tuple[float, str, str]]:
        """The node's log as (time, LEVEL, message), times as time.time() (the log has milliseconds)."""
        lines = []
        for line in self.log_text(node).splitlines():
            m = LOG_LINE.match(line)
            if m:
                stamp = time.mktime(time.strptime(m.group(1)[:19], "%Y/%m/%d_%H:%M:%S")) + int(m.group(1)[20:]) / 1000
                lines.append((stamp, m.group(2), m.group(3)))
        return lines

    def log_text(self, node: str) -> str:
        try:
            with open(os.path.join(self.node_dir(node), "stderr.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -------------------------------------------------------------- watching
    def start_client(self, interval: float = 0.1) -> None:
        self.watchers["client"] = Watcher(
            ["ip", "netns", "exec", self.ns("client"), sys.executable, "-c", CLIENT, VIP, str(interval)], "client")

    def mark(self, text: str) -> None:
        self.marks.append((time.time(), text))

    def client_events(self) -> List[Dict[str, Any]]:
        w = self.watchers.get("client")
        return list(w.events) if w else []

    def vip_intervals(self, node: str, until: Optional[float] = None) -> List[Tuple[float, float]]:
        """When the VIP was configured on the node: a list of (from, to)."""
        events = list(self.watchers["vip-" + node].events)
        until = until or time.time()
        spans, since = [], None
        for e in events:
            if e["event"] == "initial" and e.get("present"):
                since = e["t"]
            elif e["event"] == "add" and since is None:
                since = e["t"]
            elif e["event"] == "del" and since is not None:
                spans.append((since, e["t"]))
                since = None
        if since is not None:
            spans.append((since, until))
        return spans

    def double_holder_ms(self, since: float = 0.0) -> float:
        """Milliseconds (after `since`) during which both nodes had the VIP configured."""
        a, b = self.vip_intervals("node1"), self.vip_intervals("node2")
        total = 0.0
        for s1, e1 in a:
            for s2, e2 in b:
                total += max(0.0, min(e1, e2) - max(s1, s2, since))
        return total * 1000

    def outages(self, since: float = 0.0) -> List[Tuple[float, float, str, str]]:
        """Client outage windows after `since`: (start, end, last body before, first body after)."""
        events = [e for e in self.client_events() if e["t"] >= since]
        windows = []
        down_since, before = None, ""
        last_ok = ""
        for e in events:
            if e["ok"]:
                if down_since is not None:
                    windows.append((down_since, e["t"], before, e["body"]))
                    down_since = None
                last_ok = e["body"]
            elif down_since is None:
                down_since, before = e["t"], last_ok
        if down_since is not None:
            windows.append((down_since, time.time(), before, ""))
        return windows

    def cable_frames(self) -> Dict[str, Any]:
        """Heartbeat frame sizes on the wire, measured from the cable's byte log.

        A frame is the bytes up to and including a 0x00 delimiter; "sizes" counts them by length
        (a frame cut short - replaced in the UART by a newer one, or by a power loss - and the
        resync 0x00 after it show up with other sizes)."""
        path = os.path.join(self.workdir, "cable.log")
        sizes: Dict[str, List[int]] = {"a>b": [], "b>a": []}
        pending = {"a>b": 0, "b>a": 0}
        try:
            with open(path) as f:
                for line in f:
                    e = json.loads(line)
                    if "data" not in e:
                        continue
                    for byte in bytes.fromhex(e["data"]):
                        pending[e["dir"]] += 1
                        if byte == 0:
                            sizes[e["dir"]].append(pending[e["dir"]])
                            pending[e["dir"]] = 0
        except OSError:
            pass
        all_sizes = sizes["a>b"] + sizes["b>a"]
        common = max(set(all_sizes), key=all_sizes.count) if all_sizes else 0
        histogram: Dict[int, int] = {}
        for n in all_sizes:
            histogram[n] = histogram.get(n, 0) + 1
        return {"frames": len(all_sizes), "bytes_per_frame": common,
                "max_bytes": max(all_sizes) if all_sizes else 0, "sizes": histogram}

    # -------------------------------------------------------------- teardown
    def close(self) -> None:
        for node in NODES:
            if self.ns(node) in self.namespaces:
                try:
                    self.kill_node_processes(node, signal.SIGKILL)
                except LabError:
                    pass
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for w in self.watchers.values():
            w.stop()
        if self.ns("client") in self.namespaces:
            for pid in self.ns_pids("client"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.cable is not None:
            self.cable.close()
            self.cable = None
        for ns in reversed(self.namespaces):
            delete_namespace(ns)
        self.namespaces = []
        if self.own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _repo_root() -> str:
    # hanode/lab/bed.py -> the directory holding the hanode package
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# what `hanode run` imports from outside the standard library (setup.cfg's install_requires)
DEPENDENCIES = ("pyroute2", "sdnotify")


def dependency_dirs() -> List[str]:
    """The directories this Python imports hanode's dependencies from (its site-packages),
    for agents started with -S, which do not add them to sys.path themselves."""
    dirs = []
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue   # missing: the agent says so itself
        origin = os.path.dirname(spec.origin)
        dirs.append(os.path.dirname(origin) if spec.submodule_search_locations else origin)
    return dirs


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside: SIGTERM raises KeyboardInterrupt in this process, so that the labs are torn
    down on the way out.

    A child forked from here without an exec - pyroute2's helper that opens a socket in a
    namespace (``IPRoute(netns=)``), which its parent ends with SIGTERM - inherits the handler;
    there it exits as SIGTERM's default would.  Raised in the child, the interrupt ran the lab's
    teardown from inside the namespace the helper had entered, killing that node's agent."""
    owner = os.getpid()

    def interrupt(*_: Any) -> None:
        if os.getpid() != owner:
            os._exit(128 + signal.SIGTERM)
        raise KeyboardInterrupt()

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def agent_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a hanode process of the lab (agent or command), started with -S."""
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(_dedupe([_repo_root()] + dependency_dirs() + inherited))
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra or {})
    return env


def _dedupe(paths: List[str]) -> List[str]:
    return list(dict.fromkeys(paths))
