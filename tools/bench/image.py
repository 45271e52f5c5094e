"""Figure 11: the appliance image under QEMU - boot, failover and the agent's memory on the box.

Theory of operation
-------------------
The figure runs the x86_64 image's own tests (``tests/image/test_image.py``:
the one-box boot with the watchdog reset, and the pair's power loss, failback
and hung-agent reset), which build ``output/qemu-x86_64/disk.img`` first when
it is missing or stale (``image/build``, incremental), boot the boxes under
QEMU and write every time they measure, and their notes, to
``output/qemu-x86_64/image-test-times.json``.  The table is that file: the
times on the host's clock, and the agent's memory as each box's ``/proc``
gave it (smaps_rollup, status, meminfo: RSS, PSS, USS, VmLck, MemAvailable
with the agent and after ``S45hanode stop``).

Under TCG every figure is the emulator's, and a busy machine stretches boot
times by seconds: the header's load average says how busy it was.
"""
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, List

from tools.bench import FIGURES
from tools.bench.common import REPO_ROOT, BenchError, Context, machine_line

NAME = "image"
TITLE = FIGURES[NAME]
BOARD = "qemu-x86_64"
TESTS = "tests/image/test_image.py"
SELECT = "boot_python or pair_failover"
TIMES = os.path.join(REPO_ROOT, "output", BOARD, "image-test-times.json")
RUN_TIMEOUT_S = 1800


def _memory_rows(notes: List[str]) -> List[List[str]]:
    rows = []
    for text in notes:
        if "memory" not in text:
            continue
        what, _, measured = text.partition(": hanode's memory")
        rows.append(["%s: hanode's memory%s" % (what, measured.split(":")[0]), measured.partition(": ")[2]])
    return rows


def run(ctx: Context) -> Dict[str, Any]:
    if os.geteuid() != 0:
        raise BenchError("the image figure boots QEMU boxes on a bridge it creates: run it as root")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS, "-k", SELECT]
    ctx.say("image: %s (builds the image if needed; ~4-8 min)" % " ".join(argv[2:]))
    started = time.time()
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BenchError("the image tests failed (exit %d):\n%s" % (result.returncode, "\n".join(tail)))
    if not os.path.exists(TIMES) or os.path.getmtime(TIMES) < started:
        raise BenchError("the image tests passed but wrote no %s" % TIMES)
    with open(TIMES) as f:
        measured = json.load(f)
    rows = [[t["step"], "%.1f s" % t["value"]] for t in measured.get("times", [])]
    rows += _memory_rows(measured.get("notes", []))
    other = [n for n in measured.get("notes", []) if "memory" not in n]
    available = [int(m) for n in measured.get("notes", []) for m in re.findall(r"MemAvailable (\d+)", n)]
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("python3 -m pytest %s -k '%s': the x86_64 image (image/build, incremental) booted under "
                   "QEMU TCG, one box then a pair on a bridge and the paced null-modem; times on the host's "
                   "clock (the boot chart puts the kernel's uptime on it, see image/README.md), the agent's "
                   "memory from the box's /proc. Took %.0f s." % (TESTS, SELECT, time.time() - started)),
        "table": {"columns": ["what", "measured"], "rows": rows},
        "notes": other,
        "results": {"times": measured.get("times", []), "notes": measured.get("notes", []),
                    "mem_available_kb": available},
    }
