"""The benchmark tool as a user runs it: ``python -m tools.bench`` in a subprocess.

These tests check that the tool works and that what it reports is well-formed
and internally consistent (types, every figure present, percentiles ordered,
nobody declared dead before the dead time).  They never assert a performance
target: benchmarks print figures, tests check behaviour.

The full smoke run (``--quick``, real agents in namespaces) needs root and
takes about 1-2 minutes; the codec-only run and the CLI errors need neither.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIGURES = ("failover", "safe", "wire", "jitter", "footprint", "codec")


def bench(*args, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-m", "tools.bench"] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ha_cf_ms(text):
    """An ha.cf time ("500ms", "15") in ms."""
    return float(text[:-2]) if text.endswith("ms") else float(text) * 1000


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_dist(d, keys=("p50", "p95", "max")):
    assert isinstance(d["n"], int) and d["n"] >= 1, d
    values = [d[k] for k in ("min",) + tuple(keys)]
    assert all(is_number(v) for v in values), d
    assert values == sorted(values), "percentiles out of order: %r" % d


def check_figure(fig):
    assert "error" not in fig, fig.get("error")
    for key in ("title", "method", "machine"):
        assert isinstance(fig[key], str) and fig[key], key
    cols, rows = fig["table"]["columns"], fig["table"]["rows"]
    assert cols and all(isinstance(c, str) for c in cols)
    assert rows, "figure %s has an empty table" % fig["title"]
    for row in rows:
        assert len(row) == len(cols) and all(isinstance(c, str) for c in row), row
    assert isinstance(fig["notes"], list)


def test_unknown_figure_is_refused_with_the_choices():
    r = bench("--only", "failover,nonsense", timeout=60)
    assert r.returncode == 2
    assert "nonsense" in r.stderr and "footprint" in r.stderr


def test_plot_without_matplotlib_says_how_to_get_it():
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed here")
    except ImportError:
        pass
    r = bench("--only", "codec", "--plot", "/nonexistent/x.png", timeout=60)
    assert r.returncode == 2
    assert "matplotlib" in r.stderr and "pip install" in r.stderr


def test_codec_only_needs_no_root(tmp_path):
    out = tmp_path / "codec.json"
    r = bench("--quick", "--only", "codec", "--json", str(out), "-q", timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert list(report["figures"]) == ["codec"]
    fig = report["figures"]["codec"]
    check_figure(fig)
    cpython = [x for x in fig["results"] if x["interpreter"] == "cpython"]
    assert cpython, fig["results"]
    for method, wire in (("hmac-sha256", 24), ("crc", 20)):
        m = cpython[0]["methods"][method]
        assert m["wire_bytes"] == wire
        for op in ("encode", "decode_verify", "roundtrip", "feed_roundtrip"):
            assert isinstance(m[op], int) and m[op] > 0
    assert "codec" in r.stdout and "encode/s" in r.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_quick_run_reports_every_figure(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the benchmarks build network namespaces: needs root")
    out = tmp_path / "bench.json"
    r = bench("--quick", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())

    meta = report["meta"]
    assert meta["quick"] is True and isinstance(meta["date"], str)
    assert isinstance(meta["machine"]["nproc"], int) and meta["machine"]["cpu"] and meta["machine"]["kernel"]
    assert set(report["figures"]) == set(FIGURES)
    for name in FIGURES:
        check_figure(report["figures"][name])
        assert report["figures"][name]["title"] in r.stdout

    fo = report["figures"]["failover"]
    assert fo["timings"]
    for t in fo["timings"]:
        assert not t["errors"], t["errors"]
        assert t["trials"]
        deadtime = ha_cf_ms(t["timing"]["deadtime"])
        for trial in t["trials"]:
            for key in ("detect_ms", "detect_after_last_beat_ms", "vip_up_ms", "client_ms", "failback_outage_ms"):
                assert is_number(trial[key]), (key, trial)
            # behaviour, not speed: the peer is never declared dead before a dead time of silence
            # (the log has ms resolution, the cable log a byte's time)
            assert trial["detect_after_last_beat_ms"] >= deadtime - 2, trial
            assert trial["vip_up_ms"] >= trial["detect_ms"] - 2, trial
        check_dist(t["summary"]["detect_ms"])
        assert is_number(t["double_holder_ms"])
        assert t["timeline"]["client"] and t["timeline"]["node1_beats_ms"]

    safe = report["figures"]["safe"]
    assert safe["runs"]
    for run in safe["runs"]:
        assert isinstance(run["false_failovers"], int) and isinstance(run["late_heartbeats"], int)
        assert run["counters_complete"], run
        assert run["frames"] > 0 and is_number(run["max_silence_ms"])
    assert set(safe["smallest_safe_deadtime_ms"]) == {str(r["keepalive_ms"]) for r in safe["runs"]}

    wire = report["figures"]["wire"]
    assert wire["bytes_per_frame"] == 24   # the hmac-sha256 frame of docs/protocol.md, read off the cable
    for run in wire["runs"]:
        assert run["frames_per_s"] > 0 and 0 < run["utilisation_pct"] < 100
        assert isinstance(run["rejected"], int) and isinstance(run["corrupted_on_cable"], int)
        assert isinstance(run["replaced"], int)
        assert sum(run["invalid_by_reason"].values()) == run["corrupted_on_cable"]

    jitter = report["figures"]["jitter"]
    conditions = {(x["load"] > 0, x["realtime"]) for x in jitter["runs"]}
    assert conditions == {(loaded, rt) for loaded in (False, True) for rt in (False, True)}
    for run in jitter["runs"]:
        check_dist(run["jitter_ms"], ("p50", "p99", "p99.9", "max"))

    fp = report["figures"]["footprint"]
    for timing in ("classic", "tight"):
        for node in ("node1", "node2"):
            c = fp["idle"][timing]["cpu"][node]
            assert is_number(c["cpu_pct"]) and c["cpu_pct"] >= 0
            assert isinstance(c["rss_kb"], int) and c["rss_kb"] > 0
    check_dist(fp["startup"]["ready_ms"])
    assert fp["startup"]["run_path_modules"] and "hanode" in fp["startup"]["import_by_package_ms"]
    assert is_number(fp["imports"]["import_daemon_ms"])

    assert [t["met"] for t in report["targets"]] and all(t["met"] in (True, False, None) for t in report["targets"])
    assert "Targets" in r.stdout
