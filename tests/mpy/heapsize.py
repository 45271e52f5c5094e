"""Bisect the smallest MicroPython heap (-X heapsize) at which the pair test passes.

Theory of operation
-------------------
Runs ``micropython -X heapsize=<N>K tests/mpy/pair.py`` for N between --low and
--high (KB), halving the interval down to --step KB.  A heap size counts as
enough only if the pair test passes --repeat times in a row: with a small heap
the collector runs often and the story runs on real time, so one lucky pass is
not a result.  Prints each try and a final ``smallest heapsize: NK`` line.
This is a measurement tool (tens of seconds), not part of the test suite; the
suite runs the pair test at the figure docs/micropython.md states.

    python3 tests/mpy/heapsize.py [--low 64] [--high 512] [--step 4] [--repeat 2]
"""

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def passes(exe, kb, repeat):
    env = dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen")
    for _ in range(repeat):
        proc = subprocess.run([exe, "-X", "heapsize=%dK" % kb, "tests/mpy/pair.py"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = proc.stdout.decode("utf-8", "replace").strip().split("\n")
        if proc.returncode != 0:
            why = [line for line in out if "Error" in line]
            return False, (why[-1] if why else out[-1])
    return True, out[-1]


def main():
    ap = argparse.ArgumentParser(description="Find the smallest -X heapsize at which tests/mpy/pair.py "
                                             "passes under MicroPython.")
    ap.add_argument("--micropython", default="micropython", metavar="PATH")
    ap.add_argument("--low", type=int, default=64, help="KB known (or assumed) too small")
    ap.add_argument("--high", type=int, default=512, help="KB known to be enough")
    ap.add_argument("--step", type=int, default=4, help="resolution in KB")
    ap.add_argument("--repeat", type=int, default=2, help="passes needed at one size")
    args = ap.parse_args()
    exe = shutil.which(args.micropython)
    if exe is None:
        sys.exit("micropython not found; install it with tools/setup --test")
    ok, why = passes(exe, args.high, args.repeat)
    print("%4dK %s  %s" % (args.high, "pass" if ok else "FAIL", why))
    if not ok:
        sys.exit("the pair test does not pass even at %dK" % args.high)
    low, high = args.low, args.high
    while high - low > args.step:
        mid = (low + high) // 2
        ok, why = passes(exe, mid, args.repeat)
        print("%4dK %s  %s" % (mid, "pass" if ok else "FAIL", why))
        if ok:
            high = mid
        else:
            low = mid
    print("smallest heapsize: %dK" % high)


if __name__ == "__main__":
    main()
