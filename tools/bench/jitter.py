"""Figure 4: timing quality - heartbeat send-interval jitter, idle and loaded, with and without real-time.

Theory of operation
-------------------
At keepalive 50 ms (the fast timing) a steady window is measured four times:
idle or with one busy-loop process per CPU, and with ``realtime off`` or
``on`` in ha.cf (``Lab(realtime=True)``: the agents go SCHED_FIFO and lock
their memory).  The interval between two consecutive heartbeats of one node
is read from the cable byte log (the time each frame's 0x00 left the line;
the line is idle between heartbeats, so that is the send time plus a constant
12.5 ms) - the cable's own thread runs SCHED_FIFO so it does not add jitter
of its own.  Jitter is |interval - keepalive|, both directions pooled; the
interval itself is reported too, since the agent sends on its first tick
(keepalive/4) at or after the keepalive, so intervals sit a little above it.
"""
from typing import Any, Dict, List

from tools.bench import FIGURES
from tools.bench.common import Context, TIMINGS, dist, intervals_ms, machine_line, ms, steady

NAME = "jitter"
TITLE = FIGURES[NAME]

TIMING = "fast"


def run(ctx: Context) -> Dict[str, Any]:
    seconds = 3.0 if ctx.quick else 45.0
    load = ctx.machine["nproc"]
    keepalive = ms(TIMINGS[TIMING]["keepalive"])
    rows: List[List[str]] = []
    runs = []
    # real-time first: the last pair left open (no real-time) is the one wire's noisy window wants
    for realtime in (True, False):
        for loaded in (False, True):
            w = steady(ctx, TIMING, seconds, load=load if loaded else 0, realtime=realtime)
            iv = intervals_ms(w["frames"]["a>b"]) + intervals_ms(w["frames"]["b>a"])
            jit = [abs(x - keepalive) for x in iv]
            r = {"load": w["load"], "realtime": realtime, "seconds": w["seconds"], "keepalive_ms": keepalive,
                 "jitter_ms": dist(jit, (50, 99, 99.9)), "interval_ms": dist(iv, (50, 99, 99.9)),
                 "late_heartbeats": sum(c.get("late_heartbeats", 0) for c in w["counters"].values()),
                 "stalls": sum(w["stalls"].values()),
                 "cable_late_ms_max": max([v["late_ms_max"] for v in w["nullmodem"].values()
                                           if v.get("late_ms_max") is not None], default=None)}
            runs.append(r)
            j = r["jitter_ms"]
            rows.append(["busy x%d" % load if loaded else "idle", "on" if realtime else "off", str(j.get("n", 0)),
                         _f(j.get("p50")), _f(j.get("p99")), _f(j.get("p99.9")), _f(j.get("max")),
                         _f(r["interval_ms"].get("p50")), str(r["late_heartbeats"]),
                         _f(r["cable_late_ms_max"]) if r["cable_late_ms_max"] is not None else "-"])
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Keepalive 50 ms, deadtime 250 ms; %.0f s steady window per condition on a fresh pair. "
                   "Interval = time between consecutive valid frames of one node on the cable byte log "
                   "(both directions pooled); jitter = |interval - 50 ms|; busy = one busy-loop process per "
                   "CPU; realtime = ha.cf 'realtime on' (SCHED_FIFO + mlockall). The cable's thread runs "
                   "SCHED_FIFO 1 in every condition (the bench's main thread too, during windows); cable "
                   "late = the most the cable's own thread delivered a byte late in that window (lab, not "
                   "agent; '-' when it stayed below the pair's earlier maximum); late = agents' "
                   "late_heartbeats (interval > warntime 150 ms)." % seconds),
        "table": {"columns": ["CPU", "realtime", "intervals", "jitter p50", "p99", "p99.9", "max",
                              "interval p50", "late", "cable late ms"], "rows": rows},
        "notes": [],
        "runs": runs,
    }


def _f(v: Any) -> str:
    if v is None:
        return "-"
    return "%.1f" % v if v < 100 else "%.0f" % v
