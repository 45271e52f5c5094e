"""``python -m tools.bench``: run the figures, print the table, write JSON / a plot / markdown.

See ``tools/bench/__init__.py`` for what is measured and docs/performance.md
for a full run's results.
"""
import argparse
import json
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from tools.bench import FIGURES, ORDER, modules
from tools.bench.common import BenchError, Context, LabError, is_root, machine, machine_line, ms
from tools.bench import plot as plotting

NEEDS_ROOT = {"failover", "safe", "wire", "jitter", "footprint"}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmarks of hanode: real agents in network namespaces over the paced 19200-baud "
                    "null-modem. Figures: " + ", ".join("%s (%s)" % (n, FIGURES[n].split(". ", 1)[1])
                                                        for n in ORDER) + ". Needs root (except codec).",
        epilog="The full run takes ~20 min; --quick (< 2 min) is the smoke run CI does. Numbers taken while "
               "other tests load the machine are not representative: the table says the load at start.")
    p.add_argument("--quick", action="store_true", help="smoke run: few trials, short windows (< 2 min)")
    p.add_argument("--json", metavar="FILE", help="write every figure (tables, distributions, raw trials) as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw the failover timeline and latency distribution "
                                                      "(needs matplotlib: pip install 'hanode[plot]')")
    p.add_argument("--markdown", metavar="FILE", help="write the tables as markdown (for docs/performance.md)")
    p.add_argument("--only", metavar="NAME,...", help="run only these figures: " + ",".join(ORDER))
    p.add_argument("--soak", type=float, metavar="SECONDS", help="soak window per BER in the safe-timing figure "
                                                                 "(default 30, --quick 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in FIGURES]
        if unknown or not names:
            p.error("--only: unknown figure %s (choose from %s)" % (", ".join(unknown) or "''", ",".join(ORDER)))
        args.names = [n for n in ORDER if n in names]
    else:
        args.names = list(ORDER)
    if args.soak is not None and args.soak <= 0:
        p.error("--soak must be more than 0 seconds")
    return args


# the order figures run in: cheap ones first, and the ones whose steady windows others reuse
RUN_ORDER = ("codec", "footprint", "jitter", "wire", "safe", "failover")   # see jitter.py on its order


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.plot:
        missing = plotting.available()
        if missing:
            print("tools.bench: " + missing, file=sys.stderr)
            return 2
    ctx = Context(quick=args.quick, soak_s=args.soak, verbose=not args.quiet)
    results: Dict[str, Dict[str, Any]] = {}
    skipped_root = [n for n in args.names if n in NEEDS_ROOT and not is_root()]
    for name in skipped_root:
        results[name] = {"title": FIGURES[name], "skipped": "needs root (network namespaces)"}
    old = signal.signal(signal.SIGTERM, _interrupt)
    started = time.time()
    try:
        for name in RUN_ORDER:
            if name not in args.names or name in results:
                continue
            ctx.say("figure %s" % FIGURES[name])
            t = time.time()
            try:
                results[name] = modules()[name].run(ctx)
            except (BenchError, LabError, OSError, RuntimeError) as e:
                results[name] = {"title": FIGURES[name], "error": "%s: %s" % (type(e).__name__, e)}
                ctx.say("figure %s failed: %s" % (name, e))
            results[name]["duration_s"] = round(time.time() - t, 1)
    except KeyboardInterrupt:
        print("\ntools.bench: interrupted; labs and load processes torn down", file=sys.stderr)
        return 130
    finally:
        ctx.close()
        signal.signal(signal.SIGTERM, old)
    end_machine = machine()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "quick": args.quick, "argv": sys.argv[1:], "duration_s": round(time.time() - started, 1),
        "machine": ctx.machine, "loadavg_at_end": end_machine["loadavg"],
        "max_load_seen": round(max(ctx.load_seen, end_machine["loadavg"][0]), 2),
        "other_namespaces_seen": max(ctx.others_seen, end_machine["other_namespaces"]),
        "machine_line": machine_line(ctx.machine),
        # the load average during the run is mostly the bench's own (busy processes in some windows):
        # what tells of others is the load before it started and other tests' namespaces meanwhile
        "representative": ctx.machine["loadavg"][0] < 0.5 * ctx.machine["nproc"]
                          and not max(ctx.others_seen, end_machine["other_namespaces"]),
    }
    report = {"meta": meta, "figures": {n: results[n] for n in ORDER if n in results}, "targets": targets(results)}
    text = render(report)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=_jsonable)
            f.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(render(report, markdown=True))
    if args.plot:
        if "failover" in results and results["failover"].get("timings"):
            plotting.draw(results["failover"], args.plot)
            print("plot written to %s" % args.plot)
        else:
            print("tools.bench: nothing to plot: the failover figure did not run", file=sys.stderr)
    return 1 if any("error" in r for r in results.values()) else 0


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt()


def _jsonable(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


# ------------------------------------------------------------------ targets
def targets(results: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The issue's targets (aims, not tests) against what this run measured."""
    out: List[Dict[str, Any]] = []

    def add(target: str, measured: Optional[str], met: Optional[bool]) -> None:
        out.append({"target": target, "measured": measured or "not measured in this run", "met": met})

    wire = results.get("wire", {})
    size = wire.get("bytes_per_frame")
    add("heartbeat frame <= 24 bytes on the wire", "%s bytes" % size if size else None,
        (size <= 24) if isinstance(size, int) else None)

    fo = [t for t in results.get("failover", {}).get("timings", []) if t.get("trials")
          and t["timing"]["keepalive"] == "50ms"]
    safe = results.get("safe", {}).get("runs", [])
    if fo:
        t = min(fo, key=lambda x: ms(x["timing"]["deadtime"]))   # the tightest that ran (edge in a full run)
        d = t["summary"]["detect_ms"]
        dt = int(ms(t["timing"]["deadtime"]))
        # judged on the realtime-off soak (the failover trials run realtime off too)
        soak = [r for r in safe if r["keepalive_ms"] == 50 and r["deadtime_ms"] == dt and not r["realtime"]]
        soak_rt = [r for r in safe if r["keepalive_ms"] == 50 and r["deadtime_ms"] == dt and r["realtime"]]
        false = sum(r["false_failovers"] for r in soak)
        measured = "detection p50 %s / max %s ms at 50/%d ms; %s%s" % (
            d.get("p50"), d.get("max"), dt,
            ("%d false failovers in the loaded, noisy soak" % false) if soak else "no soak of that pair in this run",
            (" (%d with realtime on)" % sum(r["false_failovers"] for r in soak_rt)) if soak_rt else "")
        met: Optional[bool] = None
        if d.get("n"):
            fast_enough = d["max"] <= 200
            # without a soak of the same pair only a miss is certain
            met = (fast_enough and false == 0) if soak else (None if fast_enough else False)
        add("detection <= 200 ms at keepalive 50 ms, no false failovers under load", measured, met)
    else:
        add("detection <= 200 ms at keepalive 50 ms, no false failovers under load", None, None)

    fp = results.get("footprint", {})
    idle = fp.get("idle", {}).get("tight", {}).get("cpu", {})
    cpus = [c.get("cpu_pct") for c in idle.values() if c.get("cpu_pct") is not None]
    add("idle CPU <= 0.2 % of a core at keepalive 100 ms",
        ("%.2f %% (worst node)" % max(cpus)) if cpus else None, (max(cpus) <= 0.2) if cpus else None)
    rss = [c.get("rss_kb") for t in fp.get("idle", {}).values() for c in t.get("cpu", {}).values()
           if c.get("rss_kb")]
    add("RSS <= 20 MB", ("%.1f MB (largest)" % (max(rss) / 1024.0)) if rss else None,
        (max(rss) <= 20 * 1024) if rss else None)
    ready = fp.get("startup", {}).get("ready_ms", {})
    add("start -> READY <= 300 ms", ("p50 %s / max %s ms" % (ready.get("p50"), ready.get("max")))
        if ready.get("n") else None, (ready["p50"] <= 300) if ready.get("n") else None)
    return out


# ------------------------------------------------------------------ output
def render(report: Dict[str, Any], markdown: bool = False) -> str:
    meta = report["meta"]
    lines = []
    head = "hanode benchmarks, %s%s" % (meta["date"], " (--quick)" if meta["quick"] else "")
    lines.append(("## " if markdown else "") + head)
    lines.append("")
    lines.append("machine: %s; during the run: 1-min load average up to %.2f (the bench's own busy "
                 "processes included), other tests' namespaces up to %d; took %.0f s"
                 % (meta["machine_line"], meta["max_load_seen"], meta["other_namespaces_seen"], meta["duration_s"]))
    if not meta["representative"]:
        lines.append("NOTE: the machine was busy (load average or other tests' namespaces): these numbers are "
                     "not representative; rerun when `uptime` shows it quiet.")
    lines.append("")
    for name, fig in report["figures"].items():
        lines.append(("### " if markdown else "== ") + fig["title"] + ("" if markdown else " =="))
        lines.append("")
        if "skipped" in fig or "error" in fig:
            lines.append(("skipped: %s" % fig["skipped"]) if "skipped" in fig else ("FAILED: %s" % fig["error"]))
            lines.append("")
            continue
        lines.append(("*Method:* " if markdown else "method: ") + fig["method"])
        lines.append("")
        lines.extend(table(fig["table"]["columns"], fig["table"]["rows"], markdown))
        for note in fig.get("notes", []):
            lines.append(("- " if markdown else "  note: ") + note)
        lines.append("")
    lines.append(("### " if markdown else "== ") + "Targets (aims, not tests)" + ("" if markdown else " =="))
    lines.append("")
    rows = [[t["target"], t["measured"], {True: "met", False: "MISSED", None: "-"}[t["met"]]]
            for t in report["targets"]]
    lines.extend(table(["target", "measured", ""], rows, markdown))
    return "\n".join(lines) + "\n"


def table(columns: List[str], rows: List[List[str]], markdown: bool) -> List[str]:
    if markdown:
        out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        out.append("")
        return out
    widths = [max([len(str(c))] + [len(str(r[i])) for r in rows if i < len(r)]) for i, c in enumerate(columns)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()   # noqa: E731
    return [fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


if __name__ == "__main__":
    sys.exit(main())
