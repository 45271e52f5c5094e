"""Figure 2: the fastest safe timing - soak runs under CPU load and line noise.

Theory of operation
-------------------
For each (keepalive, deadtime) pair a fresh ``Pair`` runs with both agents
alive the whole time, so every ``is dead`` line in either node's log is a
false failover.  ``realtime off``: the worst case, since busy processes cannot
delay a SCHED_FIFO agent.  Each pair is soaked twice, at BER 1e-5 and 1e-4 on
the cable (``NullModem.set_ber``: each data bit flipped with that
probability, so a 24-byte frame is hit with ~0.2 % and ~1.9 % probability),
with one busy-loop process per CPU competing with the agents
(``common.Load``).  Counted per window: false failovers, ``Late heartbeat``
(the agents' late_heartbeats counter: an interval over warntime, set to 1.5 x
keepalive so a single lost frame counts), loop stalls, frames the receivers
rejected (their drop counters), and from the cable log the longest silence
between two valid frames in either direction - the margin a dead time must
keep.

The result per keepalive is the smallest tested dead time with zero false
failovers in both windows.  In the full run, every pair that failed is soaked
again with ``realtime on`` (ha.cf's default), to show what that buys.  A soak
of tens of seconds shows what fails, not that a timing never fails: the
longest silence next to the dead time says how close it came.  ``--soak
SECONDS`` makes the windows longer.
"""
from typing import Any, Dict, List, Optional, Tuple

from tools.bench import FIGURES
from tools.bench.common import Context, Pair, dist, intervals_ms, machine_line, pair_timing, release_pair

NAME = "safe"
TITLE = FIGURES[NAME]

BERS = (1e-5, 1e-4)
REJECTS = ("bad_tag", "garbage", "length", "version", "type", "unknown_key", "overflow")


def plan(ctx: Context) -> Tuple[List[Tuple[int, int]], float]:
    if ctx.quick:
        return [(50, 150)], ctx.soak_s or 4.0
    pairs = [(100, 500), (100, 300), (100, 250), (50, 250), (50, 150), (50, 120), (25, 100), (25, 60)]
    return pairs, ctx.soak_s or 30.0


def run(ctx: Context) -> Dict[str, Any]:
    pairs, seconds = plan(ctx)
    load = ctx.machine["nproc"]
    runs: List[Dict[str, Any]] = []
    release_pair(ctx)
    for keepalive, deadtime in pairs:
        runs += soak(ctx, keepalive, deadtime, False, seconds, load)
    if not ctx.quick:
        # what real-time scheduling (ha.cf's default) buys: the pairs that failed without it, again with it
        failed = sorted({(r["keepalive_ms"], r["deadtime_ms"]) for r in runs if r["false_failovers"]}, reverse=True)
        for keepalive, deadtime in failed:
            runs += soak(ctx, keepalive, deadtime, True, seconds, load)
    best = safest([r for r in runs if not r["realtime"]])
    best_rt = safest([r for r in runs if r["realtime"]])
    rows = []
    for r in runs:
        rows.append(["%d / %d" % (r["keepalive_ms"], r["deadtime_ms"]), "on" if r["realtime"] else "off",
                     "%g" % r["ber"], "%.0f" % r["seconds"],
                     str(r["false_failovers"]), str(r["late_heartbeats"]), str(r["stalls"]),
                     "%d / %d" % (r["rejected"], r["frames"]), _f(r["max_silence_ms"]),
                     _f(r["interval_ms"].get("p99.9"))])
    notes = ["smallest dead time with zero false failovers (realtime off): " + ", ".join(
        "keepalive %d ms -> %s" % (k, ("%d ms" % v) if v else "none tested safe") for k, v in sorted(best.items()))]
    if best_rt:
        notes.append("re-soaked with realtime on (only the pairs that failed without it): " + ", ".join(
            "keepalive %d ms -> %s" % (k, ("%d ms" % v) if v else "none tested safe")
            for k, v in sorted(best_rt.items())))
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Per (keepalive, deadtime): a fresh pair with realtime off (the worst case: ha.cf's default "
                   "is on), both agents alive throughout, %d busy-loop processes (one per CPU) competing with "
                   "them, then %.0f s at BER 1e-5 and %.0f s at BER 1e-4 on the simulated cable; pairs with a "
                   "false failover are soaked again with realtime on. false = 'is dead' lines in either log; late = agents' "
                   "late_heartbeats counter (interval > warntime = 1.5 x keepalive); stalls = 'own loop "
                   "stalled' lines; rejected = frames dropped by the receivers (bad tag, garbage, length) "
                   "/ frames on the cable; max silence = longest gap between two valid frames on the "
                   "cable in either direction; interval p99.9 = heartbeat arrival interval."
                   % (load, seconds, seconds)),
        "table": {"columns": ["keepalive / deadtime ms", "realtime", "BER", "s", "false failovers", "late", "stalls",
                              "rejected / frames", "max silence ms", "interval p99.9 ms"],
                  "rows": rows},
        "notes": notes,
        "runs": runs,
        "smallest_safe_deadtime_ms": {str(k): v for k, v in best.items()},
        "smallest_safe_deadtime_realtime_ms": {str(k): v for k, v in best_rt.items()},
    }


def soak(ctx: Context, keepalive: int, deadtime: int, realtime: bool, seconds: float,
         load: int) -> List[Dict[str, Any]]:
    ctx.say("soak: keepalive %d ms, deadtime %d ms, realtime %s, %d busy processes, BER %s, %.0f s each"
            % (keepalive, deadtime, "on" if realtime else "off", load, " then ".join("%g" % b for b in BERS),
               seconds))
    out = []
    with Pair(ctx, pair_timing(keepalive, deadtime), realtime=realtime) as pair:
        for ber in BERS:
            r = summarise(keepalive, deadtime, ber, pair.window(seconds, load=load, ber=ber))
            out.append(r)
            ctx.say("  BER %g: %d false failovers, %d late, max silence %s ms"
                    % (ber, r["false_failovers"], r["late_heartbeats"], r["max_silence_ms"]))
    return out


def _f(v: Optional[float]) -> str:
    return "-" if v is None else "%.0f" % v


def summarise(keepalive: int, deadtime: int, ber: float, w: Dict[str, Any]) -> Dict[str, Any]:
    frames = w["frames"]
    intervals = intervals_ms(frames["a>b"]) + intervals_ms(frames["b>a"])
    rejected = 0
    late = 0
    for c in w["counters"].values():
        late += c.get("late_heartbeats", 0)
        rejected += sum(c.get("dropped", {}).get(k, 0) for k in REJECTS)
    return {
        "keepalive_ms": keepalive, "deadtime_ms": deadtime, "ber": ber, "seconds": w["seconds"],
        "realtime": w["realtime"],
        "load_processes": w["load"],
        "false_failovers": sum(w["false_failovers"].values()),
        "false_by_node": w["false_failovers"],
        "late_heartbeats": late,
        "stalls": sum(w["stalls"].values()),
        "rejected": rejected,
        "frames": len(frames["a>b"]) + len(frames["b>a"]),
        "invalid_on_cable": sum(1 for d in frames.values() for _, _, v in d if v != "ok"),
        "corrupted_bytes": sum(v.get("corrupted", 0) for v in w["nullmodem"].values()),
        "max_silence_ms": round(max(intervals), 1) if intervals else None,
        "interval_ms": dist(intervals, (50, 99, 99.9)),
        "counters_complete": len(w["counters"]) == 2,
    }


def safest(runs: List[Dict[str, Any]]) -> Dict[int, Optional[int]]:
    """Per keepalive: the smallest deadtime whose windows all had zero false failovers."""
    by: Dict[Tuple[int, int], bool] = {}
    for r in runs:
        key = (r["keepalive_ms"], r["deadtime_ms"])
        by[key] = by.get(key, True) and r["false_failovers"] == 0
    best: Dict[int, Optional[int]] = {}
    for (k, d), ok in by.items():
        best.setdefault(k, None)
        if ok and (best[k] is None or d < best[k]):
            best[k] = d
    return best
