"""Issue 13 findings 3 and 7 on the simulated pair: a stop that keeps failing escalates within a
stated time, and a start that fails on both boxes backs off and is given up instead of ping-ponging.

The escalation itself (stop petting the watchdog, run the reboot command, or block) is the
agent's; here the node's ``Escalate`` output is the event, and a "reset" is the sim's power-off.
"""
from hanode.core import status, wants
from tests.core.sim import Sim

KEY = "192.0.2.100"
MINUTE_MS = 60000
LONG_TICK_MS = 20   # ten simulated minutes at a 20 ms tick (a fifth of keepalive): fast enough


def cold_start(**kwargs):
    sim = Sim(**kwargs)
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    assert sim.holders() == ["node1"]
    return sim


# ------------------------------------------------------------------ finding 3: a failed stop
def test_a_stop_that_keeps_failing_escalates_after_the_stated_retries():
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    n1.fail_stop.add(KEY)
    t0 = sim.now
    n1.handle(n1.node.standby(sim.now))
    bound = wants.STOP_RETRIES * wants.RETRY_MS + (wants.STOP_RETRIES + 1) * sim.action_ms + 200
    assert sim.run_until(lambda: n1.escalations, bound) is not None, n1.log_text()
    took = n1.escalations[0][0] - t0
    assert wants.STOP_RETRIES * wants.RETRY_MS <= took <= bound, took
    assert n1.escalations == [(n1.escalations[0][0], KEY)]
    st = n1.node.status()
    assert st["groups"][0]["escalated"] and st["groups"][0]["stop_failures"] == wants.STOP_RETRIES + 1
    assert any("failed to stop %d times" % (wants.STOP_RETRIES + 1) in a for a in st["alarms"]), st["alarms"]
    assert n1.node.status()["counters"]["escalations"] == 1
    # the peer stays off while the group may still run here: nobody serves, but nobody doubles
    assert not n2.holds(KEY) and sim.doubles_ms == 0
    # escalated once; the quiet retries go on once a minute and escalate nothing more
    sim.run(2 * MINUTE_MS)
    assert len(n1.escalations) == 1
    released = [entry for entry in n1.logs if "failed to stop" in entry[2]]
    assert len(released) == wants.STOP_RETRIES + 1, released


def test_after_the_reset_the_peer_serves_within_the_bound():
    # the self-fence: node1 stops petting at the escalation, the watchdog resets it
    # watchdog_timeout later (Heartbeat's deadtime + 10 ms rounded up: 1 s here); node2 then
    # declares it dead after deadtime, probes (nobody answers: the reset box is gone) and starts.
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    cfg = sim.cfg
    n1.fail_stop.add(KEY)
    t0 = sim.now
    n1.handle(n1.node.standby(sim.now))
    assert sim.run_until(lambda: n1.escalations, 20000) is not None
    sim.run(cfg.watchdog_timeout_s * 1000)
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.holders() == ["node2"] and not n2.pending, 10000) is not None
    outage = sim.now - t0
    bound = (wants.STOP_RETRIES * wants.RETRY_MS + (wants.STOP_RETRIES + 1) * sim.action_ms
             + cfg.watchdog_timeout_s * 1000 + cfg.deadtime_ms + 2 * cfg.keepalive_ms
             + sim.probe_ms + sim.action_ms)
    assert outage <= bound, (outage, bound)
    assert sim.doubles_ms == 0


def test_a_self_fencing_shutdown_says_no_goodbye_and_the_peer_waits_for_the_reset():
    # stop_failure fence (a watchdog configured): a shutdown whose stop keeps failing must not
    # say goodbye - the peer would probe, find the address gone (release removed it) and start
    # the group while it may still run here.  The node keeps claiming it until the reset.
    sim = cold_start(extra="watchdog /dev/watchdog\n")
    n1, n2 = sim.box("node1"), sim.box("node2")
    assert sim.cfg.stop_failure == "fence"
    n1.fail_stop.add(KEY)
    n1.handle(n1.node.shutdown(sim.now))
    assert sim.run_until(lambda: n1.escalations, wants.STOP_RETRIES * wants.RETRY_MS + 1000) is not None
    sim.run(3000)
    assert not n1.stopped and n1.node.self_fencing
    assert not n2.holds(KEY) and n2.node.status()["groups"][0]["held_by"] == "node1"
    t_reset = sim.now
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.holders() == ["node2"] and not n2.pending, 5000) is not None
    assert sim.now - t_reset <= sim.cfg.deadtime_ms + 2 * sim.cfg.keepalive_ms + sim.probe_ms + sim.action_ms
    assert sim.doubles_ms == 0


def test_a_shutdown_that_cannot_fence_says_goodbye_after_all():
    # the agent could not fence (the watchdog did not open): not_fencing() lets the shutdown end
    sim = cold_start(extra="watchdog /dev/watchdog\n")
    n1 = sim.box("node1")
    n1.fail_stop.add(KEY)
    n1.handle(n1.node.shutdown(sim.now))
    assert sim.run_until(lambda: n1.escalations, wants.STOP_RETRIES * wants.RETRY_MS + 1000) is not None
    assert not n1.stopped
    n1.handle(n1.node.not_fencing(sim.now))
    assert n1.stopped


def test_a_shutdown_whose_stop_keeps_failing_escalates_then_says_goodbye():
    sim = cold_start()
    n1 = sim.box("node1")
    n1.fail_stop.add(KEY)
    n1.handle(n1.node.shutdown(sim.now))
    assert sim.run_until(lambda: n1.stopped, wants.STOP_RETRIES * wants.RETRY_MS + 1000) is not None
    assert [g for _t, g in n1.escalations] == [KEY]
    assert sim.doubles_ms == 0


def test_a_stop_that_works_on_a_retry_does_not_escalate():
    sim = cold_start()
    n1, n2 = sim.box("node1"), sim.box("node2")
    n1.fail_stop.add(KEY)
    n1.handle(n1.node.standby(sim.now))
    sim.run(wants.RETRY_MS // 2)
    n1.fail_stop.discard(KEY)
    assert sim.run_until(lambda: sim.holders() == ["node2"] and sim.settled(), 10000) is not None
    assert n1.escalations == [] and n1.node.status()["alarms"] == []


# --------------------------------------------------------- finding 7: both boxes fail a start
def test_start_retry_backs_off_doubling_up_to_the_cap():
    delays = [wants.start_retry_ms(n) for n in range(1, 9)]
    assert delays[:4] == [5000, 10000, 20000, 40000]
    assert max(delays) == wants.START_BACKOFF_CAP_MS == delays[-1]


def both_failing_for_ten_minutes():
    """A pair whose start script is broken on both boxes, ten simulated minutes on."""
    sim = Sim(tick_ms=LONG_TICK_MS)
    sim.power_on("node1")
    sim.power_on("node2")
    n1, n2 = sim.box("node1"), sim.box("node2")
    n1.fail_start.add(KEY)
    n2.fail_start.add(KEY)
    sim.run(10 * MINUTE_MS)
    return sim, n1, n2


def test_both_boxes_failing_a_start_is_bounded_and_given_up_until_an_operator_acts():
    sim, n1, n2 = both_failing_for_ten_minutes()
    starts = n1.starts + n2.starts
    # before the fix: one start every ~5 s on each box, about 240 in 10 minutes
    assert starts <= 2 * wants.START_ROUNDS, (n1.starts, n2.starts)
    assert n1.starts == n2.starts == wants.START_ROUNDS
    assert sim.holders() == []
    for box in (n1, n2):
        st = box.node.status()
        assert st["groups"][0]["gave_up"] and st["groups"][0]["start_failures"] == wants.START_ROUNDS
        assert any("failed to start 5 times here" in a for a in st["alarms"]), st["alarms"]
        assert status.summary(box.node).startswith("%s: ALARM: %s failed to start" % (box.name, KEY))
        assert "giving it up on %s until an operator acts" % box.name in box.log_text()
    # the operator fixes the script and takes over on node1: it runs there, and stays
    n1.fail_start.clear()
    n2.fail_start.clear()
    n1.handle(n1.node.takeover(sim.now))
    assert sim.run_until(lambda: sim.holders() == ["node1"] and sim.settled(), 10000) is not None
    sim.run(3000)
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0
    assert n1.node.status()["alarms"] == [] and n2.node.status()["alarms"] == []


def test_standby_on_the_other_box_also_clears_it():
    sim, n1, n2 = both_failing_for_ten_minutes()
    assert sim.holders() == []
    n1.fail_start.clear()
    n2.handle(n2.node.standby(sim.now))   # on node2: "node1 should run it"
    assert sim.run_until(lambda: sim.holders() == ["node1"] and sim.settled(), 15000) is not None


def test_a_lone_box_failing_a_start_backs_off_too():
    sim = Sim(tick_ms=LONG_TICK_MS)
    sim.power_on("node1")
    n1 = sim.box("node1")
    n1.fail_start.add(KEY)
    sim.run(10 * MINUTE_MS)
    assert n1.starts == wants.START_ROUNDS, n1.starts
    assert n1.node.status()["groups"][0]["gave_up"]
