"""Figure 9: a crashed service on the active box: detection and restart in place (issue 14).

Theory of operation
-------------------
One ``Pair`` at the tight timing with ``monitor_interval`` set (``INTERVAL``;
``monitor_failures`` high enough that the group never moves: this figure
measures the restart in place), an HTTP client in the client namespace asking
the VIP every 25 ms.  Trial after trial on the same lab:

1. wait a random fraction of the monitor interval (the crash lands anywhere in
   the check cycle), then SIGKILL the web service on node1 (its PID from its
   pid file) - time zero;
2. wait until the client is served by node1 again, then read: detection =
   node1's log line "... failed its check" (ms resolution), restart = its
   "restarted in place" line, client = the first HTTP GET answered after time
   zero, outage = the client's window of failed requests.

Detection is bounded by the interval plus one status run (the interval counts
from the end of the previous check); the restart adds the script's stop and
start.  Double-holder time (the VIP on both nodes) is summed from the two
netlink monitors: it must stay 0 (a restart in place never releases the group).
"""
import os
import random
import signal
import time
from typing import Any, Dict, List, Optional

from tools.bench import FIGURES
from tools.bench.common import BenchError, Context, Pair, dist, first_line, fmt_dist, machine_line, release_pair

NAME = "monitor"
TITLE = FIGURES[NAME]
INTERVAL_MS = 1000
MONITOR = "monitor_interval %dms\nmonitor_failures 100\nmonitor_window 3600\n" % INTERVAL_MS
METRICS = ("detect_ms", "restarted_ms", "client_ms", "outage_ms")


def run(ctx: Context) -> Dict[str, Any]:
    trials = 3 if ctx.quick else 30
    release_pair(ctx)
    results: List[Dict[str, Any]] = []
    errors: List[str] = []
    with Pair(ctx, "tight", client_interval=0.025, lab_args={"extra_ha_cf": MONITOR}) as pair:
        lab = pair.lab
        _wait_watched(pair)
        for n in range(trials):
            # each trial starts right after a passing check (_wait_watched): a uniform phase in the cycle
            time.sleep(random.uniform(0, INTERVAL_MS / 1000.0))
            try:
                results.append(_trial(pair))
            except BenchError as e:
                errors.append("trial %d: %s" % (n + 1, e))
            ctx.say("monitor: trial %d/%d" % (n + 1, trials))
        double = lab.double_holder_ms()
    summary = {m: dist([r[m] for r in results if r.get(m) is not None]) for m in METRICS}
    row = ["tight (100ms/500ms), monitor_interval %d ms" % INTERVAL_MS, "%d" % len(results),
           fmt_dist(summary["detect_ms"]), fmt_dist(summary["restarted_ms"]), fmt_dist(summary["client_ms"]),
           fmt_dist(summary["outage_ms"]), "%.0f" % double]
    notes = ["--quick: 3 trials"] if ctx.quick else []
    notes += errors
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Real agents in namespaces over the paced 19200-baud null-modem, tight timing, "
                   "monitor_interval %d ms; N SIGKILLs of the lab's web service on node1 (PID from its pid file) "
                   "at a random phase of the check cycle. Time zero = the SIGKILL. detection = node1's "
                   "'failed its check' log line (ms resolution); restarted = its 'restarted in place' line "
                   "(the script's stop and start, python's start-up included); client = the first HTTP GET "
                   "answered after time zero (client every 25 ms); outage = the client's failed-request "
                   "window. Cells: p50 / p95 / max in ms." % INTERVAL_MS),
        "table": {"columns": ["timing", "trials", "detection", "restarted", "client served", "client outage",
                              "double VIP ms"], "rows": [row]},
        "notes": notes,
        "trials": results,
        "summary": summary,
        "double_holder_ms": round(double, 1),
    }


def _webapp_pid(pair: Pair) -> Optional[int]:
    try:
        with open(os.path.join(pair.lab.node_dir("node1"), "state", "webapp.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _watched(pair: Pair) -> bool:
    st = pair.statuses().get("node1")
    if not st:
        return False
    m = st["groups"][0]["monitor"]
    return m["state"] == "waiting" and all(r["result"] == "running" for r in m["resources"])


def _wait_watched(pair: Pair, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _watched(pair):
            return
        time.sleep(0.05)
    raise BenchError("node1 does not watch its group (monitor) within %.0f s; logs in %s"
                     % (timeout, pair.lab.workdir))


def _trial(pair: Pair) -> Dict[str, Any]:
    lab = pair.lab
    pid = _webapp_pid(pair)
    if pid is None:
        raise BenchError("no webapp pid file on node1")
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)   # the web service the lab's script started: its PID, from its pid file
    deadline = t0 + INTERVAL_MS / 1000.0 + 15
    served = None
    while time.time() < deadline:
        oks = [e["t"] for e in lab.client_events() if e["ok"] and e["body"] == "node1" and e["t"] > t0]
        restarted = first_line(lab, "node1", "restarted in place", t0 - 0.002)
        if oks and restarted is not None:
            served = min(oks)
            break
        time.sleep(0.02)
    if served is None:
        raise BenchError("node1 did not serve again within %.0f s of the kill" % (deadline - t0))
    detected = first_line(lab, "node1", "failed its check", t0 - 0.002)
    failed = [e["t"] for e in lab.client_events() if not e["ok"] and t0 <= e["t"] < served]
    _wait_watched(pair)   # the next trial starts with the service watched again
    return {"detect_ms": None if detected is None else max(0.0, (detected - t0) * 1000),
            "restarted_ms": (restarted - t0) * 1000, "client_ms": (served - t0) * 1000,
            "outage_ms": (served - min(failed)) * 1000 if failed else 0.0}
