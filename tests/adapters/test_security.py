"""Security: replayed and forged frames, the control socket's caller check, the key file's mode.

Theory of operation
-------------------
Two levels, as in docs/faults.md:

- the simulated pair (tests/support/sim.py: two real ``Node`` objects on a
  simulated clock and line) for the statistics-free logic: frames captured
  from the line and fed back minutes later, after the peer rebooted, after we
  rebooted (the persisted generation floor), and forged frames of every kind
  an attacker on the cable can build - each must be dropped under its own
  counter and change nothing.  The crc method is the exception, by design:
  a forger who can compute CRC-32 is accepted, which is why check-config
  says crc authenticates nothing (checked here too);
- real processes: ``hanode run`` pairs in the two-box lab (namespaces, the
  paced null-modem) with captured frames written back into the cable through
  the node's PTY, exactly where an attacker with a serial tap would put them;
  a real unprivileged user (``nobody``) knocking on the control socket; and
  ``hanode run`` refusing an authkeys file others can read (exit 6).
"""
import json
import os
import pwd
import select
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from hanode.core.auth import Auth
from hanode.core.config import parse
from hanode.core.frame import Frame, cobs_encode, encode, pack_body
from tests.support.sim import HA_CF, Sim
from tests.adapters.test_generation import make_config_dir, run_daemon, stop_daemon

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = b"0123456789abcdef0123456789abcdef"      # tests/support/sim.py's authkeys
GROUP = "192.0.2.100"
ST_SHUTDONE = 3


# ------------------------------------------------------------------ helpers (simulated pair)
def cold_start(**kwargs):
    sim = Sim(**kwargs)
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    return sim


def capture_sends(box):
    """Record every frame the box puts on the line from now on (a tap on the cable)."""
    captured = []
    original = box.handle

    def handle(outputs):
        captured.extend(o.data for o in outputs if o.kind == "send")
        original(outputs)
    box.handle = handle
    return captured


def dropped(box):
    return box.node.status()["counters"]["dropped"]


def view(box):
    st = box.node.status()
    return (st["peer_state"], st["peer_generation"], [(g["held_by"], g["state"]) for g in st["groups"]],
            st["counters"]["frames_received"])


def inject(sim, box, data):
    box.handle(box.node.receive(data, sim.now))


# ------------------------------------------------------------------ replay (simulated pair)
def test_replay_minutes_later_is_dropped_and_counted():
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    tap = capture_sends(n1)
    sim.run(2000)
    frames = list(tap)
    assert len(frames) >= 15                     # ~ 2 s of 100 ms keepalives
    sim.run(5 * 60 * 1000)                       # five minutes later
    before_drop, before_view = dict(dropped(n2)), view(n2)
    inject(sim, n2, b"".join(frames))
    after = dropped(n2)
    assert after["replay"] - before_drop["replay"] == len(frames)
    assert view(n2) == before_view               # nothing accepted, nothing changed
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0


def test_replayed_frames_do_not_keep_a_dead_peer_alive():
    """A tap replaying node1's old heartbeats after node1 lost power must not delay the failover."""
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    tap = capture_sends(n1)
    sim.run(3000)
    recorded = list(tap)
    sim.power_off("node1")
    lost = sim.now
    i = 0
    while not sim.box("node2").holds(GROUP) and sim.now - lost < 5000:
        if sim.now % 100 == 0:                   # one old frame per keepalive, as the real node sent them
            inject(sim, n2, recorded[i % len(recorded)])
            i += 1
        sim.step()
    took = sim.now - lost
    cfg = sim.cfg
    assert n2.holds(GROUP), n2.log_text()
    assert took <= cfg.deadtime_ms + cfg.keepalive_ms + sim.probe_ms + sim.action_ms + 4 * sim.tick_ms, took
    assert dropped(n2)["replay"] >= i - 1


def test_replay_after_the_peer_rebooted_is_dropped():
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    tap = capture_sends(n1)
    sim.run(1000)
    old = list(tap)
    old_gen = n2.node.status()["peer_generation"]
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    sim.power_on("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    assert n2.node.status()["peer_generation"] == old_gen + 1
    n2 = sim.box("node2")
    before_drop, before_view = dict(dropped(n2)), view(n2)
    inject(sim, n2, b"".join(old))
    assert dropped(n2)["replay"] - before_drop["replay"] == len(old)
    assert view(n2) == before_view
    sim.run(2000)
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0


def test_replay_after_we_rebooted_is_dropped_thanks_to_the_persisted_floor():
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    saved = []                                   # what the daemon writes to <state_dir>/peer_generation
    original = n2.handle
    n2.handle = lambda outs: (saved.extend(o.generation for o in outs if o.kind == "peer_generation"),
                              original(outs))
    tap = capture_sends(n1)
    sim.run(1000)
    gen1_frames = list(tap)
    # node1 reboots (generation 2); node2 sees it and persists 2
    sim.power_off("node1")
    sim.run(100)
    sim.power_on("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"] and saved[-1:] == [2], 8000) \
        is not None, saved
    tap2 = capture_sends(sim.box("node1"))
    sim.run(1000)
    gen2_frames = list(tap2)
    # now node2 itself reboots, restoring the floor the daemon persisted
    sim.power_off("node2")
    sim.peer_generation_floor["node2"] = saved[-1]
    sim.power_on("node2")
    n2 = sim.box("node2")
    # a replay of generation 1 reaches the fresh node2 before node1's first real frame does
    inject(sim, n2, b"".join(gen1_frames))
    assert dropped(n2)["replay"] == len(gen1_frames)
    assert n2.node.status()["peer_generation"] is None       # nothing accepted
    # documented limit (docs/protocol.md): one frame of the floor generation itself is accepted
    # once after our restart, and superseded by the peer's next real frame
    inject(sim, n2, gen2_frames[0])
    assert n2.node.status()["counters"]["frames_received"] == 1
    inject(sim, n2, b"".join(gen2_frames[1:3]))
    assert n2.node.status()["counters"]["frames_received"] == 3
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    inject(sim, n2, b"".join(gen2_frames))
    assert n2.node.status()["counters"]["frames_received"] > 3
    assert sim.doubles_ms == 0


# ------------------------------------------------------------------ forged frames (simulated pair)
def forged(state=ST_SHUTDONE, gen=1, seq=100000, flags=0):
    """A frame 'from node1' saying it shut down: accepting it would hand node2 the group blind."""
    return Frame(src=0, gen=gen, seq=seq, state=state, flags=flags, ack_gen=1, ack_seq=1, held=0, want=0)


def wire(body_and_tag):
    return cobs_encode(body_and_tag) + b"\x00"


def forgeries():
    """Every frame an attacker without the key can build, with the counter it must land under."""
    f = forged()
    right = Auth(1, {1: ("hmac-sha256", KEY)})
    body = pack_body(f, 1)
    good_tag = right.tag(1, body)
    crc = Auth(1, {1: ("crc", None)})
    return [
        ("bad_tag", encode(f, Auth(1, {1: ("hmac-sha256", b"not-the-key-not-the-key-not-the-k")}))),
        ("bad_tag", encode(f, Auth(1, {1: ("sha1", KEY)}))),               # right key, wrong method
        ("bad_tag", wire(body + crc.tag(1, body) * 2)),                    # crc attacker, padded to 8 bytes
        ("length", encode(f, crc)),                                        # crc attacker: 4-byte tag
        ("unknown_key", encode(f, Auth(2, {2: ("hmac-sha256", KEY)}))),    # key index 2 is not in authkeys
        ("unknown_key", encode(f, Auth(9, {9: ("crc", None)}))),
        ("length", wire(body + good_tag[:4])),                             # truncated tags
        ("length", wire(body + good_tag[:7])),
        ("length", wire(body)),
        ("version", wire(bytes([0xC1]) + body[1:] + good_tag)),       # version 3 (2 is a status frame with LAN health)
        ("length", wire(bytes([0x71]) + body[1:] + good_tag)),       # a status body as a type 3 notice
        ("version", wire(bytes([0xB1]) + body[1:] + good_tag)),      # version 2 is for status frames only
        ("garbage", b"\x05\x41\x00"),
    ]


@pytest.mark.parametrize("reason,data", forgeries(), ids=[r for r, _ in forgeries()])
def test_forged_frame_is_dropped_under_its_reason(reason, data):
    sim = cold_start()
    n2 = sim.box("node2")
    before_drop, before_view = dict(dropped(n2)), view(n2)
    for _ in range(5):
        inject(sim, n2, data)
    after = dropped(n2)
    assert after[reason] - before_drop[reason] == 5, after
    assert sum(after.values()) - sum(before_drop.values()) == 5, after      # and under no other reason
    assert view(n2) == before_view
    sim.run(3000)
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0
    assert n2.node.status()["peer_state"] == "active"


def test_forged_frame_with_the_right_tag_but_wrong_source_is_not_taken_as_the_peer():
    """Our own id from another boot with a valid tag: never our peer's view.  It is what a
    second box with our name sends (issue 13 finding 6): flagged as an identity conflict."""
    sim = cold_start()
    n2 = sim.box("node2")
    before = n2.node.status()["counters"]
    f = Frame(src=1, gen=99, seq=1, state=ST_SHUTDONE)
    inject(sim, n2, encode(f, Auth(1, {1: ("hmac-sha256", KEY)})))
    st = n2.node.status()
    assert st["counters"]["identity_conflicts"] == before["identity_conflicts"] + 1
    assert st["counters"]["frames_received"] == before["frames_received"]
    assert st["identity_conflict"]["their_generation"] == 99 and st["peer_state"] == "active"


def crc_sim():
    sim = Sim()
    text = HA_CF.format(keepalive="100ms", warntime="300ms", deadtime="500ms", initdead="2",
                        failback="on", probe="on")
    sim.configs = {n: parse(text, "auth 1\n1 crc\n", "node1 192.0.2.100 httpd\n", me=n) for n in ("node1", "node2")}
    sim.cfg = sim.configs["node1"]
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    return sim


def test_crc_mode_accepts_a_forged_frame_as_documented():
    """With `auth N crc` anybody on the cable can speak for node1 (check-config says so).

    Measured: a forged "node1 shut down" frame with a higher seq is accepted; node2 takes the
    group without probing (a goodbye means the address is free) while node1 still holds it, and
    node1's real frames now look older than the forgery, so they are dropped as replays - until
    node2 challenges node1 (they are below its floor) and node1 rejoins under a new generation
    (docs/protocol.md, "Rejoin"), which ends the double (140 ms in the simulation)."""
    sim = crc_sim()
    n2 = sim.box("node2")
    gen = n2.node.status()["peer_generation"]
    before = n2.node.status()["counters"]["frames_received"]
    inject(sim, n2, encode(forged(gen=gen), Auth(1, {1: ("crc", None)})))
    assert n2.node.status()["counters"]["frames_received"] == before + 1
    assert "Received shutdown notice from 'node1'." in n2.log_text()
    sim.run(2000)
    assert sim.doubles_ms > 0
    assert dropped(n2)["replay"] > 0
    assert sim.box("node1").node.counters["generation_jumps"] == 1 and n2.node.counters["rejoins"] == 1
    assert sim.holders() == ["node1"]


def test_check_config_warns_that_crc_authenticates_nothing(tmp_path):
    ha = make_config_dir(str(tmp_path), "/dev/ttyS0")
    with open(os.path.join(ha, "authkeys"), "w") as f:
        f.write("auth 1\n1 crc\n")
    os.chmod(os.path.join(ha, "authkeys"), 0o600)
    r = subprocess.run([sys.executable, "-m", "hanode", "check-config", "--config-dir", ha, "--node", "node1"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    text = r.stdout + r.stderr
    assert "authkeys:2: warning: auth method crc authenticates nothing" in text, text


# ------------------------------------------------------------------ the key file
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_hanode_run_refuses_an_authkeys_file_others_can_read(tmp_path, mode):
    ha = make_config_dir(str(tmp_path), "/dev/null")
    keys = os.path.join(ha, "authkeys")
    os.chmod(keys, mode)
    r = subprocess.run([sys.executable, "-m", "hanode", "run", "--config-dir", ha, "--node", "node1"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert "Bad permissions on keyfile [%s], 600 recommended" % keys in r.stderr
    assert "chmod 600" in r.stderr and "%04o" % mode in r.stderr
    assert "hanode not started: configuration error." in r.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), "control.sock"))


# ------------------------------------------------------------------ the control socket
def _as_user(uid, gid, fn):
    """Run fn() in a forked child that dropped to uid/gid (really: setgroups, setgid, setuid);
    return what it returned (a JSON-able value) or the exception text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                result = {"ok": fn()}
            except Exception as e:
                result = {"error": "%s: %s" % (type(e).__name__, e)}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        ready, _, _ = select.select([r], [], [], 20)
        if not ready:
            break
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data.decode())


def _ask(path, cmd="status"):
    def fn():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass      # a refusing daemon answers and hangs up without reading the request
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return json.loads(data.decode())
    return fn


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the daemon and to become another user")
def test_control_socket_refuses_an_unprivileged_user():
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="hanode-sec-")
    master, slave = os.openpty()
    proc = None
    try:
        os.chmod(base, 0o711)                     # others may traverse, not list
        ha = make_config_dir(base, os.ttyname(slave))
        sock_dir = os.path.join(base, "run")
        with open(os.path.join(ha, "ha.cf"), "a") as f:
            f.write("control_socket %s\n" % os.path.join(sock_dir, "control.sock"))
        proc, text = run_daemon(base, ha)
        assert "READY" in text, text
        path = os.path.join(sock_dir, "control.sock")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700
        # 1. as installed: the file system already keeps nobody out
        got = _as_user(nobody.pw_uid, nobody.pw_gid, _ask(path))
        assert "PermissionError" in got.get("error", ""), got
        # 2. even with the socket opened up by mistake, the daemon checks SO_PEERCRED
        os.chmod(sock_dir, 0o755)
        os.chmod(path, 0o666)
        got = _as_user(nobody.pw_uid, nobody.pw_gid, _ask(path))
        assert got.get("ok") == {"ok": False, "message": "permission denied: only root may control hanode"}, got
        for cmd in ("standby", "takeover"):
            got = _as_user(nobody.pw_uid, nobody.pw_gid, _ask(path, cmd))
            assert got.get("ok", {}).get("ok") is False, got
        # root still gets the real answer, and the refusals were logged with the uid
        st = _ask(path)()
        assert st["me"] == "node1" and st["agent"]["pid"] == proc.pid
        refused = "control socket: refused uid %d" % nobody.pw_uid
        deadline = time.monotonic() + 5   # (the daemon's log writer is a thread of its own)
        while True:
            with open(os.path.join(base, "stderr"), errors="replace") as f:
                log = f.read()
            if log.count(refused) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert log.count(refused) == 3, log
    finally:
        if proc is not None:
            stop_daemon(proc)
        os.close(master)
        os.close(slave)
        subprocess.run(["rm", "-rf", base])


# ------------------------------------------------------------------ real processes: a tap on the cable
def cable_frames(lab, direction="a>b"):
    """Complete frames (delimiter included) the cable delivered in one direction, from its byte log."""
    frames, pending = [], bytearray()
    with open(os.path.join(lab.workdir, "cable.log")) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue          # the line being written right now
            if e.get("dir") != direction or "data" not in e:
                continue          # the other way, or an event ("flush" also names a direction)
            for byte in bytes.fromhex(e["data"]):
                pending.append(byte)
                if byte == 0:
                    frames.append(bytes(pending))
                    pending = bytearray()
    return frames


TAP_TRIES = 5


class Tap:
    """Writes into the line at node1's end, as a device spliced into the cable would: through
    node1's PTY (root may open it despite TIOCEXCL), so the bytes cross the paced null-modem.

    They share node1's port: when node1 replaces a status frame of its own still queued (a
    TCOFLUSH, links.py), the flush discards the tap's bytes not yet sent too, as a UART's would.
    So ``write`` waits out each copy's wire time and writes again, up to TAP_TRIES times, until
    one crossed with no flush in that direction."""

    def __init__(self, lab, node="node1", direction="a>b"):
        self.fd = os.open(os.path.realpath(os.path.join(lab.node_dir(node), "ttyS0")),
                          os.O_WRONLY | os.O_NOCTTY)
        self.cable = lab.cable
        self.direction = direction

    def flushed(self):
        return self.cable.counters()[self.direction]["flushed"]

    def write(self, data):
        """Write until one copy crossed whole; the number of copies written."""
        for copies in range(1, TAP_TRIES + 1):
            before = self.flushed()
            os.write(self.fd, data)   # one write: a tty never interleaves it with the agent's frames
            time.sleep(len(data) * 10 / self.cable.baud + 0.05)
            if self.flushed() == before:
                return copies
        pytest.fail("node1 flushed its port during each of %d copies the tap wrote" % TAP_TRIES)

    def close(self):
        os.close(self.fd)


def _status(lab, node):
    from hanode.control import request
    return request("status", os.path.join(lab.node_dir(node), "control.sock"), timeout=10)


def _wait(lab, predicate, timeout, what):
    """Poll predicate (errors such as a daemon not answering yet count as "not yet")."""
    start = time.time()
    last = None
    while time.time() - start < timeout:
        try:
            if predicate():
                return time.time() - start
        except Exception as e:
            last = e
        time.sleep(0.05)
    pytest.fail("%s not within %.0f s (last error: %r; node2 dropped %r; cable %r)"
                % (what, timeout, last, _dropped_or_error(lab, "node2"), lab.cable.counters()))


def _dropped_or_error(lab, node):
    try:
        return _status(lab, node)["counters"]["dropped"]
    except Exception as e:   # (only for a failure's message)
        return e


@pytest.mark.integration
def test_real_pair_rejects_replayed_and_forged_frames_from_a_cable_tap():
    from hanode.lab.bed import Lab, LabError
    try:
        lab = Lab(timing="tight")
        lab.__enter__()
    except LabError as e:
        pytest.skip(str(e))
    try:
        lab.start("node1")
        lab.start("node2")
        def settled() -> bool:
            return (_status(lab, "node2")["groups"][0]["held_by"] == "node1"
                    and _status(lab, "node1")["groups"][0]["state"] == "running")

        _wait(lab, settled, 30, "cold start")
        time.sleep(1.0)
        # node1's frames before its last two: node2 has taken a newer one by the time a copy
        # comes (the latest itself may still be the newest it has when its copy arrives -
        # queued behind the tap's bytes, node1's next frame comes after them: a duplicate)
        old = [f for f in cable_frames(lab) if len(f) == 24][-12:-2]
        assert len(old) == 10
        gen = _status(lab, "node2")["peer_generation"]
        tap = Tap(lab)
        try:
            def dropped2():
                return _status(lab, "node2")["counters"]["dropped"]

            # 1. replay of frames a second old
            before = dropped2()
            copies = tap.write(b"".join(old))
            _wait(lab, lambda: dropped2()["replay"] >= before["replay"] + 10, 10, "10 replays counted")
            if copies == 1:   # (a copy cut by node1's flush adds those of its frames that crossed)
                assert dropped2()["replay"] == before["replay"] + 10
            # 2. forgeries with the counter each must land under (3 of each)
            f = forged(gen=gen, seq=1 << 30)
            lab_auth = Auth(1, {1: ("hmac-sha256", lab_key())})
            body = pack_body(f, 1)
            kinds = {
                "bad_tag": encode(f, Auth(1, {1: ("hmac-sha256", b"an attacker's guess at the key!!")})),
                "unknown_key": encode(f, Auth(4, {4: ("hmac-sha256", lab_key())})),
                "length": wire(body + lab_auth.tag(1, body)[:5]),
            }
            before = dropped2()
            copies = {k: tap.write(b"\x00" + data * 3) for k, data in kinds.items()}
            _wait(lab, lambda: all(dropped2()[k] >= before[k] + 3 for k in kinds), 10, "forgeries counted")
            after = dropped2()
            for k in kinds:
                if copies[k] == 1:
                    assert after[k] == before[k] + 3, (k, before, after)
            st = _status(lab, "node2")
            assert st["peer_state"] == "active" and st["groups"][0]["held_by"] == "node1"
            assert st["counters"]["failovers"] == 0
            # 3. the peer reboots (generation + 1); its old frames stay dead
            lab.power_off("node1")
            _wait(lab, lambda: _status(lab, "node2")["groups"][0]["state"] == "running", 20, "failover")
            lab.power_on("node1")
            _wait(lab, lambda: _status(lab, "node2")["peer_generation"] == gen + 1 and settled(), 30, "failback")
            with open(os.path.join(lab.node_dir("node2"), "state", "peer_generation")) as fh:
                assert int(fh.read()) == gen + 1          # node2 persisted the floor
            before = dropped2()
            tap.write(b"".join(old))
            _wait(lab, lambda: dropped2()["replay"] >= before["replay"] + 10, 10, "replays after peer reboot")
            assert _status(lab, "node2")["groups"][0]["held_by"] == "node1"
            # 4. node1 dies and node2 reboots: the old heartbeats must not make node2 believe node1 is up
            lab.power_off("node1")
            lab.power_off("node2")
            lab.power_on("node2")
            _wait(lab, lambda: _status(lab, "node2") is not None, 20, "node2 up again")
            for _ in range(3):
                tap.write(b"".join(old))
                time.sleep(0.3)
            # the same frame replayed twice: the link's decoder calls the second copy of the last
            # frame it passed on a "duplicate"; either way it is dropped and counted
            _wait(lab, lambda: dropped2()["replay"] + dropped2()["duplicate"] >= 30, 10,
                  "30 replays after our reboot")
            st = _status(lab, "node2")
            assert st["peer_state"] == "init" and st["peer_generation"] is None, st
            assert st["counters"]["frames_received"] == 0
            assert lab.double_holder_ms() == 0
        finally:
            tap.close()
    finally:
        lab.close()


def lab_key():
    from hanode.lab.presets import KEY as LAB_KEY
    return LAB_KEY.encode()
