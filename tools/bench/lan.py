"""Figure 9: the active box's LAN link goes down (issue 14): detection, hand-over, client outage.

Theory of operation
-------------------
One ``Pair`` per timing (a fresh lab, both agents running, node1 holding the
VIP and the web service, the client asking every 25 ms), then, trial after
trial on the same lab: wait a random fraction of a keepalive, ``ip link set
eth0 down`` in node1's namespace with hanode running - time zero is just
before the command - and wait until the client is served by node2; read from
the agents' logs (ms resolution) when node1's LAN adapter reported the loss
(``LAN health now 0``: the netlink event), when it *counted* (after the loss
settle time: the detection), when node2 heard it; from the netlink monitors
when node1 removed and node2 added the VIP; and the client's first answer
from node2.  Then ``ip link set eth0 up`` and wait until node1 serves again
(auto_failback on, once the link has been up for the gain settle time): the
failback is measured from the link coming up.  Double-holder time is summed
over the whole lab.
"""
import random
import subprocess
import time
from typing import Any, Dict, List, Optional, Tuple

from hanode.core import health

from tools.bench import FIGURES
from tools.bench.common import (BenchError, Context, Pair, TIMINGS, dist, first_line, first_served, fmt_dist,
                                machine_line, ms, release_pair)

NAME = "lan"
TITLE = FIGURES[NAME]
METRICS = ("reported_ms", "detect_ms", "peer_heard_ms", "released_ms", "vip_up_ms", "client_ms",
           "failback_ms")


def plan(ctx: Context) -> List[Tuple[str, int]]:
    if ctx.quick:
        return [("tight", 3)]
    return [("tight", 20), ("fast", 20)]


def run(ctx: Context) -> Dict[str, Any]:
    release_pair(ctx)
    timings = [run_timing(ctx, name, trials) for name, trials in plan(ctx)]
    rows = []
    for t in timings:
        s = t["summary"]
        rows.append(["%s (%s/%s)" % (t["name"], t["timing"]["keepalive"], t["timing"]["deadtime"]),
                     "%d" % len(t["trials"]), fmt_dist(s.get("reported_ms")), fmt_dist(s.get("detect_ms")),
                     fmt_dist(s.get("peer_heard_ms")), fmt_dist(s.get("vip_up_ms")),
                     fmt_dist(s.get("client_ms")), fmt_dist(s.get("failback_ms")),
                     "%.0f" % t["double_holder_ms"]])
    notes = ["%s: %s" % (t["name"], e) for t in timings for e in t["errors"]]
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Real agents in namespaces over the paced 19200-baud null-modem; one lab per timing, N "
                   "times 'ip link set eth0 down' in node1's namespace (hanode running, the cable fine) at a "
                   "random phase of the heartbeat, each followed by 'link up' and auto_failback. Time zero = "
                   "just before the link-down command. reported = node1's 'LAN health now 0' log line (the "
                   "netlink event reached the agent); detection = node1's loss counted (after the loss "
                   "settle time, deadtime/5); peer = node2's 'reports LAN health 0' line; VIP up = netlink "
                   "RTM_NEWADDR in node2's namespace; client = the first HTTP GET answered by node2 (every "
                   "25 ms); failback = from 'link up' to node1's first answer (includes the gain settle "
                   "time, 2 x deadtime). Cells: p50 / p95 / max in ms."),
        "table": {"columns": ["timing (keepalive/deadtime)", "trials", "reported", "detection", "peer knows",
                              "VIP up on node2", "client served by node2", "failback after link up",
                              "double VIP ms"],
                  "rows": rows},
        "notes": notes,
        "timings": timings,
    }


def _link(lab: Any, node: str, state: str) -> None:
    subprocess.run(["ip", "-n", lab.ns(node), "link", "set", "eth0", state], check=True, timeout=10)


def run_timing(ctx: Context, name: str, trials: int) -> Dict[str, Any]:
    timing = TIMINGS[name]
    keepalive = ms(timing["keepalive"]) / 1000
    deadtime_ms = int(ms(timing["deadtime"]))
    ctx.say("lan: %s timing (keepalive %s, deadtime %s), %d trials"
            % (name, timing["keepalive"], timing["deadtime"], trials))
    results: List[Dict[str, Any]] = []
    errors: List[str] = []
    with Pair(ctx, name, client_interval=0.025) as pair:
        lab = pair.lab
        if lab.wait_for(lambda: first_served(lab, "node1", 0), 30) is None:
            raise BenchError("the client was never served by node1; see %s" % lab.workdir)
        time.sleep(max(1.0, 2 * keepalive))
        for i in range(trials):
            try:
                r = _trial(lab, keepalive, deadtime_ms)
            except BenchError as e:
                errors.append("trial %d: %s" % (i + 1, e))
                break
            results.append(r)
            ctx.say("lan %s trial %d/%d: detection %s ms, client %s ms, failback %s ms"
                    % (name, i + 1, trials, _r(r.get("detect_ms")), _r(r.get("client_ms")),
                       _r(r.get("failback_ms"))))
        double = lab.double_holder_ms()
    return {"name": name, "timing": dict(timing), "trials": results,
            "summary": {m: dist([r[m] for r in results if r.get(m) is not None]) for m in METRICS},
            "loss_settle_ms": health.loss_settle_ms(deadtime_ms),
            "gain_settle_ms": health.gain_settle_ms(deadtime_ms),
            "double_holder_ms": round(double, 1), "errors": errors}


def _trial(lab: Any, keepalive: float, deadtime_ms: int) -> Dict[str, Any]:
    time.sleep(random.uniform(0, keepalive))
    t0 = time.time()
    _link(lab, "node1", "down")
    if lab.wait_for(lambda: first_served(lab, "node2", t0), 15) is None:
        _link(lab, "node1", "up")
        raise BenchError("node2 never served after node1's link went down; see %s" % lab.workdir)
    served = first_served(lab, "node2", t0)
    time.sleep(0.3)   # the log lines are written
    added = [s for s, _ in lab.vip_intervals("node2") if s >= t0]
    removed = [e for _, e in lab.vip_intervals("node1") if t0 <= e < time.time() - 0.01]

    def rel(t: Optional[float]) -> Optional[float]:
        return None if t is None else round((t - t0) * 1000, 1)
    r = {
        "reported_ms": rel(first_line(lab, "node1", "LAN health now 0", t0 - 0.002)),
        "detect_ms": rel(first_line(lab, "node1", "LAN health 0 (", t0 - 0.002)),
        "peer_heard_ms": rel(first_line(lab, "node2", "node1 reports LAN health 0", t0 - 0.002)),
        "released_ms": rel(removed[0] if removed else None),
        "vip_up_ms": rel(added[0] if added else None),
        "client_ms": rel(served),
    }
    t1 = time.time()
    _link(lab, "node1", "up")
    if lab.wait_for(lambda: first_served(lab, "node1", t1), 30) is None:
        raise BenchError("node1 never got its group back after its link came up; see %s" % lab.workdir)
    r["failback_ms"] = round((first_served(lab, "node1", t1) - t1) * 1000, 1)
    time.sleep(max(0.5, 3 * keepalive))
    return r


def _r(v: Optional[float]) -> str:
    return "-" if v is None else "%.0f" % v
