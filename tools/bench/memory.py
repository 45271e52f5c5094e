"""Figure 8: what the agent's memory is made of, import by import (for the next cuts).

Theory of operation
-------------------
Fresh interpreters (the bench's warm bytecode cache, so no compiler memory;
``-S``, so no ``.pth`` file of the build machine is in the figures)
import the agent's run path one layer at a time, cumulatively, and after each
layer read their own ``/proc/self/smaps_rollup`` (RSS, PSS, USS = private
clean + private dirty) and ``/proc/self/status`` (VmLck, threads).  Each
ladder runs twice: as ``realtime off``, and as ``realtime on`` does it -
``mlockall(MCL_CURRENT | MCL_FUTURE)`` first, so every later mapping is
faulted in and locked as it is made (what ``hanode.daemon`` does at start).

Single imports on a bare interpreter give each library's own cost: ``ssl``
(OpenSSL), ``asyncio`` (which imports ``ssl`` when it is there), ``pyroute2``
as installed, and ``pyroute2-minimal`` (the packaged subset of the same
release) from a private ``pip install --target`` directory, never over the
installed one.  ``pyroute2-minimal`` is fetched once into
``~/.cache/hanode-bench/`` (or ``--pyroute2-minimal DIR``); without network
that row says so.

``smaps_rollup`` needs Linux 4.14; USS is what killing the process would
free, PSS its fair share of what it shares (libpython, libc, libssl).
"""
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

from tools.bench import FIGURES
from tools.bench.common import REPO_ROOT, Context, machine_line

NAME = "memory"
TITLE = FIGURES[NAME]

# cumulative layers of `hanode run`'s imports, in the order the daemon pulls them in
LADDER = [
    ("bare interpreter", []),
    # hanode.logs has its own queue and syslog sender (no logging.handlers), hanode.runline reads
    # `hanode run` without argparse
    ("+ ctypes, logging", ["ctypes", "logging"]),
    # what `hanode run` does before the daemon's imports: asyncio without ssl, hashlib without
    # OpenSSL, a stand-in that loads ssl on first use (for pyroute2's import of it)
    ("+ asyncio, hashlib; OpenSSL kept out (hanode.noopenssl)", ["!noopenssl", "hashlib"]),
    ("+ hanode.core (config, frame, auth, node)", ["hanode.core.node", "hanode.core.config", "hanode.core.auth"]),
    ("+ hanode.daemon (agent, uart, resources ...)", ["hanode.daemon"]),
    # what the agent imports of pyroute2 (hanode.rtnl): two message classes, the package's __init__ deferred
    ("+ pyroute2's rtnl message classes (hanode.vip.import_pyroute2)", ["!pyroute2"]),
    ("+ hanode.vip, hanode.arp, hanode.lan", ["hanode.vip", "hanode.arp", "hanode.lan"]),
    # the settled agent hands the start-up's free heap back (hanode.realtime.trim_memory)
    ("+ malloc_trim: the whole run path, settled", ["!trim"]),
    # the agent runs 3 threads; under mlockall each default (8 MB) stack is faulted in whole
    ("+ 2 idle threads, default stacks", ["!threads"]),
    ("+ 2 idle threads, 256 KB stacks", ["!small-threads"]),
]
RUN_PATH = 7   # LADDER's row of the whole run path (compared across interpreters)
SINGLES = [
    ("ctypes", ["ctypes"]),
    ("logging.handlers", ["logging.handlers"]),
    ("argparse", ["argparse"]),
    ("ssl", ["ssl"]),
    ("_hashlib (hashlib's OpenSSL backend)", ["_hashlib"]),
    ("asyncio", ["asyncio"]),
    ("asyncio without ssl (ssl blocked)", ["-nossl", "asyncio"]),
    ("pyroute2 %s (installed), the whole package", ["pyroute2"]),
    ("pyroute2 %s, IPRoute's module only (hanode.vip.iproute_class)", ["!iproute"]),
    ("pyroute2-minimal %s (private target dir)", ["-minimal", "pyroute2"]),
    ("pyroute2-minimal, ssl blocked", ["-minimal", "-nossl", "pyroute2"]),
    ("hanode.daemon (no pyroute2)", ["hanode.daemon"]),
    # what realtime on could cost: the run path, 2 more threads with small stacks, one malloc arena
    ("run path + 2 threads, 256 KB stacks, 1 malloc arena", ["!one-arena", "!noopenssl", "hanode.daemon", "!pyroute2",
                                                             "hanode.vip", "hanode.arp", "hanode.lan", "!trim",
                                                             "!small-threads"]),
]

PROBE = r'''
import sys
def rollup():
    out = {}
    for line in open("/proc/self/smaps_rollup"):
        k, _, rest = line.partition(":")
        if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            out[k] = int(rest.split()[0])
    for line in open("/proc/self/status"):
        k, _, rest = line.partition(":")
        if k in ("VmLck", "Threads"):
            out[k] = int(rest.split()[0])
    out["Uss"] = out.pop("Private_Clean") + out.pop("Private_Dirty")
    out["modules"] = len(sys.modules)
    return out
# argv: lock|nolock, ssl|nossl, the layers as JSON (read after the bare measurement: json is a layer too)
if sys.argv[2] == "nossl":
    sys.modules["ssl"] = None     # "import ssl" raises ImportError, as on a build without OpenSSL
    sys.modules["_ssl"] = None
if sys.argv[1] != "nolock":
    import ctypes
    # MCL_CURRENT | MCL_FUTURE, and MCL_ONFAULT (Linux 4.4): lock pages as they are touched only
    if ctypes.CDLL(None, use_errno=True).mlockall(1 | 2 | (4 if sys.argv[1] == "onfault" else 0)) != 0:
        raise SystemExit("mlockall failed: errno %d" % ctypes.get_errno())
bare = rollup()
import ctypes, json
res = []
for label, mods in json.loads(sys.argv[3]):
    for m in mods:
        if m == "!pyroute2":
            import hanode.vip
            hanode.vip.import_pyroute2()
        elif m == "!iproute":
            import hanode.vip
            hanode.vip.iproute_class()
        elif m == "!noopenssl":
            import hanode.noopenssl
            hanode.noopenssl.keep_openssl_out()
        elif m == "!trim":
            ctypes.CDLL(None).malloc_trim(0)
        elif m == "!one-arena":
            ctypes.CDLL(None).mallopt(-8, 1)   # M_ARENA_MAX: threads share the main arena
        elif m.startswith("!"):
            import threading
            if m == "!small-threads":
                threading.stack_size(256 * 1024)
            for _ in range(2):
                threading.Thread(target=threading.Event().wait, daemon=True).start()
            threading.stack_size(0)
        else:
            __import__(m)
    r = bare if not res and not mods else rollup()
    r["label"] = label
    res.append(r)
print(json.dumps(res))
'''


# (cache prefix, interpreter, extra path) whose bytecode is in that prefix already
WARMED: Set[Tuple[str, str, Optional[str]]] = set()


def minimal_dir(ctx: Context) -> Optional[str]:
    """A private directory holding pyroute2-minimal of the installed pyroute2's release."""
    import pyroute2   # noqa: F401  (for its version)
    from importlib.metadata import version
    ver = version("pyroute2")
    target = getattr(ctx, "pyroute2_minimal", None) or os.path.join(
        os.path.expanduser("~"), ".cache", "hanode-bench", "pyroute2-minimal-" + ver)
    if os.path.isdir(os.path.join(target, "pyroute2")):
        return target
    ctx.say("memory: pip install --target %s pyroute2-minimal==%s (private, once)" % (target, ver))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--target", target, "pyroute2-minimal==" + ver], capture_output=True, text=True, timeout=300)
    return target if r.returncode == 0 and os.path.isdir(os.path.join(target, "pyroute2")) else None


def other_interpreter() -> Optional[str]:
    """The distribution's python3 of the same version, if this one is another build (pyenv, venv):
    the interpreter's own build changes the floor by megabytes."""
    want = "python%d.%d" % sys.version_info[:2]
    path = os.path.join("/usr/bin", want)
    if os.path.exists(path) and os.path.realpath(path) != os.path.realpath(sys.executable):
        return path
    return None


def probe(ctx: Context, layers: List[Any], lock: Any = False, nossl: bool = False,
          path: Optional[str] = None, python: str = sys.executable) -> List[Dict[str, Any]]:
    import pyroute2
    env = dict(os.environ)
    env.update(ctx.agent_env())
    # -S: no site module, so no .pth file of this machine (editable-install finders, CA bundles:
    # ~70 modules, ~5 MB) in the figures; the libraries come from PYTHONPATH instead, for another
    # interpreter of the same version too (pyroute2 is pure Python)
    site = os.path.dirname(os.path.dirname(pyroute2.__file__))
    env["PYTHONPATH"] = os.pathsep.join(([path] if path else []) + [REPO_ROOT, site])
    lock_arg = lock if isinstance(lock, str) else "lock" if lock else "nolock"
    argv = [python, "-S", "-c", PROBE, lock_arg, "nossl" if nossl else "ssl", json.dumps(layers)]
    if (ctx.pycache, python, path) not in WARMED:
        # once per interpreter: its bytecode into the bench's cache prefix (else the probe compiles
        # every module it imports and measures the compiler)
        subprocess.run(argv, env=env, capture_output=True, timeout=120)
        WARMED.add((ctx.pycache, python, path))
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        raise RuntimeError("import fails: %s" % (lines[-1] if lines else "exit status %d" % r.returncode))
    return json.loads(r.stdout)


def _mb(kb: Optional[int]) -> str:
    return "-" if kb is None else "%.1f" % (kb / 1024.0)


def run(ctx: Context) -> Dict[str, Any]:
    from importlib.metadata import version
    ctx.say("memory: import ladder, realtime off and on")
    singles = [(label, mods) for label, mods in SINGLES if not any(m.startswith("-") for m in mods)]
    probe(ctx, singles)   # one interpreter imports everything first: the bytecode cache is warm for all
    off = probe(ctx, LADDER)
    on = probe(ctx, LADDER, lock=True)
    onfault = probe(ctx, LADDER, lock="onfault")
    rows = []
    prev = None
    for a, b, c in zip(off, on, onfault):
        rows.append([a["label"], _mb(a["Rss"]), "+" + _mb(a["Rss"] - prev["Rss"]) if prev else "",
                     _mb(a["Pss"]), _mb(a["Uss"]), str(a["modules"]), _mb(b["Rss"]), _mb(b["VmLck"]),
                     "%s / %s" % (_mb(c["Rss"]), _mb(c["VmLck"]))])
        prev = a
    singles = []
    base = off[0]
    mini = minimal_dir(ctx)
    pv = version("pyroute2")
    for label, spec in SINGLES:
        flags = [s for s in spec if s.startswith("-")]   # the probe's options, not modules
        mods = [s for s in spec if not s.startswith("-")]
        label = label % pv if "%s" in label else label
        if "-minimal" in flags and mini is None:
            singles.append({"label": label, "error": "pyroute2-minimal could not be installed (no network?)"})
            continue
        # the installed pyroute2 must not shadow the minimal one: its directory comes first on the path
        try:
            r = probe(ctx, [[label, mods]], nossl="-nossl" in flags, path=mini if "-minimal" in flags else None)[0]
            rl = probe(ctx, [[label, mods]], lock=True, nossl="-nossl" in flags,
                       path=mini if "-minimal" in flags else None)[0]
        except RuntimeError as e:
            singles.append({"label": label, "error": str(e)})   # a finding too: that subset needs ssl
            continue
        singles.append({"label": label, "rss_kb": r["Rss"], "pss_kb": r["Pss"], "uss_kb": r["Uss"],
                        "modules": r["modules"], "locked_rss_kb": rl["Rss"], "vmlck_kb": rl["VmLck"]})
    for s in singles:
        if "error" in s:
            rows.append([s["label"] + " alone", s["error"], "", "", "", "", "", "", ""])
            continue
        rows.append([s["label"] + " alone", _mb(s["rss_kb"]), "+" + _mb(s["rss_kb"] - base["Rss"]),
                     _mb(s["pss_kb"]), _mb(s["uss_kb"]), str(s["modules"]), _mb(s["locked_rss_kb"]),
                     _mb(s["vmlck_kb"]), ""])
    other = other_interpreter()
    if other:
        ctx.say("memory: the same ladder under %s" % other)
        o_off = probe(ctx, LADDER, python=other)
        o_on = probe(ctx, LADDER, lock=True, python=other)
        for i in (0, RUN_PATH, len(LADDER) - 1):
            a, b = o_off[i], o_on[i]
            rows.append(["[%s] %s" % (other, a["label"]), _mb(a["Rss"]), "", _mb(a["Pss"]), _mb(a["Uss"]),
                         str(a["modules"]), _mb(b["Rss"]), _mb(b["VmLck"]), ""])
    else:
        o_off = o_on = []
    notes = [
        "realtime on = mlockall(MCL_CURRENT|MCL_FUTURE) before the imports: every page of every mapping "
        "(libraries whole, heap, the 8 MB main stack's touched part) is faulted in and counted in RSS; "
        "the difference between the two RSS columns is what locking costs at that layer",
        "MCL_ONFAULT (Linux 4.4) locks a page when it is first touched instead of faulting in whole "
        "mappings: the last column is what realtime on would cost locked that way",
    ]
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Fresh CPython interpreters (warm bytecode cache, -S: no site .pth files) import the run path "
                   "layer by layer, "
                   "cumulatively, and read /proc/self/smaps_rollup (RSS, PSS, USS = private clean + dirty) "
                   "and /proc/self/status (VmLck) after each layer; once as realtime off and once after "
                   "mlockall(MCL_CURRENT|MCL_FUTURE) as realtime on does. Then single imports on a bare "
                   "interpreter, pyroute2-minimal from a private pip --target directory; 'ssl blocked' "
                   "= sys.modules['ssl'] = None, as on a Python built without OpenSSL. MB = MiB."),
        "table": {"columns": ["layer (cumulative) / single import", "RSS MB", "delta RSS", "PSS MB", "USS MB",
                              "modules", "RSS MB, mlockall", "VmLck MB",
                              "RSS / VmLck MB, mlockall MCL_ONFAULT"], "rows": rows},
        "notes": notes,
        "ladder": {"off": off, "on": on, "onfault": onfault},
        "singles": singles,
        "other_interpreter": {"python": other, "off": o_off, "on": o_on} if other else None,
        "pyroute2_minimal_dir": mini,
    }
