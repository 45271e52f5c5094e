"""tools.sniff on logs that a real null-modem recorded while real frames crossed it."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from hanode.core.auth import Auth
from hanode.core.frame import STATE_ACTIVE, STANDBY, Frame, cobs_decode, cobs_encode, encode
from hanode.nullmodem import NullModem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "9f3c1e7a52d08b64c2e5f19a7d3b80e6a4c95f2718d06be3f7a1c48e2b95d063"


def config_dir(tmp_path, authkeys):
    d = tmp_path / "ha.d"
    d.mkdir()
    shutil.copy(os.path.join(ROOT, "examples", "tight", "ha.cf"), str(d / "ha.cf"))
    shutil.copy(os.path.join(ROOT, "examples", "tight", "haresources"), str(d / "haresources"))
    (d / "authkeys").write_text(authkeys)
    os.chmod(str(d / "authkeys"), 0o600)
    return str(d)


def sniff(*args):
    out = subprocess.run([sys.executable, "-m", "tools.sniff"] + list(args), cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    return out


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def record(tmp_path, auth, script):
    """Run ``script(write_a, write_b, nm)`` over a logged null-modem; return the log path."""
    log = str(tmp_path / "nm.log")
    with NullModem(log=log) as nm:
        fa = os.open(nm.paths[0], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        fb = os.open(nm.paths[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            script(lambda b: os.write(fa, b), lambda b: os.write(fb, b), nm)
            assert nm.wait_idle(3.0)
        finally:
            drain(fa)
            drain(fb)
            os.close(fa)
            os.close(fb)
    return log


def exchange(auth, other_auth):
    """node1 (src 0) and node2 (src 1) talk; plus a duplicate, a forged tag, noise and a cut."""
    sent = {"a>b": [], "b>a": []}

    def script(wa, wb, nm):
        for i in range(1, 6):
            f1 = Frame(src=0, gen=7, seq=i, state=STATE_ACTIVE, held=1, want=1, ack_gen=3, ack_seq=i)
            f2 = Frame(src=1, gen=3, seq=i, flags=STANDBY if i == 5 else 0, ack_gen=7, ack_seq=i)
            wa(encode(f1, auth))
            wb(encode(f2, auth))
            sent["a>b"].append(f1)
            sent["b>a"].append(f2)
            time.sleep(0.03)
        wa(encode(Frame(src=0, gen=7, seq=5, state=STATE_ACTIVE, held=1, want=1, ack_gen=3, ack_seq=5), auth))
        wa(encode(Frame(src=0, gen=7, seq=99), other_auth))  # right shape, wrong key
        assert nm.wait_idle(1.0)  # noise now would splice into those frames instead
        nm.inject("a>b", b"\x11\x22\x33\x00")                # noise ending in a delimiter
        assert nm.wait_idle(1.0)
        f = Frame(src=0, gen=7, seq=8, state=STATE_ACTIVE, held=1, want=1, ack_gen=3, ack_seq=5)
        wa(encode(f, auth))                                   # seq 6 and 7 never sent: a gap of 2
        sent["a>b"].append(f)
        assert nm.wait_idle(1.0)
        nm.cut()
        wa(encode(Frame(src=0, gen=7, seq=9), auth))          # lost in the cut
        assert nm.wait_idle(1.0)
        nm.reconnect()

    return script, sent


def test_sniff_verifies_with_authkeys_and_summarises(tmp_path):
    auth = Auth(1, {1: ("hmac-sha256", KEY.encode())})
    forged = Auth(1, {1: ("hmac-sha256", b"not the key")})
    script, sent = exchange(auth, forged)
    log = record(tmp_path, auth, script)
    cfg = config_dir(tmp_path, "auth 1\n1 hmac-sha256 %s\n" % KEY)
    out = sniff(log, "--config-dir", cfg, "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    summary = rows.pop()["summary"]
    events = [r["event"] for r in rows if "event" in r]
    assert events == ["start", "cut", "reconnect", "close"]
    frames = [r for r in rows if "event" not in r]
    for direction in ("a>b", "b>a"):
        ok = [r for r in frames if r["dir"] == direction and r["verdict"] == "ok"]
        assert [(r["src"], r["gen"], r["seq"], r["held"], r["want"], r["ack_gen"], r["ack_seq"])
                for r in ok] == [(f.src, f.gen, f.seq, f.held, f.want, f.ack_gen, f.ack_seq)
                                 for f in sent[direction]]
        assert all(r["size"] == 24 for r in ok)
        times = [r["t"] for r in frames if r["dir"] == direction]
        assert times == sorted(times)
    by_verdict = {}
    for r in frames:
        by_verdict.setdefault(r["verdict"], []).append(r)
    assert [r["seq"] for r in by_verdict["duplicate"]] == [5]
    assert len(by_verdict["bad_tag"]) == 1 and "src" not in by_verdict["bad_tag"][0]
    assert by_verdict["ok"][0]["node"] == "node1" and by_verdict["ok"][0]["state"] == "active"
    assert [r for r in frames if r["dir"] == "b>a" and r["seq"] == 5][0]["flags"] == ["standby"]
    ab, ba = summary["directions"]["a>b"], summary["directions"]["b>a"]
    assert (ab["frames"], ba["frames"]) == (6, 5)
    assert ab["bytes_per_frame"] == 24 and ab["seq_gaps"] == 2 and ba["seq_gaps"] == 0
    # Drops are the real Decoder's counters: the duplicate, the forged tag, the noise.
    assert ab["drops"] == {"duplicate": 1, "bad_tag": 1, "garbage": 1}
    assert ba["drops"] == {}
    # wire bytes: 8 frames of 24 + 4 noise bytes carried a>b; utilisation is that over the span.
    assert ab["wire_bytes"] == 8 * 24 + 4 and summary["baud"] == 19200
    assert ab["utilisation"] == pytest.approx(ab["wire_bytes"] / (summary["seconds"] * 1920), rel=1e-3)
    text = sniff(log, "--config-dir", cfg)
    assert text.returncode == 0
    assert "node1(0)   gen=7     seq=1      active" in text.stdout
    assert "--- cut ---" in text.stdout and "seq gaps 2" in text.stdout
    assert "drops: bad_tag 1, duplicate 1, garbage 1" in text.stdout


def test_sniff_without_keys_decodes_framing_only(tmp_path):
    auth = Auth(1, {1: ("hmac-sha256", KEY.encode())})
    forged = Auth(1, {1: ("hmac-sha256", b"not the key")})
    script, sent = exchange(auth, forged)
    log = record(tmp_path, auth, script)
    out = sniff(log, "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    summary = rows.pop()["summary"]
    frames = [r for r in rows if "event" not in r and "src" in r]
    # Without the key the forged frame cannot be told apart: it shows as
    # unverified, and its high seq makes the genuine seq 8 look like a replay.
    assert [(r["seq"], r["verdict"]) for r in frames if r["dir"] == "a>b"] == [
        (1, "unverified"), (2, "unverified"), (3, "unverified"), (4, "unverified"), (5, "unverified"),
        (5, "duplicate"), (99, "unverified"), (8, "replay")]
    assert {r["verdict"] for r in frames if r["dir"] == "b>a"} == {"unverified"}
    assert summary["directions"]["a>b"]["drops"] == {"duplicate": 1, "garbage": 1, "replay": 1}
    assert "unverified" in sniff(log).stdout


def test_sniff_checks_crc_tags_without_keys(tmp_path):
    auth = Auth(3, {3: ("crc", None)})

    def script(wa, wb, nm):
        wa(encode(Frame(src=0, gen=1, seq=1), auth))
        raw = bytearray(cobs_decode(encode(Frame(src=0, gen=1, seq=2), auth)[:-1]))
        raw[12] ^= 0x40  # a bit error in `held` that still frames fine: only the crc can catch it
        wa(cobs_encode(bytes(raw)) + b"\x00")
        wa(encode(Frame(src=0, gen=1, seq=3), auth))

    log = record(tmp_path, auth, script)
    rows = [json.loads(line) for line in sniff(log, "--json").stdout.splitlines()]
    frames = [r for r in rows if "dir" in r and "data" not in r]
    assert [(r.get("seq"), r["verdict"], r["size"]) for r in frames] == [
        (1, "ok", 20), (None, "bad_tag", 20), (3, "ok", 20)]


def test_sniff_live_port(tmp_path):
    auth = Auth(1, {1: ("hmac-sha256", KEY.encode())})
    with NullModem() as nm:
        proc = subprocess.Popen([sys.executable, "-m", "tools.sniff", "--port", nm.paths[1], "--duration",
                                 "1.0", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        fa = os.open(nm.paths[0], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            time.sleep(0.4)  # let the sniffer open its port
            for i in range(1, 4):
                os.write(fa, encode(Frame(src=1, gen=2, seq=i), auth))
                time.sleep(0.02)
            out, err = proc.communicate(timeout=10)
        finally:
            os.close(fa)
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows if "seq" in r] == [1, 2, 3]
    assert rows[-1]["summary"]["directions"][nm.paths[1]]["frames"] == 3


def test_sniff_errors_and_help(tmp_path):
    assert "--config-dir" in sniff("--help").stdout
    bad = tmp_path / "bad.log"
    bad.write_text('{"t": 1, "dir": "a>b", "data": "00"}\nnot json\n')
    out = sniff(str(bad))
    assert out.returncode != 0 and "%s:2: not a nullmodem log line" % bad in out.stderr
    missing = sniff(str(tmp_path / "nope.log"))
    assert missing.returncode != 0 and "cannot open" in missing.stderr
    cfg = tmp_path / "empty"
    cfg.mkdir()
    out = sniff(str(bad), "--config-dir", str(cfg))
    assert out.returncode != 0 and "authkeys" in out.stderr


def test_sniff_shows_challenge_and_rejoin_frames(tmp_path):
    """issue 13 finding 1: the rejoin's frames (types 1 and 2, 32 bytes) are decoded and named."""
    from hanode.core.frame import TYPE_CHALLENGE, TYPE_REJOIN, Control
    auth = Auth(1, {1: ("hmac-sha256", KEY.encode())})

    def script(wa, wb, nm):
        wa(encode(Frame(src=0, gen=7, seq=1, state=STATE_ACTIVE), auth))
        wa(encode(Control(type=TYPE_CHALLENGE, src=0, target=1, gen=7, seq=2, floor_gen=3, floor_seq=40,
                          nonce=0x1234abcd), auth))
        wb(encode(Control(type=TYPE_REJOIN, src=1, target=0, gen=3 + 65536, seq=1, floor_gen=3,
                          floor_seq=40, nonce=0x1234abcd), auth))
    log = record(tmp_path, auth, script)
    cfg = config_dir(tmp_path, "auth 1\n1 hmac-sha256 %s\n" % KEY)
    out = sniff(log, "--config-dir", cfg, "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    frames = [r for r in rows if "verdict" in r]
    kinds = sorted((r["dir"], r.get("kind") or "", r["size"], r["verdict"]) for r in frames)
    assert kinds == [("a>b", "", 24, "ok"), ("a>b", "challenge", 32, "ok"), ("b>a", "rejoin", 32, "ok")], kinds
    text = sniff(log, "--config-dir", cfg)
    assert text.returncode == 0, text.stderr
    assert "node1(0)   gen=7     seq=2      challenge to=1 floor=3/40 nonce=1234abcd  ok" in text.stdout, text.stdout
    assert "node2(1)   gen=65539 seq=1      rejoin    to=0 floor=3/40 nonce=1234abcd  ok" in text.stdout
