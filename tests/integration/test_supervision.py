"""Hung and killed nodes, the watchdog stand-in, systemd notify and restarts - two real boxes in namespaces.

Theory of operation
-------------------
Each test builds its own ``hanode.lab.bed.Lab`` (namespaces node1/node2/client on a private bridge,
a 19200-baud null-modem between two PTYs, real ``hanode run`` processes) and always tears it
down (``with Lab(...)``). The faults are the real ones: SIGSTOP/SIGCONT/SIGKILL of the agent's
PID, and a "reset" that is the lab's power-off (every process in the namespace SIGKILLed, the
VIP deleted, the LAN port down) - what the hardware watchdog does to a hung box.

Observations come from outside the agents: the lab's netlink VIP monitors (when the address was
on which box, hence the double-holder time), an HTTP client in its own namespace, the agents'
control sockets (``hanode status --json``), their logs, a FIFO standing in for /dev/watchdog
(every pet is a byte, the magic close is a ``V``) and an AF_UNIX datagram socket standing in
for systemd's NOTIFY_SOCKET.

Timing bounds: the lab's "tight" timing (keepalive 100 ms, deadtime 500 ms) on a 2-core machine
that runs other namespace tests at the same time. The agents run with ``realtime on`` (SCHED_FIFO,
Heartbeat's default), and faults are injected only once the pair has settled, so that start-up
turbulence and a busy machine are not mistaken for the behaviour under test. Each bound is the
protocol's own figure plus an explicit margin for scheduling noise (LOAD_MARGIN_S below), so a
failure means hanode was late by more than a loaded machine explains.
"""
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, List, Optional, Tuple

import pytest

from hanode.lab.bed import Lab, NODES

pytestmark = pytest.mark.integration

DEADTIME_S = 0.5          # TIMINGS["tight"]
KEEPALIVE_S = 0.1
PROBE_RETRY_S = 0.2       # node.py: _probe_retry_ms = max(keepalive, 200 ms)
PROBE_S = 0.025           # resources.probe: 3 ARP probes 5 ms apart + 10 ms wait, and its start
# Scheduling noise on a loaded 2-core box (python start-up, status subprocesses, other suites):
# observed delays up to ~0.4 s beyond the protocol's figures; 1 s leaves room without hiding a
# missed deadline (a missed probe or deadtime costs a whole further cycle, and is then caught
# by the bounds that are a few cycles wide).
LOAD_MARGIN_S = 1.0
FREEZE_ROUNDS = 4
CLIENT_INTERVAL_S = 0.2
FROZEN_DOUBLE_S = 0.5     # probe off: how long node1 stays frozen after node2 has taken the VIP
DIAG_LINES = int(os.environ.get("HANODE_TEST_DIAG_LINES", "40"))

_labs = 0


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, port 80)")


def new_lab(**kwargs: Any) -> Lab:
    _require_root()
    global _labs
    _labs += 1
    # unique per test process and lab, short enough for interface-free netns names
    # realtime on (Heartbeat's default, SCHED_FIFO): the agents keep their timing while other
    # suites load this machine, so a late loop is not taken for the fault under test
    kwargs.setdefault("realtime", True)
    return Lab(prefix="sv%dx%d" % (os.getpid(), _labs), **kwargs)


# ------------------------------------------------------------------ observing
def log_events(lab: Lab, node: str) -> List[Tuple[float, str, str]]:
    """(epoch seconds, level, text) of every line of the node's log (all its runs)."""
    return lab.log_lines(node)


def first_log(lab: Lab, node: str, text: str, since: float = 0.0) -> Optional[float]:
    for t, _level, msg in log_events(lab, node):
        if t >= since - 0.002 and text in msg:   # log stamps are truncated to ms
            return t
    return None


def count_log(lab: Lab, node: str, text: str, since: float = 0.0) -> int:
    return sum(1 for t, _l, msg in log_events(lab, node) if t >= since - 0.002 and text in msg)


def why(*values: Any, lab: Lab) -> str:
    """An assertion message: the values, then the lab's diagnosis (a string, never truncated)."""
    return " ".join(repr(v) for v in values) + "\n" + diag(lab)


def diag(lab: Lab) -> str:
    """What to look at when an assertion fails: the VIP spans, client outages, both logs' tails."""
    t0 = min([t for t, _ in lab.marks] or [time.time()])
    out = ["marks: " + "; ".join("%.3f %s" % (t - t0, m) for t, m in lab.marks)]
    for node in NODES:
        out.append("VIP on %s: %s" % (node, ["%.3f-%.3f" % (a - t0, b - t0) for a, b in lab.vip_intervals(node)]))
    out.append("client outages: %s" % ["%.3f-%.3f %s->%s" % (a - t0, b - t0, x, y)
                                       for a, b, x, y in lab.outages(t0)])
    for node in NODES:
        out.append("---- %s log (last 40 lines)" % node)
        out.extend(lab.log_text(node).splitlines()[-DIAG_LINES:])
    return "\n".join(out)


def pair_whole(lab: Lab, holder: str = "node1") -> bool:
    """Both agents see each other active and agree that `holder` (alone) runs the group."""
    s1, s2 = lab.status("node1"), lab.status("node2")
    if not s1 or not s2:
        return False
    return (s1["peer_state"] == "active" and s2["peer_state"] == "active"
            and s1["groups"][0]["held_by"] == holder and s2["groups"][0]["held_by"] == holder
            and lab.status(holder)["groups"][0]["state"] == "running"
            and not s1["stale"] and not s2["stale"])


def served_by(lab: Lab, who: str, since: float) -> bool:
    return any(e["ok"] and e["body"] == who and e["t"] >= since for e in lab.client_events())


def vip_on(lab: Lab, node: str, at: Optional[float] = None) -> bool:
    at = time.time() if at is None else at
    return any(a <= at <= b for a, b in lab.vip_intervals(node, until=time.time() + 1))


def first_vip_since(lab: Lab, node: str, since: float) -> Optional[float]:
    starts = [a for a, _b in lab.vip_intervals(node) if a >= since]
    return min(starts) if starts else None


def vip_gaps_since(lab: Lab, node: str, since: float) -> List[Tuple[float, float]]:
    """Times the VIP was taken off the node after `since` (and put back, or not)."""
    spans = lab.vip_intervals(node, until=time.time() + 3600)
    return [(e, s2) for (_s, e), (s2, _e) in zip(spans, spans[1:] + [(None, None)]) if since <= e < time.time()]


def webapp_pid(lab: Lab, node: str = "node1") -> int:
    with open(os.path.join(lab.node_dir(node), "state", "webapp.pid")) as f:
        return int(f.read())


def double_ms_since(lab: Lab, since: float) -> float:
    """Milliseconds both boxes had the VIP, counting only from `since` on."""
    now = time.time()
    a = [(max(s, since), e) for s, e in lab.vip_intervals("node1", until=now) if e > since]
    b = [(max(s, since), e) for s, e in lab.vip_intervals("node2", until=now) if e > since]
    return 1000 * sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def start_pair(lab: Lab, client: bool = True, **node1_start: Any) -> None:
    """Both agents up, node1 holding the group and serving the page."""
    if client:
        # a GET every 200 ms, each with a 200 ms timeout: short enough to see any real outage,
        # long enough that a loaded machine's scheduling delay is not taken for one
        lab.start_client(CLIENT_INTERVAL_S)
    lab.start("node1", **node1_start)
    lab.start("node2")
    t0 = time.time()
    assert lab.wait_for(lambda: pair_whole(lab), 25) is not None, "pair never formed\n" + diag(lab)
    if client:
        assert lab.wait_for(lambda: served_by(lab, "node1", t0), 10) is not None, "node1 never served\n" + diag(lab)
    # settled: the faults are injected into a steady pair, not into the start-up
    assert lab.wait_for(lambda: settled(lab), 15) is not None, "pair never settled\n" + diag(lab)


def settled(lab: Lab, quiet_s: float = 1.0) -> bool:
    """node1 has had the VIP, and node2 has not, for quiet_s; both agents agree."""
    now = time.time()
    spans1 = lab.vip_intervals("node1", until=now)
    last2 = [e for _s, e in lab.vip_intervals("node2", until=now)]
    return (bool(spans1) and spans1[-1][1] == now and now - spans1[-1][0] >= quiet_s
            and all(now - e >= quiet_s for e in last2) and pair_whole(lab))


# ------------------------------------------------------------- stand-ins
class WatchdogFifo:
    """A FIFO standing in for /dev/watchdog: records every byte hanode writes, with its arrival time.

    The test holds a reader open before hanode starts (hanode opens a FIFO non-blocking, which
    fails with ENXIO without a reader) and a dummy writer, so that a hanode that closes or dies
    gives no EOF here and the reader never spins; the stand-in sees pets (NUL bytes, as hanode
    writes them when the device has no ioctls) and the magic close ('V')."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        self.rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.keeper = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self.bytes: List[Tuple[float, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            ready, _, _ = select.select([self.rfd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.rfd, 4096)
            except BlockingIOError:
                continue
            now = time.time()
            self.bytes.extend((now, b) for b in data)

    def drain(self) -> None:
        """Wait until the reader has caught up with what is in the pipe."""
        deadline = time.time() + 2
        while time.time() < deadline:
            n = len(self.bytes)
            time.sleep(0.15)
            if len(self.bytes) == n:
                return

    def data(self) -> bytes:
        return bytes(b for _t, b in self.bytes)

    def count_since(self, since: float, value: int = 0) -> int:
        return sum(1 for t, b in self.bytes if t >= since and b == value)

    def close(self) -> None:
        self.done.set()
        self.thread.join(2)
        os.close(self.keeper)
        os.close(self.rfd)


class NotifySocket:
    """An AF_UNIX datagram socket bound to a path, as systemd's NOTIFY_SOCKET: collects datagrams.

    A filesystem path (not an @abstract name) because abstract sockets belong to a network
    namespace and hanode runs in another one; a path is reachable from any namespace."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages: List[Tuple[float, str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode("utf-8", "replace")))

    def assignments(self) -> List[Tuple[float, str, str]]:
        """Every KEY=value line of every datagram, in arrival order."""
        out = []
        for t, msg in list(self.messages):
            for line in msg.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    out.append((t, k, v))
        return out

    def close(self) -> None:
        self.done.set()
        self.thread.join(2)
        self.sock.close()


# ===================================================================== tests
def test_frozen_active_node_keeps_its_vip_and_the_peer_holds_back():
    """SIGSTOP of the active agent: the VIP (kernel ARP) and the webapp stay up; node2 declares
    node1 dead after deadtime, its probe finds the VIP answered, it does not take it and keeps
    probing; after SIGCONT the pair is whole again with nothing moved and 0 ms of double VIP.

    Several freeze/thaw rounds: what node1 reads first after SIGCONT is node2's backlog of frames,
    some sent while node2 was probing, and every round must end without a fight whatever the
    backlog ends with."""
    with new_lab() as lab:
        start_pair(lab)
        vip_since = lab.vip_intervals("node1")[-1][0]
        t_first = time.time()
        for round_no in range(1, FREEZE_ROUNDS + 1):
            t_stop = time.time()
            lab.mark("round %d: SIGSTOP node1" % round_no)
            lab.signal("node1", signal.SIGSTOP)

            def holding_back() -> bool:
                return first_log(lab, "node2", "Not taking resource group", t_stop) is not None
            assert lab.wait_for(holding_back, DEADTIME_S + PROBE_S + LOAD_MARGIN_S + 2) is not None, diag(lab)
            t_dead = first_log(lab, "node2", "node node1: is dead", t_stop)
            t_held_back = first_log(lab, "node2", "Not taking resource group", t_stop)
            assert t_dead is not None and t_held_back is not None, diag(lab)
            detect = t_dead - t_stop
            # deadtime after the last frame node1 sent before it froze (<= one keepalive before t_stop)
            assert DEADTIME_S - KEEPALIVE_S - 0.05 <= detect <= DEADTIME_S + LOAD_MARGIN_S, why(detect, lab=lab)
            msg = [m for t, _l, m in log_events(lab, "node2") if t >= t_stop - 0.002 and "Not taking" in m][0]
            assert "answers on the LAN" in msg and "node1 frozen?" in msg, msg
            st2 = lab.status("node2")
            # between probes the group is stopped; during one (a few ms) it shows as probing
            assert st2["peer_state"] == "dead" and st2["groups"][0]["state"] in ("stopped", "probing"), st2
            busy1 = st2["counters"]["probes_busy"]
            time.sleep(1.0)
            st2 = lab.status("node2")
            # still probing, one probe per PROBE_RETRY_S: at least 2 more in 1 s even when loaded
            assert st2["counters"]["probes_busy"] >= busy1 + 2, why(busy1, st2["counters"], lab=lab)
            assert st2["groups"][0]["state"] in ("stopped", "probing"), st2
            assert not vip_on(lab, "node2")

            t_cont = time.time()
            lab.mark("round %d: SIGCONT node1" % round_no)
            lab.signal("node1", signal.SIGCONT)
            took = lab.wait_for(lambda: pair_whole(lab), 10)
            assert took is not None, "pair not whole after SIGCONT\n" + diag(lab)
            # node1 knew it had stalled; it neither released nor re-acquired
            assert first_log(lab, "node1", "Our own loop stalled", t_cont) is not None, diag(lab)
            assert count_log(lab, "node1", "Releasing resource group", t_stop) == 0, \
                "round %d: node1 gave up its group after SIGCONT (a fight)\n%s" % (round_no, diag(lab))
            assert count_log(lab, "node2", "Acquiring resource group", t_stop) == 0, diag(lab)
            print("\nround %d: node2 declared node1 dead after %.0f ms, held back from %.0f ms, pair whole "
                  "%.0f ms after SIGCONT, %d busy probes so far"
                  % (round_no, detect * 1000, (t_held_back - t_stop) * 1000, took * 1000,
                     st2["counters"]["probes_busy"]))
            time.sleep(0.3)
        time.sleep(0.3)    # let the client and the monitors see the steady state
        now = time.time()
        # nothing moved: node1's VIP span is the one from before the first freeze, node2 never had it
        assert vip_on(lab, "node1", t_first) and not vip_gaps_since(lab, "node1", t_first), diag(lab)
        assert lab.vip_intervals("node1", until=now)[-1][0] == vip_since, diag(lab)
        assert first_vip_since(lab, "node2", t_first) is None and not vip_on(lab, "node2", t_first), diag(lab)
        assert double_ms_since(lab, t_first) == 0.0
        # clients were served by node1 all along, frozen agent or not
        during = [e for e in lab.client_events() if t_first <= e["t"] <= now]
        assert len(during) >= 5 * FREEZE_ROUNDS and all(e["ok"] and e["body"] == "node1" for e in during), \
            ([e for e in during if not (e["ok"] and e["body"] == "node1")], diag(lab))


def test_reset_of_the_frozen_node_lets_the_peer_take_over():
    """The second half: the watchdog resets the hung box (simulated by the lab's power-off: the
    frozen agent and its webapp SIGKILLed, the VIP gone, the link down). node2, which was holding
    back, takes over at its next probe: within deadtime + probe time of the reset."""
    with new_lab() as lab:
        start_pair(lab)
        t_stop = time.time()
        lab.mark("SIGSTOP node1")
        lab.signal("node1", signal.SIGSTOP)
        assert lab.wait_for(lambda: first_log(lab, "node2", "Not taking resource group", t_stop) is not None,
                            DEADTIME_S + LOAD_MARGIN_S + 2) is not None, diag(lab)
        # The box's watchdog timeout is deadtime + 10 ms rounded up (1 s here) after the last pet.
        time.sleep(max(0.0, t_stop + 1.0 - time.time()))
        t_reset = time.time()
        lab.power_off("node1")       # the reset: everything on the box gone at once
        assert lab.procs["node1"].returncode == -signal.SIGKILL
        assert lab.wait_for(lambda: first_vip_since(lab, "node2", t_reset) is not None, 10) is not None, \
            "node2 never took over\n" + diag(lab)
        t_vip = first_vip_since(lab, "node2", t_reset)
        assert lab.wait_for(lambda: served_by(lab, "node2", t_reset), 10) is not None, diag(lab)
        t_served = min(e["t"] for e in lab.client_events() if e["ok"] and e["body"] == "node2" and e["t"] >= t_reset)
        takeover = t_vip - t_reset
        # node2 is already past deadtime: the next probe round (<= PROBE_RETRY_S away) finds nobody
        # answering. The bound, deadtime + probe time, also covers a reset that comes before
        # node2 has declared node1 dead.
        bound = DEADTIME_S + PROBE_RETRY_S + PROBE_S + LOAD_MARGIN_S
        assert takeover <= bound, why(takeover, bound, lab=lab)
        assert double_ms_since(lab, t_stop) == 0.0, diag(lab)
        assert (first_log(lab, "node2", "acquired", t_reset) is not None
                or lab.status("node2")["groups"][0]["held_by"] == "node2")
        print("\nreset of frozen node1: node2's VIP %.0f ms after the reset (bound %.0f ms), served %.0f ms "
              "after; %.0f ms after the freeze; double VIP 0 ms"
              % (takeover * 1000, bound * 1000, (t_served - t_reset) * 1000, (t_vip - t_stop) * 1000))


def test_watchdog_stand_in_armed_after_kill9_disarmed_after_sigterm_silent_while_frozen():
    """ha.cf `watchdog <fifo>` on node1: hanode pets it (NUL bytes) about every keepalive; not
    while SIGSTOPped; a SIGTERM ends with the magic 'V'; a kill -9 ends without it (still armed:
    a real box would reset)."""
    _require_root()
    tmp = tempfile.mkdtemp(prefix="hanode-wd-")
    fifo = os.path.join(tmp, "watchdog")
    wd = WatchdogFifo(fifo)
    try:
        with new_lab(extra_ha_cf={"node1": "watchdog %s\n" % fifo}) as lab:
            start_pair(lab, client=False)
            assert "Using watchdog device: %s" % fifo in lab.log_text("node1")
            assert lab.status("node1")["agent"]["watchdog"].startswith(fifo)
            # petting: every pet_every_ms = keepalive (100 ms) while healthy
            t_a = time.time()
            time.sleep(1.0)
            pets = wd.count_since(t_a)
            assert 5 <= pets <= 12, why(pets, lab=lab)
            assert b"V" not in wd.data()

            # frozen: not a byte
            lab.signal("node1", signal.SIGSTOP)
            wd.drain()
            frozen_from, frozen_n = time.time(), len(wd.bytes)
            time.sleep(1.5)
            wd.drain()
            assert len(wd.bytes) == frozen_n, "petted while SIGSTOPped: %r" % wd.bytes[frozen_n:]
            t_cont = time.time()
            lab.signal("node1", signal.SIGCONT)
            # petting resumes; the first late tick is refused by the health gate (and said so)
            assert lab.wait_for(lambda: wd.count_since(t_cont) >= 3, 5) is not None, diag(lab)
            assert first_log(lab, "node1", "not petting the watchdog: agent loop late by", t_cont) is not None, \
                diag(lab)
            gap = wd.bytes[frozen_n][0] - frozen_from
            assert lab.wait_for(lambda: pair_whole(lab), 10) is not None, diag(lab)

            # SIGTERM: clean stop, last byte 'V'
            lab.signal("node1", signal.SIGTERM)
            assert lab.procs["node1"].wait(30) == 0, lab.log_text("node1")
            wd.drain()
            assert wd.data().endswith(b"V") and wd.data().count(b"V") == 1, wd.data()[-10:]
            assert "closed cleanly (magic close)" in lab.log_text("node1")
            n_clean = len(wd.bytes)

            # again, and kill -9: no 'V' after the pets of this run - armed
            lab.start("node1")
            assert lab.wait_for(lambda: pair_whole(lab), 20) is not None, diag(lab)
            assert lab.wait_for(lambda: len(wd.bytes) >= n_clean + 5, 5) is not None
            lab.signal("node1", signal.SIGKILL)
            assert lab.procs["node1"].wait(10) == -signal.SIGKILL
            wd.drain()
            second_run = wd.data()[n_clean:]
            assert len(second_run) >= 5 and b"V" not in second_run, second_run
            assert second_run == b"\0" * len(second_run)
            print("\nwatchdog stand-in: %d pets/s, none in %.1f s frozen (first after %.0f ms), "
                  "SIGTERM -> 'V', kill -9 -> %d pets and no 'V'"
                  % (pets, 1.5, gap * 1000, len(second_run)))
    finally:
        wd.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_probe_off_heartbeat_takeover_and_stale_node_releases_on_sigcont():
    """vip_probe off (Heartbeat's exact behaviour): node2 takes over deadtime after node1 froze,
    so both hold the VIP while node1 is frozen; on SIGCONT node1 learns from node2's frames that
    it lost the group, releases it, and the pair converges (auto_failback on: back to node1)."""
    with new_lab(vip_probe=False) as lab:
        start_pair(lab)
        t_stop = time.time()
        lab.mark("SIGSTOP node1")
        lab.signal("node1", signal.SIGSTOP)
        assert lab.wait_for(lambda: first_vip_since(lab, "node2", t_stop) is not None,
                            DEADTIME_S + LOAD_MARGIN_S + 2) is not None, "node2 did not take over\n" + diag(lab)
        t_vip2 = first_vip_since(lab, "node2", t_stop)
        assert count_log(lab, "node2", "Not taking", t_stop) == 0
        # as Heartbeat: after deadtime, no probe
        assert t_vip2 - t_stop <= DEADTIME_S + LOAD_MARGIN_S, why(t_vip2 - t_stop, lab=lab)
        # both hold it now; leave node1 frozen a little longer (the test's share of the window)
        time.sleep(max(0.0, t_vip2 + FROZEN_DOUBLE_S - time.time()))
        t_cont = time.time()
        lab.mark("SIGCONT node1")
        lab.signal("node1", signal.SIGCONT)

        def node1_let_go() -> bool:
            return any(t_cont <= b < time.time() - 0.001 for _a, b in lab.vip_intervals("node1"))
        assert lab.wait_for(node1_let_go, 10) is not None, "node1 kept the VIP\n" + diag(lab)
        t_release = [b for _a, b in lab.vip_intervals("node1") if b >= t_cont][0]
        assert first_log(lab, "node1", "Our own loop stalled", t_cont) is not None, diag(lab)
        t_decide = first_log(lab, "node1", "Releasing resource group", t_cont)
        assert t_decide is not None, diag(lab)
        # converge: one holder (node1 again: auto_failback on), both agree
        assert lab.wait_for(lambda: pair_whole(lab, "node1"), 20) is not None, "no convergence\n" + diag(lab)
        time.sleep(0.5)
        double = double_ms_since(lab, t_stop) / 1000.0
        after_cont = t_release - t_cont
        # The double window is the frozen time after node2's takeover (the test's choice,
        # FROZEN_DOUBLE_S) plus what hanode controls: SIGCONT to node1's release. The decision
        # needs one frame from node2 (<= keepalive; node1 reads the backlog at once); then the
        # group stops right to left (webapp stop script, then the VIP), ~50 ms idle but several
        # hundred ms under load. Bound on the whole window: 2 s at tight timing, as the issue asks.
        assert t_decide - t_cont <= KEEPALIVE_S + LOAD_MARGIN_S, why(t_decide - t_cont, lab=lab)
        assert double < 2.0, why(double, lab=lab)
        assert abs(double - ((t_cont - t_vip2) + after_cont)) < 0.2, why(double, t_cont - t_vip2, after_cont, lab=lab)
        # exactly one holder now
        now = time.time()
        assert vip_on(lab, "node1", now - 0.1) != vip_on(lab, "node2", now - 0.1), diag(lab)
        print("\nvip_probe off: node2 took the VIP %.0f ms after the freeze; node1 decided to release %.0f ms "
              "and its VIP was gone %.0f ms after SIGCONT; double-VIP window %.0f ms (of which %.0f ms while "
              "node1 was frozen)" % ((t_vip2 - t_stop) * 1000, (t_decide - t_cont) * 1000, after_cont * 1000,
                                     double * 1000, (t_cont - t_vip2) * 1000))


def test_systemd_notify_ready_status_watchdog_stopping_in_order():
    """NOTIFY_SOCKET + WATCHDOG_USEC (no WATCHDOG_PID): READY=1 with MAINPID, STATUS= lines,
    WATCHDOG=1 repeatedly while healthy, none while frozen, STOPPING=1 at SIGTERM; the resource
    scripts do not inherit NOTIFY_SOCKET."""
    _require_root()
    tmp = tempfile.mkdtemp(prefix="hanode-notify-")
    ns = NotifySocket(os.path.join(tmp, "notify"))
    try:
        with new_lab() as lab:
            env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"}
            start_pair(lab, client=False, env=env)
            pid = lab.procs["node1"].pid
            time.sleep(1.0)
            t_sigstop = time.time()
            lab.signal("node1", signal.SIGSTOP)
            time.sleep(0.3)
            frozen_n = len(ns.assignments())
            time.sleep(1.0)
            assert len(ns.assignments()) == frozen_n, ns.assignments()[frozen_n:]
            lab.signal("node1", signal.SIGCONT)
            assert lab.wait_for(lambda: pair_whole(lab), 10) is not None, diag(lab)
            # the webapp was started by hanode: it must not see hanode's NOTIFY_SOCKET
            webapp = webapp_pid(lab)
            with open("/proc/%d/environ" % webapp, "rb") as f:
                environ = f.read().split(b"\0")
            assert not any(e.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_USEC=")) for e in environ)
            n_before_term = len(ns.assignments())
            t_term = time.time()
            lab.signal("node1", signal.SIGTERM)
            assert lab.procs["node1"].wait(30) == 0, lab.log_text("node1")
            time.sleep(0.1)
            msgs = ns.assignments()
            log_text = lab.log_text("node1")

        keys = [k for _t, k, _v in msgs]
        assert "READY" in keys, msgs
        i_ready = keys.index("READY")
        assert dict((k, v) for _t, k, v in msgs)["READY"] == "1"
        assert ("MAINPID", str(pid)) in [(k, v) for _t, k, v in msgs], msgs
        wd_idx = [i for i, k in enumerate(keys) if k == "WATCHDOG"]
        stop_idx = [i for i, k in enumerate(keys) if k == "STOPPING"]
        status_after_ready = [v for i, (_t, k, v) in enumerate(msgs) if k == "STATUS" and i > i_ready]
        assert wd_idx and min(wd_idx) > i_ready, "WATCHDOG=1 before READY=1: %r" % keys
        assert stop_idx and min(stop_idx) > i_ready and min(stop_idx) >= n_before_term, keys
        # order: READY, then WATCHDOG=1 many times (about every keepalive while healthy), then STOPPING
        before_stop = [i for i in wd_idx if i < min(stop_idx)]
        assert len(before_stop) >= 10, len(before_stop)
        assert all(msgs[i][2] == "1" for i in wd_idx)
        assert any("peer node2 active" in s and "holds" in s for s in status_after_ready), status_after_ready
        assert msgs[min(stop_idx)][0] >= t_term
        # WATCHDOG_USEC = 2 s: systemd would kill the unit after 2 s without a keep-alive. hanode
        # sends one every keepalive (100 ms) while healthy, so apart from the freeze every gap is
        # far below 2 s; measured up to ~1 s when the loop itself was blocked under load.
        times = [msgs[i][0] for i in before_stop]
        gaps = [(b - a, a) for a, b in zip(times, times[1:]) if not (a <= t_sigstop and b >= t_sigstop)]
        t_ready = msgs[i_ready][0]
        worst, at = max(gaps)
        assert worst < 2.0 - 0.5, (worst, "%.3f s after READY" % (at - t_ready), log_text)
        frozen_gap = [b - a for a, b in zip(times, times[1:]) if a <= t_sigstop <= b]
        assert frozen_gap and frozen_gap[0] > 1.3, frozen_gap
        print("\nsystemd notify: %s" % " ".join(
            "%s=%s" % (k, v if k != "STATUS" else repr(v)) for _t, k, v in msgs
            if k != "WATCHDOG")[:600] + " ... %d x WATCHDOG=1, largest gap while healthy %.0f ms"
              % (len(wd_idx), worst * 1000))
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_kill9_and_restart_gives_a_clean_pair_with_a_new_generation():
    """kill -9 of the active agent and a restart after systemd's RestartSec (2 s): node1 comes
    back with a higher generation, node2 says "Heartbeat restart on node node1", node1 adopts
    the group it finds active; exactly one holder throughout, and the page kept being served."""
    with new_lab() as lab:
        start_pair(lab)
        gen1 = lab.status("node1")["generation"]
        assert lab.status("node2")["peer_generation"] == gen1
        webapp = webapp_pid(lab)
        t_kill = time.time()
        lab.signal("node1", signal.SIGKILL)
        assert lab.procs["node1"].wait(10) == -signal.SIGKILL
        # VIP and webapp left up, as a real kill -9 leaves them: node2 holds back
        assert lab.wait_for(lambda: first_log(lab, "node2", "Not taking resource group", t_kill) is not None,
                            DEADTIME_S + LOAD_MARGIN_S + 2) is not None, diag(lab)
        time.sleep(max(0.0, t_kill + 2.0 - time.time()))     # RestartSec=2s
        t_restart = time.time()
        lab.start("node1")
        assert lab.wait_for(lambda: pair_whole(lab), 20) is not None, diag(lab)
        st1, st2 = lab.status("node1"), lab.status("node2")
        assert st1["generation"] > gen1 and st2["peer_generation"] == st1["generation"], (gen1, st1, st2)
        assert first_log(lab, "node2", "Heartbeat restart on node node1", t_restart) is not None, diag(lab)
        assert first_log(lab, "node1", "found active at start: adopting it", t_restart) is not None, diag(lab)
        time.sleep(0.5)
        assert double_ms_since(lab, t_kill) == 0.0 and first_vip_since(lab, "node2", t_kill) is None, diag(lab)
        assert vip_on(lab, "node1", t_kill) and not vip_gaps_since(lab, "node1", t_kill), diag(lab)
        assert webapp_pid(lab) == webapp and os.path.exists("/proc/%d" % webapp)   # not restarted
        assert lab.outages(t_kill) == [], diag(lab)
        print("\nkill -9 + restart after 2 s: generation %d -> %d, pair whole %.0f ms after the restart, "
              "no outage, double VIP 0 ms" % (gen1, st1["generation"], (time.time() - t_restart - 0.5) * 1000))


def test_init_script_respawns_hanode_after_kill9():
    """packaging/S45hanode with respawn (ha.cf `respawn root .../hanode`, HANODE_RESPAWN auto)
    pointed at hanode inside node1's namespace through HANODE_BIN: kill -9 of hanode -> the
    supervisor starts it again -> clean pair with a new generation; `stop` ends it cleanly."""
    _require_root()
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "packaging", "S45hanode")
    with new_lab() as lab:
        d = lab.node_dir("node1")
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        # HANODE_BIN runs "$HANODE_BIN run $HANODE_ARGS"; a wrapper named hanode (the script's pid
        # check looks for the binary's name in /proc/PID/cmdline) execs it inside the namespace
        wrapper = os.path.join(bindir, "hanode")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nPYTHONPATH=%s; export PYTHONPATH\nexec ip netns exec %s %s -m hanode \"$@\"\n"
                    % (os.path.dirname(os.path.dirname(script)), lab.ns("node1"), sys.executable))
        os.chmod(wrapper, 0o755)
        # the documented way to ask for respawn; hanode itself must leave this line to the script
        with open(os.path.join(d, "ha.d", "ha.cf"), "a") as f:
            f.write("respawn root %s\n" % wrapper)
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.update({
            "HANODE_DEFAULTS": os.path.join(d, "no-defaults"),
            "HANODE_BIN": wrapper,
            "HANODE_ARGS": "--config-dir %s/ha.d --node node1 --lock-dir %s/lock" % (d, d),
            "HANODE_CONFIG_DIR": os.path.join(d, "ha.d"),
            "PIDFILE": os.path.join(d, "hanode.pid"),
            "RESPAWN_PIDFILE": os.path.join(d, "hanode-respawn.pid"),
            "HANODE_OUTPUT": os.path.join(d, "stderr.log"),   # where lab.log_text() reads
            "HANODE_RESPAWN": "auto",
            "HANODE_RESPAWN_DELAY": "1",
            "HANODE_STOP_TIMEOUT": "30",
        })

        def rc(cmd: str) -> subprocess.CompletedProcess:
            return subprocess.run(["sh", script, cmd], env=env, capture_output=True, text=True, timeout=60)

        def read_pid(name: str) -> Optional[int]:
            try:
                with open(env[name]) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None

        supervisor = None
        try:
            lab.start_client(CLIENT_INTERVAL_S)
            lab.start("node2")
            r = rc("start")
            assert r.returncode == 0 and "OK (pid" in r.stdout, (r.stdout, r.stderr, lab.log_text("node1"))
            supervisor = read_pid("RESPAWN_PIDFILE")
            first = read_pid("PIDFILE")
            assert supervisor and first
            assert lab.wait_for(lambda: pair_whole(lab), 25) is not None, diag(lab)
            r = rc("status")
            assert r.returncode == 0 and "respawn supervisor pid %d" % supervisor in r.stdout, r.stdout
            gen1 = lab.status("node1")["generation"]
            webapp = webapp_pid(lab)

            t_kill = time.time()
            os.kill(first, signal.SIGKILL)
            assert lab.wait_for(lambda: read_pid("PIDFILE") not in (None, first), 10) is not None, \
                lab.log_text("node1")
            second = read_pid("PIDFILE")
            assert lab.wait_for(lambda: pair_whole(lab), 20) is not None, diag(lab)
            st1 = lab.status("node1")
            assert st1["agent"]["pid"] == second and st1["generation"] > gen1, (second, st1["agent"], gen1)
            assert "was killed by signal 9; respawning in 1 s" in lab.log_text("node1")
            assert first_log(lab, "node2", "Heartbeat restart on node node1", t_kill) is not None, diag(lab)
            time.sleep(0.3)
            assert double_ms_since(lab, t_kill) == 0.0 and first_vip_since(lab, "node2", t_kill) is None, diag(lab)
            assert not vip_gaps_since(lab, "node1", t_kill), diag(lab)
            assert webapp_pid(lab) == webapp, "the respawned hanode restarted the webapp"
            assert "Starting child client" not in lab.log_text("node1"), "hanode ran the respawn line for itself"
            assert lab.outages(t_kill) == [], diag(lab)

            # stop: SIGTERM through the supervisor, hanode releases, node2 takes over without a probe
            t_stop = time.time()
            r = rc("stop")
            assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (r.stdout, r.stderr)
            supervisor = None
            assert "All HA resources relinquished" in lab.log_text("node1")
            assert lab.wait_for(lambda: first_vip_since(lab, "node2", t_stop) is not None, 10) is not None, diag(lab)
            assert rc("status").returncode == 3
            assert double_ms_since(lab, t_kill) == 0.0, diag(lab)
            print("\nS45hanode respawn: pid %d killed, pid %d respawned (generation %d -> %d), clean stop"
                  % (first, second, gen1, st1["generation"]))
        finally:
            # The supervisor lives outside the namespace: end it before the lab kills hanode, or it
            # would respawn hanode into a namespace being deleted.
            if supervisor is not None:
                try:
                    os.kill(supervisor, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = time.time() + 10
                while time.time() < deadline and os.path.exists("/proc/%d" % supervisor):
                    time.sleep(0.05)


def test_a_probe_that_cannot_run_never_takes_the_vip_blind():
    """Issue 13, finding 4, on real agents: node2's LAN interface is down when node1 dies, so its
    ARP probe cannot be sent (ENETDOWN). node2 must not take the VIP blind - it would hold it
    together with whoever has it once the LAN is back - but keep probing, say why once, and take
    the VIP at its first probe after the interface comes back."""
    with new_lab() as lab:
        start_pair(lab, client=False)
        t_down = time.time()
        lab.mark("node2 eth0 down")
        subprocess.run(["ip", "-n", lab.ns("node2"), "link", "set", "eth0", "down"], check=True)
        lab.power_off("node1")
        assert lab.wait_for(lambda: first_log(lab, "node2", "could not be done", t_down) is not None,
                            DEADTIME_S + LOAD_MARGIN_S + 2) is not None, diag(lab)
        blind_s = 3.0   # about six probe rounds of node2 (450 ms apart: it is not the preferred node)
        time.sleep(blind_s)
        assert first_vip_since(lab, "node2", t_down) is None, why("VIP taken blind", lab=lab)
        assert count_log(lab, "node2", "could not be done", t_down) == 1, diag(lab)
        assert lab.status("node2")["groups"][0]["held_by"] in (None, "", "node1"), diag(lab)

        t_up = time.time()
        lab.mark("node2 eth0 up")
        subprocess.run(["ip", "-n", lab.ns("node2"), "link", "set", "eth0", "up"], check=True)
        bound = 2 * PROBE_RETRY_S + 0.05 + PROBE_S + LOAD_MARGIN_S
        assert lab.wait_for(lambda: first_vip_since(lab, "node2", t_up) is not None, bound + 5) is not None, \
            "node2 never took the VIP after its LAN came back\n" + diag(lab)
        taken = first_vip_since(lab, "node2", t_up) - t_up
        assert taken <= bound, why(taken, bound, lab=lab)
        assert first_log(lab, "node2", "works again", t_up) is not None, diag(lab)
        print("\nprobe that cannot run: no VIP on node2 during %.1f s with its LAN down (1 log line); "
              "taken %.0f ms after the LAN came back (bound %.0f ms)" % (blind_s, taken * 1000, bound * 1000))
