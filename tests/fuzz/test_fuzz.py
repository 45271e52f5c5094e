"""Coverage-guided fuzzing of the frame decoder and the three config parsers, bounded for CI.

Theory of operation
-------------------
Each harness in tests/fuzz/ is a standalone atheris script.  Here every one
runs as its own process (libFuzzer owns the process) for
``HANODE_FUZZ_SECONDS`` seconds (default 15 each, ~60 s for the four), seeded
with its ``seeds()`` (valid frames, the example configurations).  A crash
fails the test with the input (hex) and the traceback; the fix is to save the
input under ``tests/fuzz/regressions/<harness>/`` - those files, and the seeds,
are replayed through ``TestOneInput`` by plain pytest on every run (no atheris
needed), so a crash found once stays a test forever.

Long run (documented in docs/faults.md)::

    HANODE_FUZZ_SECONDS=3600 python3 -m pytest -q tests/fuzz/test_fuzz.py
    # or one harness, keeping its corpus between runs:
    python3 tests/fuzz/fuzz_decoder.py --seeds corpus/decoder corpus/decoder -max_total_time=3600
"""
import glob
import importlib
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = HERE
REPO = os.path.dirname(os.path.dirname(HERE))
HARNESSES = ("decoder", "hacf", "authkeys", "haresources")
SECONDS = float(os.environ.get("HANODE_FUZZ_SECONDS", "15"))
# config harnesses: the examples are < 1 KB; longer random text only finds the parser's
# did-you-mean cost (see docs/faults.md), not new paths
MAX_LEN = {"decoder": 512, "hacf": 1024, "authkeys": 1024, "haresources": 1024}


def harness(name):
    if FUZZ not in sys.path:
        sys.path.insert(0, FUZZ)
    return importlib.import_module("fuzz_" + name)


def regression_inputs():
    cases = []
    for name in HARNESSES:
        for path in sorted(glob.glob(os.path.join(FUZZ, "regressions", name, "*"))):
            cases.append(pytest.param(name, path, id="%s-%s" % (name, os.path.basename(path))))
    return cases


@pytest.mark.parametrize("name", HARNESSES)
def test_seeds_pass_the_harness(name):
    """The harness itself runs without atheris, and every seed satisfies its invariants."""
    h = harness(name)
    seeds = h.seeds()
    assert seeds
    for data in seeds:
        h.TestOneInput(data)


@pytest.mark.parametrize("name,path", regression_inputs() or [pytest.param(None, None, marks=pytest.mark.skip(
    reason="no regression inputs saved yet"))])
def test_regression_input(name, path):
    with open(path, "rb") as f:
        data = f.read()
    harness(name).TestOneInput(data)


def test_the_decoder_harness_notices_a_broken_invariant(monkeypatch):
    """The harness checks something: a decoder that drops frames when fed in pieces is caught."""
    h = harness("decoder")
    from hanode.core import frame
    real_feed = frame.Decoder.feed

    def lossy_feed(self, data):
        out = real_feed(self, data)
        return out if len(data) > 40 else []      # frames completed by a small chunk vanish
    monkeypatch.setattr(frame.Decoder, "feed", lossy_feed)
    with pytest.raises(AssertionError, match="chunking changed|does not round-trip"):
        for data in h.seeds():
            h.TestOneInput(data)


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz(name, tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris; it is in the test extra)")
    corpus = tmp_path / "corpus"
    artifacts = str(tmp_path) + os.sep
    argv = [sys.executable, os.path.join(FUZZ, "fuzz_%s.py" % name), "--seeds", str(corpus), str(corpus),
            "-max_total_time=%d" % max(1, int(SECONDS)), "-max_len=%d" % MAX_LEN[name],
            "-artifact_prefix=" + artifacts, "-timeout=30", "-rss_limit_mb=2048", "-print_final_stats=1"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS + 120, env=env, cwd=str(tmp_path))
    crashes = sorted(glob.glob(artifacts + "crash-*") + glob.glob(artifacts + "timeout-*")
                     + glob.glob(artifacts + "oom-*"))
    if proc.returncode != 0 or crashes:
        found = []
        for path in crashes:
            with open(path, "rb") as f:
                data = f.read()
            found.append("%s (%d bytes): %s\n  %r" % (os.path.basename(path), len(data), data.hex(), data[:300]))
        pytest.fail("fuzz_%s found a problem (exit %d). Save the input under tests/fuzz/regressions/%s/ and fix it.\n"
                    "%s\n--- output (tail) ---\n%s" % (name, proc.returncode, name, "\n".join(found) or "(no artifact)",
                                                     proc.stderr[-6000:]))
    runs = [line for line in proc.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 0, proc.stderr[-3000:]
