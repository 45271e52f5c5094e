"""Figure 5: footprint - idle CPU, memory, start-up time, import time.

Theory of operation
-------------------
*CPU and memory.*  A steady window at keepalive 1 s and at 100 ms (both
agents up, node1 active, no load): CPU time from ``/proc/<pid>/task/*/
schedstat`` (ns, all threads) over the window, as % of one core, with the
coarser ``/proc/<pid>/stat`` utime+stime next to it; RSS and its peak from
``/proc/<pid>/status``, sampled every second.  Next to it, with the pair still up, the
floor (``tools/bench/wake_floor.py``): a bare epoll loop and a bare asyncio loop of the
agent's interpreter that wake once a keepalive, as an idle agent in step does, and move
a frame's bytes through a pipe - the part of the figure that is the interpreter and its
loop waking, before any of hanode's work.

*Start-up.*  node2 (the standby, so nothing fails back) is power-cycled N
times on a running pair at keepalive 100 ms.  From the moment ``Popen`` of
``ip netns exec ... hanode run`` returned: the first log line (interpreter,
imports, configuration), ``READY`` (serial port open, adapters built, loop
running) and node2's first valid frame on the cable.

*Imports.*  One more start with ``PYTHONPROFILEIMPORTTIME=1`` gives the
import tree of the real run path; its self times are summed per top-level
package to show what the import cost is made of.  Separately, fresh
interpreters measure (median of 5): ``python -c pass``, ``import
hanode.daemon``, and importing every module the run loaded at top level
(``-X importtime``), plus the RSS of an interpreter that has imported them.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from tools.bench import FIGURES
from tools.bench.common import (AGENT_PYTHON_OPTIONS, Context, TIMINGS, cable_frames, dist, first_line, machine_line,
                                ms, shared_pair, steady)
from tools.bench.wake_floor import WAKES_PER_KEEPALIVE

NAME = "footprint"
TITLE = FIGURES[NAME]

OPTIONS = " ".join(AGENT_PYTHON_OPTIONS)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(ctx: Context) -> Dict[str, Any]:
    seconds = 3.0 if ctx.quick else 30.0
    restarts = 2 if ctx.quick else 8
    rows: List[List[str]] = []
    idle = {}
    for name in ("classic", "tight"):
        w = steady(ctx, name, seconds)
        idle[name] = {"keepalive_ms": ms(TIMINGS[name]["keepalive"]), "seconds": w["seconds"], "cpu": w["cpu"]}
        a, s = w["cpu"].get("node1", {}), w["cpu"].get("node2", {})
        what = "idle at keepalive %s, active / standby node: " % TIMINGS[name]["keepalive"]
        rows.append([what + "CPU (% of one core)", "%s / %s" % (_pct(a.get("cpu_pct")), _pct(s.get("cpu_pct")))])
        rows.append([what + "CPU from /proc/<pid>/stat", "%s / %s" % (_pct(a.get("cpu_pct_stat")),
                                                                      _pct(s.get("cpu_pct_stat")))])
        rows.append([what + "wakeups/s", "%s / %s" % (_n(a.get("wakeups_per_s")), _n(s.get("wakeups_per_s")))])
        per = per_keepalive(w, idle[name]["keepalive_ms"])
        idle[name]["per_keepalive"] = per
        rows.append([what + "wake-ups per keepalive (frames sent + received per keepalive)",
                     " / ".join("%s (%s + %s)" % (_f1(per[n]["wakeups"]), _f1(per[n]["sent"]), _f1(per[n]["received"]))
                                for n in ("node1", "node2"))])
        rows.append([what + "read syscalls/s", "%s / %s" % (_n(a.get("reads_per_s")), _n(s.get("reads_per_s")))])
        rows.append([what + "RSS (MB)", "%s / %s" % (_mb(a.get("rss_kb")), _mb(s.get("rss_kb")))])
        floor = idle[name]["floor"] = wake_floor(ctx, idle[name]["keepalive_ms"], seconds)
        rows.append(["idle at keepalive %s, the floor: a bare epoll loop / a bare asyncio loop of this "
                     "interpreter waking %s times a keepalive, CPU (%% of one core)"
                     % (TIMINGS[name]["keepalive"], WAKES_PER_KEEPALIVE),
                     "%s / %s" % (_pct(floor.get("epoll", {}).get("cpu_pct")),
                                  _pct(floor.get("asyncio", {}).get("cpu_pct")))])
    start = startup(ctx, restarts)
    imports = import_times(start.get("run_path_modules") or [], ctx.agent_env())
    for key, label in (("first_log_ms", "start -> first log line"), ("ready_ms", "start -> READY"),
                       ("first_frame_ms", "start -> first heartbeat on the cable")):
        d = start[key]
        rows.append([label + " (ms, p50 / p95 / max of %d)" % d.get("n", 0),
                     "%s / %s / %s" % (_n(d.get("p50")), _n(d.get("p95")), _n(d.get("max")))])
    for key, label in (("python_c_pass_ms", "python %s -c pass" % OPTIONS),
                       ("import_daemon_ms", "import hanode.daemon"),
                       ("import_run_path_ms", "import the whole run path (%d modules)"
                        % len(start.get("run_path_modules") or []))):
        rows.append([label + " (ms, median of 5)", _n(imports.get(key))])
    rows.append(["RSS of python %s -c with the run path imported as hanode run does (MB)" % OPTIONS,
                 _mb(imports.get("run_path_rss_kb"))])
    rows.append(["RSS of a bare python %s -c (MB)" % OPTIONS, _mb(imports.get("bare_rss_kb"))])
    notes = []
    if start.get("import_by_package_ms"):
        top = sorted(start["import_by_package_ms"].items(), key=lambda kv: -kv[1])[:8]
        notes.append("imports of a real start before READY: %.0f ms; by top-level package (self times "
                     "summed, ms): %s" % (start["import_total_before_ready_ms"],
                                          ", ".join("%s %.0f" % kv for kv in top)))
    if start.get("import_after_ready_by_package_ms"):
        top = sorted(start["import_after_ready_by_package_ms"].items(), key=lambda kv: -kv[1])[:4]
        notes.append("imported after READY (off the loop, before the first acquire): %.0f ms: %s"
                     % (start["import_total_after_ready_ms"], ", ".join("%s %.0f" % kv for kv in top)))
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("CPU: /proc/<pid>/task/*/schedstat (ns) over a %.0f s steady window, %% of one core, "
                   "/proc/<pid>/stat ticks next to it; wakeups/s = voluntary context switches (all threads), "
                   "reads/s = read-type syscalls (/proc/<pid>/io syscr); wake-ups per keepalive = wakeups/s x "
                   "keepalive, with the valid frames each node sent and received per keepalive from the cable log; "
                   "RSS: VmRSS / VmHWM from /proc/<pid>/status. "
                   "Start-up: node2 power-cycled %d times on a running pair (keepalive 100 ms), times from "
                   "Popen of 'ip netns exec ... hanode run' returning to its first log line, its READY "
                   "line (log ms resolution) and its first valid frame on the cable. Imports: fresh "
                   "interpreters, median of 5, wall time; per-package split from PYTHONPROFILEIMPORTTIME "
                   "of a real start." % (seconds, restarts)),
        "table": {"columns": ["what", "measured"], "rows": rows},
        "notes": notes,
        "idle": idle,
        "startup": start,
        "imports": imports,
    }


def wake_floor(ctx: Context, keepalive_ms: float, seconds: float) -> Dict[str, Any]:
    """tools/bench/wake_floor.py with the agent's interpreter, the pair still up: what waking as
    often as an idle agent in step costs before it does any work ({} if it failed)."""
    argv = [sys.executable] + list(AGENT_PYTHON_OPTIONS) + [os.path.join(REPO, "tools", "bench", "wake_floor.py"),
            "%g" % keepalive_ms, "%g" % seconds]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=2 * seconds + 60)
        return json.loads(done.stdout)
    except (subprocess.SubprocessError, ValueError) as e:
        ctx.say("wake floor at keepalive %g ms failed: %r" % (keepalive_ms, e))
        return {}


# the cable's directions: node1 is its end a
SENDS = {"node1": "a>b", "node2": "b>a"}
RECEIVES = {"node1": "b>a", "node2": "a>b"}


def per_keepalive(w: Dict[str, Any], keepalive_ms: float) -> Dict[str, Dict[str, Optional[float]]]:
    """Wake-ups and frames (valid ones, from the cable log) per keepalive interval, per node: the
    issue's target is at most 2 wake-ups a keepalive per direction (a sent frame costs one, a
    received one two on the simulated cable: its first byte and its end)."""
    span = w["seconds"]
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for n in SENDS:
        rate = w["cpu"].get(n, {}).get("wakeups_per_s")
        frames = w.get("frames", {})
        sent = len([f for f in frames.get(SENDS[n], []) if f[2] == "ok"])
        received = len([f for f in frames.get(RECEIVES[n], []) if f[2] == "ok"])
        out[n] = {"wakeups": None if rate is None else rate * keepalive_ms / 1000.0,
                  "sent": sent / span * keepalive_ms / 1000.0 if span else None,
                  "received": received / span * keepalive_ms / 1000.0 if span else None}
    return out


def _f1(v: Optional[float]) -> str:
    return "-" if v is None else "%.1f" % v


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else "%.2f %%" % v


def _mb(kb: Optional[int]) -> str:
    return "-" if kb is None else "%.1f" % (kb / 1024.0)


def _n(v: Any) -> str:
    return "-" if v is None else "%.0f" % v


def startup(ctx: Context, restarts: int) -> Dict[str, Any]:
    ctx.say("footprint: start-up, node2 power-cycled %d times" % restarts)
    first_log, ready, first_frame = [], [], []
    out: Dict[str, Any] = {}
    # node2 (the standby) is up again after each cycle, so the shared pair stays usable
    pair = shared_pair(ctx, "tight")
    lab = pair.lab
    for i in range(restarts + 1):
        profile = i == restarts   # the import profile run is not timed
        lab.power_off("node2")
        time.sleep(0.5)
        log_path = os.path.join(lab.node_dir("node2"), "stderr.log")
        offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        lab.power_on("node2", env=ctx.agent_env(**({"PYTHONPROFILEIMPORTTIME": "1"} if profile else {})))
        t0 = lab.started_at["node2"]
        if lab.wait_for(lambda: first_line(lab, "node2", "READY", t0 - 0.01), 30) is None:
            out.setdefault("errors", []).append("node2 did not log READY within 30 s; see %s" % lab.workdir)
            continue
        time.sleep(0.5)
        if profile:
            with open(log_path, errors="replace") as f:
                f.seek(offset)
                text = f.read()
            # importtime lines and log lines share stderr in order: split the imports at READY
            head, sep, tail = text.partition("READY:")
            before, after = parse_importtime(head), parse_importtime(tail if sep else "")
            out["run_path_modules"] = before["run_path_modules"] + after["run_path_modules"]
            out["import_by_package_ms"] = before["import_by_package_ms"]
            out["import_total_before_ready_ms"] = before["run_import_total_ms"]
            out["import_after_ready_by_package_ms"] = after["import_by_package_ms"]
            out["import_total_after_ready_ms"] = after["run_import_total_ms"]
            continue
        # the log stamps are truncated to the ms: compare from the start's ms
        t0_ms = int(t0 * 1000) / 1000.0
        a = first_line(lab, "node2", "", t0_ms)
        r = first_line(lab, "node2", "READY", t0_ms)
        frames = cable_frames(lab, pair.auth, t0, t0 + 30)
        f1 = [t for t, _, v in frames["b>a"] if v == "ok"]
        if a:
            first_log.append((a - t0_ms) * 1000)
        if r:
            ready.append((r - t0_ms) * 1000)
        if f1:
            first_frame.append((f1[0] - t0) * 1000)
    out["first_log_ms"] = dist(first_log)
    out["ready_ms"] = dist(ready)
    out["first_frame_ms"] = dist(first_frame)
    out["samples"] = {"first_log_ms": first_log, "ready_ms": ready, "first_frame_ms": first_frame}
    return out


def parse_importtime(text: str) -> Dict[str, Any]:
    """From -X importtime output: modules imported at top level, and self time per top-level package."""
    top: List[str] = []
    by_pkg: Dict[str, float] = {}
    total_us = 0
    for line in text.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue   # the header line
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        mod = name.strip()
        pkg = mod.split(".")[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0.0) + self_us / 1000.0
        if depth == 0:
            top.append(mod)
            total_us += cum_us
    return {"run_path_modules": top, "import_by_package_ms": {k: round(v, 1) for k, v in by_pkg.items()},
            "run_import_total_ms": round(total_us / 1000.0, 1)}


def _wall(argv: List[str], env: Dict[str, str], repeat: int = 5) -> Optional[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(argv, env=env, capture_output=True, timeout=60)
        if r.returncode != 0:
            return None
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


BARE_PROBE = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
# as `hanode run` imports (python3 -S -OO, OpenSSL kept out, pyroute2 through hanode.vip.import_pyroute2)
RSS_PROBE = ("import sys\nfrom hanode.noopenssl import keep_openssl_out\nkeep_openssl_out()\n"
             "for m in sys.argv[1:]:\n"
             "    if m.startswith('pyroute2'):\n        import hanode.vip; hanode.vip.import_pyroute2()\n"
             "    else:\n        __import__(m)\n"
             "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])")


def import_times(modules: List[str], extra_env: Dict[str, str]) -> Dict[str, Any]:
    py = [sys.executable] + list(AGENT_PYTHON_OPTIONS)   # the lab's agents' options, as the appliance's
    from hanode.lab.bed import agent_env
    env = agent_env(extra_env)   # the lab's agents' PYTHONPATH (they run without the site module)
    # only what the interpreter can import on its own ("encodings" etc. are already there)
    mods = [m for m in modules if m and not m.startswith("_")]
    if mods:
        subprocess.run([*py, "-c", "import %s" % ", ".join(mods)], env=env, capture_output=True, timeout=60)
    out: Dict[str, Any] = {
        "python_c_pass_ms": _wall([*py, "-c", "pass"], env),
        "import_daemon_ms": _wall([*py, "-c", "import hanode.daemon"], env),
        "import_run_path_ms": _wall([*py, "-c", "import %s" % ", ".join(mods)], env) if mods else None,
    }
    for key, argv in (("bare_rss_kb", [*py, "-c", BARE_PROBE]),
                      ("run_path_rss_kb", [*py, "-c", RSS_PROBE] + mods)):
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        out[key] = int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None
    r = subprocess.run([*py, "-X", "importtime", "-c", "import hanode.daemon"], env=env, capture_output=True,
                       text=True, timeout=60)
    out["daemon_importtime"] = parse_importtime(r.stderr)
    return out
