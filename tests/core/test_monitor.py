"""Resource monitoring (issue 14): a crashed service on the active box is restarted in place,
then moved; the ha.cf keys; on the simulated pair (also run under MicroPython)."""

from hanode.core import monitor
from hanode.core.config import check, parse
from tests.core.test_config import AK, HA, HR, find
from tests.core.util import record
from tests.support.sim import Sim

KEY = "192.0.2.100"
MONITOR = "monitor_interval 500ms\nmonitor_failures 2\nmonitor_window 60\n"


def monitored_pair(extra=MONITOR, **kwargs):
    sim = Sim(extra=extra, **kwargs)
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled() and sim.servers() == ["node1"], 5000) is not None
    return sim


def group_status(box):
    return box.node.status()["groups"][0]


def crash_and_wait_served(sim, name="node1", limit_ms=None):
    """Crash the service on ``name``; the ms until somebody serves it again (None: never)."""
    sim.box(name).crash(KEY)
    assert sim.servers() == []
    return sim.run_until(lambda: sim.servers() != [], limit_ms or 20000)


# ---------------------------------------------------------------------------------- ha.cf

def test_monitoring_is_off_unless_monitor_interval_is_given():
    cfg = parse(HA, AK, HR, me="node1")
    assert cfg.monitor_interval_ms == 0
    assert (cfg.monitor_timeout_ms, cfg.monitor_failures, cfg.monitor_window_ms) == (20000, 3, 600000)
    cfg = parse(HA + MONITOR + "monitor_timeout 2\n", AK, HR, me="node1")
    assert (cfg.monitor_interval_ms, cfg.monitor_timeout_ms, cfg.monitor_failures,
            cfg.monitor_window_ms) == (500, 2000, 2, 60000)
    assert cfg.to_dict()["monitor_interval_ms"] == 500


def test_monitor_keys_are_checked_with_their_line():
    cases = [
        ("monitor_interval 10ms\n", "error", "monitor_interval [10 ms] is too short", 5),
        ("monitor_interval soon\n", "error", "invalid time [soon] for monitor_interval", 5),
        ("monitor_failures -1\n", "error", "invalid number [-1] for monitor_failures", 5),
        ("monitor_timeout 0\nmonitor_interval 5\n", "error", "monitor_timeout must be more than 0", 5),
        ("monitor_failures 2\n", "warning", "has no effect without monitor_interval", 5),
        ("monitor_interval 10\nmonitor_window 20\n", "warning", "never moved to the peer", 6),
    ]
    for lines, level, fragment, line in cases:
        find(check(HA + lines, AK, HR, me="node1")[1], level, fragment, line=line)
    assert check(HA + MONITOR, AK, HR, me="node1")[1] == []


# --------------------------------------------------------------------------- the table

def test_unlisted_pairs_keep_the_state_and_are_counted():
    m = monitor.GroupMonitor(2)
    assert m.fire(monitor.OK) is None and m.state == monitor.OFF and m.unlisted == 1
    assert m.fire(monitor.RUNNING) is None and m.state == monitor.WAITING
    assert m.fire(monitor.DUE) == monitor.DO_CHECK and m.state == monitor.CHECKING
    assert m.fire(monitor.FAILED) == monitor.DO_RESTART and m.busy()
    assert m.fire(monitor.DUE) is None and m.unlisted == 2


def test_the_failure_event_and_the_back_off():
    assert monitor.failure_event(1, 2, False) == monitor.FAILED
    assert monitor.failure_event(2, 2, True) == monitor.FAILED_LIMIT
    assert monitor.failure_event(2, 2, False) == monitor.FAILED_ALONE
    assert monitor.failure_event(0, 0, True) == monitor.FAILED_LIMIT   # monitor_failures 0: move at once
    assert [monitor.backoff_ms(5000, n) for n in (1, 2, 3, 4, 5, 9)] == [5000, 10000, 20000, 40000,
                                                                         60000, 60000]


# ------------------------------------------------------------------- on the simulated pair

def test_no_check_runs_with_monitoring_off():
    sim = monitored_pair(extra="")
    checks = record(sim.box("node1"), "check")
    sim.box("node1").crash(KEY)
    sim.run(5000)
    assert checks == [] and sim.servers() == []   # Heartbeat's behaviour: never asked again


def test_a_crashed_service_is_restarted_in_place_within_interval_plus_restart():
    sim = monitored_pair()
    restarts = record(sim.box("node1"), "restart")
    took = crash_and_wait_served(sim)
    cfg = sim.cfg
    assert took is not None and took <= cfg.monitor_interval_ms + sim.check_ms + sim.action_ms + 2 * sim.tick_ms, took
    assert sim.servers() == ["node1"] and sim.holders() == ["node1"] and sim.doubles_ms == 0
    # the failed resource (httpd, index 1) and those after it; the address stays up
    assert [o for _, o in restarts] == [monitor.Restart(KEY, 1)]
    st = group_status(sim.box("node1"))["monitor"]
    assert st["restarts_in_window"] == 1 and st["alarm"] is None
    httpd = st["resources"][1]
    assert (httpd["failures"], httpd["restarts"], httpd["result"]) == (1, 1, "failed")
    sim.run(600)   # checked again and found running
    httpd = group_status(sim.box("node1"))["monitor"]["resources"][1]
    assert httpd["result"] == "running" and httpd["last_check_ms_ago"] < 600
    assert st["resources"][0]["restarts"] == 0


def test_past_the_limit_the_group_moves_to_the_peer_never_on_both():
    sim = monitored_pair()
    n1 = sim.box("node1")
    for _ in range(2):   # within the limit: in place
        assert crash_and_wait_served(sim) is not None and sim.servers() == ["node1"]
    assert crash_and_wait_served(sim) is not None
    assert sim.run_until(lambda: sim.settled() and sim.servers() == ["node2"], 5000) is not None
    assert sim.doubles_ms == 0 and n1.restarts == 2
    st = group_status(n1)
    assert st["given"] and st["monitor"]["handed_over"] == 1
    assert "giving group %s to node2" % KEY in n1.log_text()
    assert group_status(sim.box("node2"))["held_by"] == "node2"
    sim.run(3000)   # the hand-over sticks (auto_failback on does not undo it)
    assert sim.holders() == ["node2"]
    # the operator takes it back: node1 starts afresh, with a full allowance of restarts
    n1.handle(n1.node.takeover(sim.now, KEY))
    assert sim.run_until(lambda: sim.settled() and sim.servers() == ["node1"], 5000) is not None
    assert crash_and_wait_served(sim) is not None and sim.servers() == ["node1"]
    assert sim.doubles_ms == 0


def test_with_no_healthy_peer_it_keeps_restarting_with_back_off_and_an_alarm():
    sim = monitored_pair()
    sim.power_off("node2")
    sim.run(1000)   # node1 declares it dead
    n1 = sim.box("node1")
    n1.crashy.add(KEY)
    n1.crash(KEY)
    restarts = record(n1, "restart")
    sim.run(40000)
    times = [t for t, _ in restarts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) >= 5 and sim.holders() == ["node1"]
    # past the 2 restarts in place: waits doubling from the interval (plus the crash and a check)
    assert gaps[-1] > 2 * gaps[1] and gaps[-1] <= monitor.BACKOFF_CAP_MS + 1000, gaps
    st = n1.node.status()
    assert any("restarting it here with back-off" in a for a in st["alarms"])
    assert "ALARM" in n1.log_text() and n1.log_text().count("ALARM") == 1   # once per episode
    summary = n1.node.monitoring.degraded(n1.node)
    assert summary == [KEY]
    from hanode.core.status import summary as one_line
    assert "ALARM" in one_line(n1.node)
    # the service heals: the next passing check ends the episode once the window forgets
    n1.crashy.discard(KEY)
    sim.run(70000)
    assert n1.node.status()["alarms"] == [] and sim.servers() == ["node1"]


def test_a_group_given_back_by_a_crashing_peer_backs_off_here_no_ping_pong():
    sim = monitored_pair()
    for name in ("node1", "node2"):
        sim.box(name).crashy.add(KEY)
    sim.box("node1").crash(KEY)
    sim.run(30000)
    # node1 gave it to node2, node2's crashed too and gave it back: node1 keeps it, alarmed
    handed = [group_status(sim.box(n))["monitor"]["handed_over"] for n in ("node1", "node2")]
    assert handed == [1, 1], handed
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0
    assert group_status(sim.box("node1"))["monitor"]["alarm"] is not None


def test_a_status_that_is_not_lsb_conformant_is_said_once_and_not_acted_on():
    sim = monitored_pair()
    n1 = sim.box("node1")
    restarts = record(n1, "restart")
    answers = []

    def answer(outputs, original=n1.handle):
        for o in outputs:
            if o.kind == "check":
                answers.append(o)
        original([o for o in outputs if o.kind != "check"])
    n1.handle = answer
    for _ in range(3):
        assert sim.run_until(lambda: answers, 2000) is not None
        answers.pop()
        n1.handle(n1.node.monitored(KEY, [("running", ""), ("unknown", "exit 4")], sim.now))
    assert restarts == []
    assert n1.log_text().count("not LSB-conformant") == 1
    assert group_status(n1)["monitor"]["resources"][1]["result"] == "unknown"


def test_a_release_during_a_check_ignores_its_answer():
    sim = monitored_pair()
    n1 = sim.box("node1")
    checks = record(n1, "check")
    assert sim.run_until(lambda: checks, 2000) is not None
    n1.handle(n1.node.standby(sim.now))
    assert sim.run_until(lambda: sim.settled() and sim.servers() == ["node2"], 5000) is not None
    n1.handle(n1.node.monitored(KEY, [("running", ""), ("failed", "late")], sim.now))
    assert n1.restarts == 0 and n1.node.status()["counters"]["unlisted_transitions"] == 0


def test_status_says_degraded_while_a_restart_runs():
    from hanode.core.status import summary
    sim = monitored_pair(action_ms=300)
    n1 = sim.box("node1")
    assert "DEGRADED" not in summary(n1.node)
    n1.crash(KEY)
    assert sim.run_until(lambda: n1.node.monitoring.monitors[0].state == monitor.RESTARTING, 2000) is not None
    assert "DEGRADED: %s" % KEY in summary(n1.node)
    assert n1.node.status()["groups"][0]["monitor"]["state"] == "restarting"
    assert sim.run_until(lambda: sim.servers() == ["node1"], 1000) is not None
    assert "DEGRADED" not in summary(n1.node)


def test_a_reload_turns_monitoring_off_and_on():
    from tests.support.sim import make_config
    sim = monitored_pair()
    n1 = sim.box("node1")
    checks = record(n1, "check")
    n1.handle(n1.node.reconfigure(make_config(me="node1"), sim.now))   # no monitor_interval
    sim.run(2000)
    assert checks == [] and n1.node.monitoring.monitors[0].state == monitor.OFF
    n1.handle(n1.node.reconfigure(make_config(me="node1", extra=MONITOR), sim.now))
    sim.run(2000)
    assert len(checks) >= 3 and n1.node.status()["counters"]["unlisted_transitions"] == 0


def test_a_crashing_service_is_not_handed_to_a_peer_whose_lan_is_worse():
    """The peer lost its ping node: it could not serve the clients we serve, so past the limit
    the group stays here with back-off and an alarm; once the peer's LAN is back the next
    failure hands it over."""
    sim = monitored_pair()
    sim.set_ping("node2", False)
    sim.run(2000)
    n1 = sim.box("node1")
    assert n1.node.status()["lan"]["peer"] == 1
    n1.crashy.add(KEY)
    n1.crash(KEY)
    sim.run(10000)
    assert sim.holders() == ["node1"] and group_status(n1)["monitor"]["handed_over"] == 0
    assert any("restarting it here with back-off" in a for a in n1.node.status()["alarms"])
    sim.set_ping("node2", True)
    assert sim.run_until(lambda: sim.settled() and sim.servers() == ["node2"], 60000) is not None
    assert sim.doubles_ms == 0 and group_status(n1)["monitor"]["handed_over"] == 1
