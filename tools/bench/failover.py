"""Figure 1: failover after a power loss, and failback, at classic and tight timings.

Theory of operation
-------------------
One ``Pair`` per timing (a fresh lab, both agents running, node1 holding the
VIP and the web service), an HTTP client in the client namespace asking the
VIP every 25 ms (50 ms at the classic timing), and an ARP sniffer there too:
an AF_PACKET socket with kernel receive timestamps (SO_TIMESTAMPNS), so the
time a gratuitous ARP reaches the LAN does not depend on when the sniffer got
the CPU.  Then, trial after trial on the same lab:

1. wait a random fraction of a keepalive (the power loss lands anywhere in the
   heartbeat cycle), then ``power_loss``: every process in node1's namespace
   (listed beforehand from /proc) is SIGKILLed at once - time zero - and its
   LAN port goes down right after (``link_down_ms`` says when), then
   ``lab.power_off`` does the rest;
2. wait until the client is served by node2, then read what happened:
   detection (node2's log line ``node node1: is dead``; the log has ms
   resolution), the same measured from node1's last heartbeat on the cable
   (the dead time plus one tick, whatever the phase), node2's first ARP probe
   and first gratuitous ARP (sniffer), the VIP appearing on node2 (netlink
   monitor in node2's namespace) and the client's first answer from node2;
3. ``lab.power_on("node1")`` and wait until node1 serves again
   (auto_failback on): the failback outage is the client's window of failed
   requests that ends with node1's first answer.

Double-holder time (the VIP on both nodes at once) is summed over the whole
lab from the two netlink monitors.

The client asks every 25 ms, so it learns of the move up to 25 ms (one
interval, plus a connect that timed out against the dead box) after the VIP
and the GARP are there: the client outage is the agents' part *plus* the
measurement's granularity.  ``--client-interval MS`` asks more often.

Issue 17's condition (``--failovers N --loaded [--timing K/D]``): one busy-loop
process per CPU for the whole series (``common.Load``: the power losses, the
failovers and the failbacks all run on a busy box), ``realtime on`` in both
agents, and the lab's observers (client, sniffer, VIP monitors: other machines
on a real LAN) SCHED_FIFO 1 so that the load delays the agents, not the
measurement.  The lab's group is ``VIP webapp``: the client outage then
includes starting the web service (a Python process and a readiness poll in
a shell script: 100-400 ms on a busy box).  ``--standing-service`` makes the
group the VIP alone with the web service running on both boxes all the time
(a service bound to 0.0.0.0, as many VIP-only setups run): what is left is
the agents' part - detection, probe, add, GARP - and the client's interval.
"""
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from hanode.lab.bed import Watcher

from tools.bench import FIGURES
from tools.bench.common import (NODES, BenchError, Context, Load, Pair, VIP, cable_frames, dist, first_line,
                                first_served, fmt_dist, machine_line, bench_threads_fifo, ms, named_timing,
                                release_pair, watchers_realtime)

NAME = "failover"
TITLE = FIGURES[NAME]

SNIFFER = r'''
import json, socket, struct, sys, time
vip = socket.inet_aton(sys.argv[1])
SO_TIMESTAMPNS = 35
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((sys.argv[2], 0))
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
print(json.dumps({"t": time.time(), "kind": "ready"}), flush=True)
while True:
    pkt, anc, _, _ = s.recvmsg(256, 64)
    t = time.time()
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("@qq", data[:16])
            t = sec + nsec / 1e9
    if len(pkt) < 42:
        continue
    op = struct.unpack("!H", pkt[20:22])[0]
    sha, spa, tpa = pkt[22:28], pkt[28:32], pkt[38:42]
    if spa == vip and tpa == vip:
        kind = "garp"
    elif spa == b"\0\0\0\0" and tpa == vip:
        kind = "probe"
    elif spa == vip:
        kind = "reply"
    elif tpa == vip:
        kind = "request"
    else:
        continue
    print(json.dumps({"t": t, "kind": kind, "op": op, "src": sha.hex()}), flush=True)
'''

METRICS = ("detect_ms", "detect_after_last_beat_ms", "probe_ms", "vip_up_ms", "garp_ms", "client_ms",
           "client_window_ms", "failback_ms", "failback_outage_ms", "handover_gap_ms")


def plan(ctx: Context) -> List[Tuple[str, int]]:
    if ctx.failovers:   # --failovers N: a soak at one timing alone (the tightest preset unless --timing)
        return [(ctx.timing or "edge", ctx.failovers)]
    if ctx.quick:
        return [("tight", 2), ("fast", 2)]
    return [("classic", 3), ("tight", 20), ("fast", 20), ("edge", 20)]


def run(ctx: Context) -> Dict[str, Any]:
    rows = []
    timings = []
    release_pair(ctx)
    for name, trials in plan(ctx):
        timings.append(run_timing(ctx, name, trials))
    for t in timings:
        s = t["summary"]
        rows.append(["%s (%s/%s)%s" % (t["name"], t["timing"]["keepalive"], t["timing"]["deadtime"],
                                        _conditions(t)),
                     "%d" % len(t["trials"]),
                     fmt_dist(s.get("detect_ms")), fmt_dist(s.get("detect_after_last_beat_ms")),
                     fmt_dist(s.get("vip_up_ms")), fmt_dist(s.get("garp_ms")), fmt_dist(s.get("client_ms")),
                     fmt_dist(s.get("client_ms"), ("p99",)),
                     fmt_dist(s.get("failback_outage_ms")), "%.0f" % t["double_holder_ms"]])
    notes = []
    if ctx.quick:
        notes.append("--quick: 2 trials each at tight and fast; the classic timing (15 s dead time a trial) "
                     "and edge are in the full run only")
    for t in timings:
        for e in t["errors"]:
            notes.append("%s: %s" % (t["name"], e))
        if t["double_spans"]:
            notes.append("%s: VIP on both nodes: %s" % (t["name"], "; ".join(
                "%.0f ms from %s ms after the power loss of trial %s" % (d["ms"], d["after_loss_ms"],
                                                                        "-" if d["trial"] is None else d["trial"] + 1)
                for d in t["double_spans"])))
        if t["loaded"]:
            notes.append("%s: %d busy-loop processes and realtime on throughout; load average (1 min) %.2f "
                         "before the series, up to %.2f during it; observers SCHED_FIFO: %s"
                         % (t["name"], t["load_processes"], t["loadavg_before"], t["loadavg_max"],
                            ", ".join(t["observers_fifo"]) or "none (not permitted)"))
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Real agents in namespaces over the paced 19200-baud null-modem; one lab per timing, "
                   "N power losses of node1 (SIGKILL of every process in its namespace + LAN link down) "
                   "at a random phase of the heartbeat, each followed by power-on and auto_failback. "
                   "Time zero = the SIGKILL (the link goes down a few ms later). "
                   "detection = node2's 'is dead' log line (ms resolution); "
                   "after last beat = the same from node1's last frame on the cable; VIP up = "
                   "netlink RTM_NEWADDR in node2's namespace; GARP = first gratuitous ARP from node2 seen "
                   "by an AF_PACKET socket in the client namespace (kernel timestamp); client = start of "
                   "the first HTTP GET answered by node2 (client every 25 ms, 50 ms classic, unless the row "
                   "says otherwise: the outage includes up to one interval of the client's own); failback "
                   "outage = the client's failed-request window ending at node1's first answer. "
                   "Row conditions: load = one busy loop per CPU, rt = realtime on, VIP only = the group "
                   "is the VIP alone, the web service running on both boxes. "
                   "Cells: p50 / p95 / max in ms."),
        "table": {"columns": ["timing (keepalive/deadtime)", "trials", "detection", "after last beat",
                              "VIP up", "first GARP", "client outage", "client p99", "failback outage",
                              "double VIP ms"],
                  "rows": rows},
        "notes": notes,
        "timings": timings,
    }


def _mac(lab: Any, node: str) -> str:
    out = subprocess.run(["ip", "-n", lab.ns(node), "-o", "link", "show", "dev", "eth0"],
                         capture_output=True, text=True, timeout=10).stdout
    words = out.split()
    return words[words.index("link/ether") + 1].replace(":", "") if "link/ether" in words else ""


def _conditions(t: Dict[str, Any]) -> str:
    words = (["load %d" % t["load_processes"]] if t.get("load_processes") else []) + \
        (["rt"] if t.get("realtime") else []) + (["VIP only"] if t.get("standing_service") else []) + \
        (["client %g ms" % t["client_interval_ms"]] if t.get("client_interval_ms") not in (25, 50) else [])
    return (" " + ", ".join(words)) if words else ""


def run_timing(ctx: Context, name: str, trials: int) -> Dict[str, Any]:
    timing = named_timing(name)
    keepalive = ms(timing["keepalive"]) / 1000
    deadtime = ms(timing["deadtime"]) / 1000
    interval = (ctx.client_interval_ms / 1000.0 if ctx.client_interval_ms
                else 0.05 if name == "classic" else 0.025)
    loaded = ctx.loaded and bool(ctx.failovers)   # issue 17's condition applies to the --failovers series
    standing = ctx.standing_service and bool(ctx.failovers)
    load = ctx.machine["nproc"] if loaded else 0
    ctx.say("failover: %s timing (keepalive %s, deadtime %s), %d trials%s"
            % (name, timing["keepalive"], timing["deadtime"], trials,
               ", %d busy processes, realtime on" % load if loaded else ""))
    results: List[Dict[str, Any]] = []
    errors: List[str] = []
    timeline: Dict[str, Any] = {}
    lab_args = {"haresources": "node1 %s/24/eth0\n" % VIP} if standing else None
    loadavg_before, loadavg_max = os.getloadavg()[0], 0.0
    observers: List[str] = []
    with Pair(ctx, timing, realtime=loaded, client_interval=interval, lab_args=lab_args) as pair:
        lab = pair.lab
        if standing:
            for node in ("node1", "node2"):
                _start_service(lab, node)
        sniffer = Watcher(["ip", "netns", "exec", lab.ns("client"), sys.executable, "-c", SNIFFER, VIP, "eth0"],
                          "arp")
        lab.watchers["arp"] = sniffer   # the lab stops it with the others
        if not any(e.get("kind") == "ready" for e in _wait_events(sniffer, 5)):
            errors.append("ARP sniffer did not start (no AF_PACKET in the client namespace?): GARP times skipped")
        macs = {n: _mac(lab, n) for n in ("node1", "node2")}
        if first_served(lab, "node1", 0) is None and \
                pair.lab.wait_for(lambda: first_served(lab, "node1", 0), 30) is None:
            raise BenchError("the client was never served by node1; see %s" % lab.workdir)
        if loaded:
            observers = watchers_realtime(lab)
        port = PortSwitch(lab, "node1")
        time.sleep(max(1.0, 2 * keepalive))
        with Load(load), (bench_threads_fifo() if loaded else _nothing()), contextlib.closing(port):
            for i in range(trials):
                loadavg_max = max(loadavg_max, os.getloadavg()[0])
                try:
                    r, tl = _trial(pair, sniffer, macs, keepalive, deadtime, interval, standing, port)
                except BenchError as e:
                    errors.append("trial %d: %s" % (i + 1, e))
                    lab.keep_workdir = True   # the error points there
                    break
                results.append(r)
                timeline[str(i)] = tl
                ctx.say("failover %s trial %d/%d: detection %s ms, VIP %s ms, client %s ms, failback outage %s ms"
                        % (name, i + 1, trials, _r(r.get("detect_ms")), _r(r.get("vip_up_ms")),
                           _r(r.get("client_ms")), _r(r.get("failback_outage_ms"))))
            loadavg_max = max(loadavg_max, os.getloadavg()[0])
        double = lab.double_holder_ms()
        doubles = _double_spans(lab, [r["mark"] for r in results])
    summary = {m: dist([r[m] for r in results if r.get(m) is not None], (50, 95, 99)) for m in METRICS}
    # keep the timeline of the median trial (by client outage) for --plot
    chosen = None
    if results:
        order = sorted(range(len(results)), key=lambda k: results[k].get("client_ms") or 0)
        chosen = order[len(order) // 2]
    return {"name": name, "timing": dict(timing), "client_interval_ms": interval * 1000,
            "trials": results, "summary": summary, "double_holder_ms": round(double, 1),
            "double_spans": doubles,
            "loaded": loaded, "load_processes": load, "realtime": loaded, "standing_service": standing,
            "loadavg_before": round(loadavg_before, 2), "loadavg_max": round(loadavg_max, 2),
            "observers_fifo": observers,
            "errors": errors, "timeline": timeline.get(str(chosen)) if chosen is not None else None}


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _start_service(lab: Any, node: str) -> None:
    """The lab's web service on ``node`` outside hanode (``--standing-service``), by its own init
    script; it is one of the node's processes, so a power loss kills it with the rest."""
    r = lab.webapp(node, "start")
    if r.returncode != 0:
        raise BenchError("the web service did not start on %s: %s%s" % (node, r.stdout, r.stderr))


def _double_spans(lab: Any, marks: List[float]) -> List[Dict[str, Any]]:
    """Each stretch with the VIP on both nodes: when (after which trial's power loss, in ms) and
    how long, so that a double holder in the table can be found in its trial."""
    out = []
    for s1, e1 in lab.vip_intervals("node1"):
        for s2, e2 in lab.vip_intervals("node2"):
            start, end = max(s1, s2), min(e1, e2)
            if end > start:
                before = [i for i, m in enumerate(marks) if m <= start]
                trial = before[-1] if before else None
                out.append({"trial": trial, "after_loss_ms": round((start - marks[trial]) * 1000, 1)
                            if trial is not None else None, "ms": round((end - start) * 1000, 1)})
    return out


def _r(v: Optional[float]) -> str:
    return "-" if v is None else "%.0f" % v


def _wait_events(w: Watcher, timeout: float) -> List[Dict[str, Any]]:
    deadline = time.time() + timeout
    while time.time() < deadline and not w.events:
        time.sleep(0.02)
    return list(w.events)


def netns_pids(lab: Any, node: str) -> List[int]:
    """PIDs in the node's namespace, read from /proc here (``ip netns pids`` is a process
    start, which under load takes long enough to blur the moment of the power loss)."""
    ns = os.stat("/run/netns/" + lab.ns(node))
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat("/proc/%s/ns/net" % entry)
            except OSError:
                continue
            if (st.st_ino, st.st_dev) == (ns.st_ino, ns.st_dev):
                pids.append(int(entry))
    return pids


class PortSwitch:
    """A netlink socket opened inside a node's namespace once (pyroute2's ``IPRoute(netns=)``),
    so that a power loss takes the node's LAN port down and its addresses away a millisecond
    after the kill.  Through ``ip`` (a process start: 20-140 ms on a busy box) the dead box's
    kernel still answered the survivor's ARP probe - the probe rightly found the VIP in use and
    the failover waited a probe retry - and its VIP counted as a second holder meanwhile: the
    lab's slowness, not the agents'."""

    def __init__(self, lab: Any, node: str) -> None:
        from pyroute2 import IPRoute
        self.ipr = IPRoute(netns=lab.ns(node))
        self.index = self.ipr.link_lookup(ifname="eth0")[0]

    def cut(self) -> None:
        self.ipr.link("set", index=self.index, state="down")
        try:
            self.ipr.addr("del", index=self.index, address=VIP, prefixlen=24)
        except Exception:   # not there (a box that did not hold it): nothing to take away
            pass

    def close(self) -> None:
        self.ipr.close()


def power_loss(lab: Any, node: str, port: Optional[PortSwitch] = None) -> Tuple[float, float]:
    """SIGKILL every process of ours in the node's namespace at one moment, then its LAN port
    down (through ``port`` when given: see ``PortSwitch``), then ``lab.power_off`` for the rest
    (stragglers, the VIP, pid files, the lab's mark).  Returns (time of the kill, time the link
    was down)."""
    keep = {w.proc.pid for name, w in lab.watchers.items() if name == "vip-" + node}
    pids = [p for p in netns_pids(lab, node) if p not in keep]
    t_kill = time.time()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if port is not None:
        port.cut()
    else:
        subprocess.run(["ip", "-n", lab.ns(node), "link", "set", "eth0", "down"], capture_output=True, timeout=20)
    t_down = time.time()
    lab.power_off(node)
    return t_kill, t_down


def _record_unserved(lab: Any, sniffer: Watcher, macs: Dict[str, str], mark: float) -> str:
    """What the lab saw around a failover nobody was served after, into the kept workdir (the
    observers' events live in this process and are gone with it): the client's requests, the
    ARP frames on the LAN, both VIP monitors, the client's neighbour table and which processes
    still ran in each namespace.  Returns the file's path."""
    def since(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [e for e in events if e.get("t", mark) >= mark - 2]
    record = {
        "power_loss_at": mark, "macs": macs,
        "client": since(lab.client_events()),
        "arp": since(sniffer.events),
        "vip": {n: since(lab.watchers["vip-" + n].events) for n in NODES if "vip-" + n in lab.watchers},
        "alive": {name: w.proc.poll() is None for name, w in lab.watchers.items()},
        "neighbours": subprocess.run(["ip", "-n", lab.ns("client"), "-s", "neigh"], capture_output=True,
                                     text=True, timeout=20).stdout,
        "processes": {who: netns_pids(lab, who) for who in NODES + ("client",)},
    }
    path = os.path.join(lab.workdir, "unserved.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    return path


def _trial(pair: Pair, sniffer: Watcher, macs: Dict[str, str], keepalive: float, deadtime: float,
           interval: float, standing: bool = False,
           port: Optional[PortSwitch] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    lab = pair.lab
    time.sleep(random.uniform(0, keepalive))
    mark, link_down = power_loss(lab, "node1", port)
    served = lab.wait_for(lambda: first_served(lab, "node2", mark), deadtime + 20)
    if served is None:
        where = _record_unserved(lab, sniffer, macs, mark)
        raise BenchError("node2 did not serve within deadtime + 20 s; see %s" % where)
    served_at = first_served(lab, "node2", mark)
    time.sleep(0.4)   # the GARP, the monitors' events and the cable log catch up
    # the log is written by the agent's writer thread, which busy CPUs can hold back for longer;
    # the line carries its own time stamp, so waiting for it does not change the figure
    lab.wait_for(lambda: first_line(lab, "node2", "is dead", mark) is not None, 5.0)

    def rel(t: Optional[float]) -> Optional[float]:
        return None if t is None else round((t - mark) * 1000, 1)

    dead = first_line(lab, "node2", "is dead", mark)
    vip_adds = [s for s, _ in lab.vip_intervals("node2") if s >= mark]
    arp = [e for e in sniffer.events if e.get("t", 0) >= mark and e.get("src") == macs["node2"]]
    probe = min([e["t"] for e in arp if e["kind"] == "probe"], default=None)
    garp = min([e["t"] for e in arp if e["kind"] == "garp"], default=None)
    frames = cable_frames(lab, pair.auth, mark - 3 * keepalive - 1, (dead or served_at) + 0.5)
    beats = [t for t, _, v in frames["a>b"] if v == "ok" and t <= (dead or served_at)]
    last_beat = max(beats) if beats else None
    windows = [w for w in lab.outages(mark - 2 * interval) if w[1] >= served_at - 1e-6]
    window = (served_at - windows[0][0]) * 1000 if windows and windows[0][0] <= served_at else 0.0
    r: Dict[str, Any] = {
        "mark": mark,
        "link_down_ms": rel(link_down),
        "detect_ms": rel(dead),
        "detect_after_last_beat_ms": round((dead - last_beat) * 1000, 1) if dead and last_beat else None,
        "last_beat_before_loss_ms": rel(last_beat),
        "probe_ms": rel(probe), "vip_up_ms": rel(vip_adds[0] if vip_adds else None),
        "garp_ms": rel(garp), "client_ms": rel(served_at), "client_window_ms": round(window, 1),
    }
    tl = {
        "node1_beats_ms": [rel(t) for t in beats[-12:]],
        "node2_beats_ms": [rel(t) for t, _, v in frames["b>a"] if v == "ok"][-40:],
        "events_ms": {k: r[k] for k in ("detect_ms", "probe_ms", "vip_up_ms", "garp_ms", "client_ms")},
        "client": [(rel(e["t"]), e["ok"], e["body"]) for e in lab.client_events()
                   if mark - 0.3 <= e["t"] <= served_at + 0.3],
    }
    # failback
    t_on = time.time()
    if standing:   # the box boots its service as it boots hanode
        subprocess.run(["ip", "-n", lab.ns("node1"), "link", "set", "eth0", "up"], capture_output=True, timeout=20)
        _start_service(lab, "node1")
    lab.power_on("node1", env=pair.ctx.agent_env())
    back = lab.wait_for(lambda: first_served(lab, "node1", t_on), 60)
    if back is None:
        raise BenchError("node1 never served again after power-on; see %s" % lab.workdir)
    back_at = first_served(lab, "node1", t_on)
    windows = [w for w in lab.outages(t_on) if abs(w[1] - back_at) < 1e-6]
    r["failback_ms"] = round((back_at - t_on) * 1000, 1)
    r["failback_outage_ms"] = round((back_at - windows[0][0]) * 1000, 1) if windows else 0.0
    dels = [e for _, e in lab.vip_intervals("node2") if t_on <= e <= back_at + 1]
    adds = [s for s, _ in lab.vip_intervals("node1") if s >= t_on]
    r["handover_gap_ms"] = round((adds[0] - dels[0]) * 1000, 1) if dels and adds else None
    ready = first_line(lab, "node1", "READY", t_on)
    r["node1_ready_ms"] = round((ready - t_on) * 1000, 1) if ready else None
    time.sleep(max(1.0, 2 * keepalive))   # steady again before the next power loss
    return r, tl
