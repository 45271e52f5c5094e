"""Agent restart and upgrade without a failover (issue 15) - two real agents on the paced null-modem,
the client fetching the VIP every 15 ms from its own namespace.

Theory of operation
-------------------
``hanode restart`` is run as the operator would, in the node's namespace (it is also the restart's
guard: if the new agent does not come back within the grace it releases the groups left running).
The witnesses are independent of the agents: the client's answers (failed requests), the netlink
monitors (the VIP on both, the VIP leaving node1) and node2's own counters (failovers, held
restarts).  The "upgrade" that does not come back is a broken ``hanode`` package put in front of
the agent's PYTHONPATH after its start: the re-executed agent dies at import, as after a broken
package upgrade.
"""
import os
import subprocess
import sys
import time

import pytest

from hanode.lab.bed import Lab, agent_env
from test_pair import _root_and_no_leftovers  # noqa: F401  (autouse: root, and no namespace left behind)
import test_reload_pair
from test_reload_pair import TIMINGS_A, baseline, report, status

pytestmark = pytest.mark.integration

GRACE_S = 3
CLIENT_INTERVAL = 0.015


def live_pair(lab):
    """test_reload_pair's settled pair, with the client fetching every 15 ms."""
    default, test_reload_pair.CLIENT_INTERVAL = test_reload_pair.CLIENT_INTERVAL, CLIENT_INTERVAL
    try:
        return test_reload_pair.live_pair(lab)
    finally:
        test_reload_pair.CLIENT_INTERVAL = default


def restart(lab, node, timeout=60):
    d = lab.node_dir(node)
    argv = ["ip", "netns", "exec", lab.ns(node)] + lab.hanode_argv(
        node, "restart", "--socket", os.path.join(d, "control.sock"), "--config-dir", os.path.join(d, "ha.d"),
        "--node", node)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=agent_env())


def outage_ms(lab, since):
    windows = lab.outages(since)
    return max([(b - a) * 1000 for a, b, _, _ in windows] or [0.0]), len(windows)


def test_restart_of_the_active_agent_twenty_times_without_a_failover():
    with Lab(timing=dict(TIMINGS_A), extra_ha_cf="restart_grace %d\n" % GRACE_S) as lab:
        live_pair(lab)
        quiet = baseline(lab, 5.0)
        since = time.time()
        pid = lab.procs["node1"].pid
        st1, st2 = status(lab, "node1"), status(lab, "node2")
        gen, peer_restarts = st1["generation"], st2["counters"]["peer_restarts"]
        # a broken ha.cf is refused with its file:line: the next agent would not start
        ha_cf = os.path.join(lab.node_dir("node1"), "ha.d", "ha.cf")
        with open(ha_cf, "a") as f:
            f.write("restart_grace 0\n")
        r = restart(lab, "node1")
        assert r.returncode == 1 and "configuration error" in r.stderr, r.stdout + r.stderr
        assert ha_cf + ":" in r.stderr and "restart_grace" in r.stderr, r.stderr
        assert status(lab, "node1")["generation"] == gen
        lab.write_config("node1")
        took, spans = [], []
        for _ in range(20):
            t0 = time.time()
            r = restart(lab, "node1")
            assert r.returncode == 0 and "done in" in r.stdout, r.stdout + r.stderr + lab.log_text("node1")[-3000:]
            took.append(time.time() - t0)
            spans.append((t0, time.time()))
            time.sleep(0.5)
        st1, st2 = status(lab, "node1"), status(lab, "node2")
        assert st1["generation"] == gen + 20 and st1["agent"]["pid"] == pid   # re-executed in place
        assert st2["counters"]["peer_restarts"] == peer_restarts + 20
        assert st2["counters"]["peer_restarts_held"] == 20 and st2["counters"]["peer_restart_timeouts"] == 0
        assert st2["counters"]["failovers"] == 0
        assert lab.wait_for(lambda: status(lab, "node2")["peer_revision"] == st1["config"]["revision"], 5) is not None
        assert "restarted its agent in" in lab.log_text("node2") and "is dead" not in lab.log_text("node2")
        worst, windows = outage_ms(lab, since)
        failed = [e["t"] for e in lab.client_events() if e["t"] >= since and not e["ok"]]
        inside = [t for t in failed if any(a <= t <= b for a, b in spans)]
        print("20 restarts: %.2f-%.2f s each (CLI start to the new agent's groups running); client outage windows "
              "%d, longest %.0f ms; failed fetches while a restart ran: %d, between restarts: %d"
              % (min(took), max(took), windows, worst, len(inside), len(failed) - len(inside)))
        # the same CPU without a restart: the two Python starts a restart costs (the CLI, and an
        # interpreter importing what the agent imports), 20 times, on node1 (a witness, not asserted)
        load_since, load_spans = time.time(), []
        env = agent_env()
        for _ in range(20):
            t0 = time.time()
            subprocess.run(["ip", "netns", "exec", lab.ns("node1")] + lab.hanode_argv(
                "node1", "status", "--socket", os.path.join(lab.node_dir("node1"), "control.sock")),
                capture_output=True, env=env, timeout=60)
            subprocess.run(["ip", "netns", "exec", lab.ns("node1"), sys.executable, "-c",
                            "import hanode.daemon, hanode.resources, hanode.vip, hanode.arp, pyroute2"],
                           capture_output=True, env=env, timeout=60)
            load_spans.append((t0, time.time()))
            time.sleep(0.5)
        loaded = [e for e in lab.client_events() if e["t"] >= load_since]
        print("the same Python starts without a restart: %d of %d fetches failed, longest window %.0f ms"
              % (len([e for e in loaded if not e["ok"]]), len(loaded), outage_ms(lab, load_since)[0]))
        report(lab, "20 agent restarts of the active box", since, quiet)


def test_a_timing_change_reload_refuses_is_applied_by_a_restart_without_an_outage():
    with Lab(timing=dict(TIMINGS_A), extra_ha_cf="restart_grace %d\n" % GRACE_S) as lab:
        live_pair(lab)
        quiet = baseline(lab, 5.0)
        since = time.time()
        # warntime and deadtime up on node2 first (live), then node1's keepalive 300 ms: reload refuses
        # it (not under half the running deadtime 500 ms), a restart puts it in force
        lab.timing = dict(TIMINGS_A, warntime="1", deadtime="2")
        lab.write_config("node2")
        socket = os.path.join(lab.node_dir("node2"), "control.sock")
        assert lab.cli("node2", "reload", "--socket", socket).returncode == 0
        lab.timing = dict(TIMINGS_A, keepalive="300ms", warntime="1", deadtime="2")
        lab.write_config("node1")
        r = lab.cli("node1", "reload", "--socket", os.path.join(lab.node_dir("node1"), "control.sock"))
        assert r.returncode == 1 and "keepalive 300 ms" in r.stderr, r.stdout + r.stderr
        r = restart(lab, "node1")
        assert r.returncode == 0 and "done in" in r.stdout, r.stdout + r.stderr
        time.sleep(2.0)
        assert status(lab, "node1")["timings"]["keepalive_ms"] == 300
        assert status(lab, "node2")["counters"]["failovers"] == 0
        print("timing change by restart: client outage windows %d, longest %.0f ms" % outage_ms(lab, since)[::-1])
        report(lab, "a timing change by restart", since, quiet)


def test_a_restart_that_does_not_come_back_fails_over_after_the_grace():
    with Lab(timing=dict(TIMINGS_A), extra_ha_cf="restart_grace %d\n" % GRACE_S) as lab:
        live_pair(lab)
        # the next agent cannot start: its generation file cannot be read (a directory in its place),
        # as after a broken upgrade or a damaged state directory (hanode run exits 1)
        generation = os.path.join(lab.node_dir("node1"), "state", "generation")
        os.unlink(generation)
        os.mkdir(generation)
        t0 = time.time()
        r = restart(lab, "node1")
        assert r.returncode == 1 and "did not come back within" in r.stderr, r.stdout + r.stderr
        assert lab.wait_for(lambda: status(lab, "node2")["groups"][0]["held_by"] == "node2"
                            and status(lab, "node2")["groups"][0]["state"] == "running", 20) is not None
        took = time.time() - t0
        text = lab.log_text("node2")
        assert "did not come back within its restart grace (3000 ms)" in text, text[-3000:]
        assert "cannot read" in lab.log_text("node1")
        vip_on_node2 = [a for a, b in lab.vip_intervals("node2") if a >= t0]
        assert vip_on_node2 and vip_on_node2[0] - t0 >= GRACE_S, (vip_on_node2, t0)
        assert lab.double_holder_ms(t0) == 0
        print("restart that did not come back: node2 added the VIP %.2f s after the restart command "
              "(grace %d s); running there %.2f s after it" % (vip_on_node2[0] - t0, GRACE_S, took))


def test_the_watchdog_stays_armed_across_a_restart():
    """ha.cf `watchdog <fifo>` on node1 (test_supervision's stand-in records every byte): across
    `hanode restart` the pets go on through the handed-over fd, with no magic 'V' in between."""
    import shutil
    import signal
    import tempfile
    from test_supervision import WatchdogFifo
    tmp = tempfile.mkdtemp(prefix="hanode-wd-")
    fifo = os.path.join(tmp, "watchdog")
    wd = WatchdogFifo(fifo)
    try:
        grace = "restart_grace %d\n" % GRACE_S
        with Lab(timing=dict(TIMINGS_A), extra_ha_cf={"node1": grace + "watchdog %s\n" % fifo,
                                                      "node2": grace}) as lab:
            live_pair(lab)
            t0 = time.time()
            r = restart(lab, "node1")
            assert r.returncode == 0 and "done in" in r.stdout, r.stdout + r.stderr
            t1 = time.time()
            time.sleep(1.0)
            wd.drain()
            assert b"V" not in wd.data(), wd.data()
            assert wd.count_since(t1) >= 3
            text = lab.log_text("node1")
            assert "stays armed for the next agent" in text and "armed all along" in text, text[-3000:]
            pets = [t for t, b in wd.bytes if t0 - 1 <= t]
            gap = max(b - a for a, b in zip(pets, pets[1:]))
            lab.signal("node1", signal.SIGTERM)
            assert lab.procs["node1"].wait(30) == 0
            wd.drain()
            assert wd.data().endswith(b"V") and wd.data().count(b"V") == 1
            print("watchdog across a restart: no 'V', longest gap between pets %.0f ms (restart took %.2f s)"
                  % (gap * 1000, t1 - t0))
    finally:
        wd.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_systemd_keeps_hearing_the_restarted_agent():
    """Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) the re-executed agent, the same main PID, says
    READY=1 again and keeps sending WATCHDOG=1: WatchdogSec= does not kill it after the restart."""
    import shutil
    import tempfile
    from test_supervision import NotifySocket
    tmp = tempfile.mkdtemp(prefix="hanode-notify-")
    ns = NotifySocket(os.path.join(tmp, "notify"))
    try:
        with Lab(timing=dict(TIMINGS_A), extra_ha_cf="restart_grace %d\n" % GRACE_S) as lab:
            lab.start("node1", env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"})
            lab.start("node2")
            assert lab.wait_for(lambda: status(lab, "node2").get("groups", [{}])[0].get("held_by") == "node1"
                                and status(lab, "node2")["peer_state"] == "active", 60) is not None
            pid = lab.procs["node1"].pid
            t0 = time.time()
            r = restart(lab, "node1")
            assert r.returncode == 0 and "done in" in r.stdout, r.stdout + r.stderr
            time.sleep(2.5)
            after = [(k, v) for t, k, v in ns.assignments() if t >= t0]
            assert ("READY", "1") in after and ("MAINPID", str(pid)) in after, after
            assert len([1 for k, v in after if k == "WATCHDOG"]) >= 2, after
            assert status(lab, "node1")["agent"]["pid"] == pid
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
