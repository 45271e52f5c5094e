"""Issue 13 finding 5 on the lab: both boxes powered on together with the serial cable pulled
and the LAN up, under CPU load.

Each box declares the other dead after initdead and probes the LAN; the probe and the add are
not atomic, so under load both may add the VIP (docs/faults.md: once 1.6 s of double VIP at
cold start). The conflict watch (RFC 5227 section 2.4) ends any such double: the preferred node
keeps the address and defends it, the other releases it. Every round must end with exactly one
holder; the double-VIP time is measured from the netlink monitors of both namespaces.
"""
import os
import subprocess
import sys
import time

import pytest

from tests.integration.test_faults import diagnose, make_lab, status, vip_on, wait

# initdead 1 s (instead of the tight example's 10 s) so that a round takes seconds: with the
# cable pulled both boxes wait out initdead, then probe at the same moment.
TIMING = {"keepalive": "100ms", "warntime": "300ms", "deadtime": "500ms", "initdead": "1"}
# After the first holder appears, watch this long for a second one: longer than the other
# node's probe retry (2 x 200 + 50 ms) twice over, so a late add would be seen.
STABLE_S = 1.2
# The bound on any one double: one probe retry interval at this timing (node.py's
# _probe_retry_ms for the preferred node: max(keepalive, 200 ms)).
DOUBLE_BOUND_MS = 200.0


class CpuLoad:
    """One busy loop per CPU, in processes we start and kill by PID."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        for _ in range(os.cpu_count() or 1):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, 9)
            p.wait()


def group_state(lab, node):
    st = status(lab, node)
    return st["groups"][0]["state"] if st else None


def one_holder(lab):
    """Exactly one namespace has the VIP and its agent says the group is running."""
    on = [n for n in ("node1", "node2") if vip_on(lab, n)]
    return on if len(on) == 1 and group_state(lab, on[0]) == "running" else None


def power_on_together(rounds):
    lab = make_lab(timing=TIMING)
    figures = {"rounds": 0, "holders": [], "doubles_ms": [], "settle_s": [], "load": []}
    try:
        lab.cable.cut()
        with CpuLoad():
            for i in range(rounds):
                t0 = time.time()
                lab.power_on("node1")
                lab.power_on("node2")
                figures["settle_s"].append(wait(lambda: one_holder(lab), 30, "round %d: one holder" % i))
                time.sleep(STABLE_S)
                holders = one_holder(lab)
                assert holders, "round %d: not exactly one holder at the end\n%s" % (i, diagnose(lab))
                other = "node2" if holders[0] == "node1" else "node1"
                assert group_state(lab, other) in ("stopped", "probing"), diagnose(lab)
                figures["holders"].append(holders[0])
                figures["doubles_ms"].append(lab.double_holder_ms(since=t0))
                figures["load"].append(os.getloadavg()[0])
                lab.power_off("node1")
                lab.power_off("node2")
                figures["rounds"] += 1
        conflicts = {n: lab.log_text(n).count("Address conflict for resource group") for n in ("node1", "node2")}
        figures["races"] = {i: round(d, 1) for i, d in enumerate(figures["doubles_ms"]) if d > 0}
        figures["conflict_lines"] = conflicts
        doubles = figures["doubles_ms"]
        print("power-on together, cable pulled, %d busy loops: %d rounds, holders %s, double VIP in %d "
              "rounds, total %.1f ms, max %.1f ms; settled in %.2f..%.2f s; load average %.1f..%.1f; "
              "conflict log lines %s; double VIP by round %s" % (
                  os.cpu_count(), figures["rounds"],
                  {h: figures["holders"].count(h) for h in set(figures["holders"])},
                  sum(1 for d in doubles if d > 0), sum(doubles), max(doubles), min(figures["settle_s"]),
                  max(figures["settle_s"]), min(figures["load"]), max(figures["load"]), conflicts,
                  figures["races"]))
        assert max(doubles) <= DOUBLE_BOUND_MS, "a double lasted %.1f ms\n%s" % (max(doubles), diagnose(lab, 80))
        return figures
    finally:
        lab.close()


@pytest.mark.integration
def test_lab_power_on_together_cable_pulled_under_load_5_rounds():
    """5 rounds (the default run's form; the 100-round form is marked slow)."""
    figures = power_on_together(5)
    assert figures["rounds"] == 5


@pytest.mark.integration
@pytest.mark.slow
def test_lab_power_on_together_cable_pulled_under_load_100_rounds():
    """Issue 13 finding 5's proof: 100 rounds, exactly one holder at the end of each."""
    figures = power_on_together(100)
    assert figures["rounds"] == 100


@pytest.mark.integration
def test_lab_a_double_vip_is_ended_by_the_conflict_watch():
    """The race forced: vip_probe off, so both boxes add the VIP blindly when initdead runs out
    with the cable pulled (Heartbeat's behaviour, which left both holding until the cable came
    back). The conflict watch hears the other's gratuitous ARP: node2 (not preferred) releases,
    node1 keeps it and defends it. 3 rounds under CPU load."""
    lab = make_lab(timing=TIMING, vip_probe=False)
    doubles = []
    try:
        lab.cable.cut()
        with CpuLoad():
            for i in range(3):
                t0 = time.time()
                lab.power_on("node1")
                lab.power_on("node2")
                wait(lambda: one_holder(lab) == ["node1"] and lab.vip_intervals("node2"), 30,
                     "round %d: node2 added and released the VIP, node1 holds it" % i)
                time.sleep(STABLE_S)
                assert one_holder(lab) == ["node1"], diagnose(lab)
                doubles.append(lab.double_holder_ms(since=t0))
                lab.power_off("node1")
                lab.power_off("node2")
        print("forced double VIP (vip_probe off, cable pulled, %d busy loops): %s ms"
              % (os.cpu_count(), ", ".join("%.1f" % d for d in doubles)))
        log1, log2 = lab.log_text("node1"), lab.log_text("node2")
        assert log2.count("its preferred node node1 keeps it: releasing it here") == 3, log2[-3000:]
        # node1 hears a conflict only when node2's gratuitous ARP comes after node1's watch started
        # (node2 added second); when node2 added first, node1's own announcement ends it
        assert "releasing it here" not in log1, log1[-3000:]
        assert max(doubles) <= DOUBLE_BOUND_MS, "%s\n%s" % (doubles, diagnose(lab, 80))
    finally:
        lab.close()
