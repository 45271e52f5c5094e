"""The two-box story end to end: real `hanode run` agents on the paced null-modem.

Theory of operation
-------------------
Each test builds its own ``hanode.lab.bed.Lab`` (``with pair(...) as lab:``, so the
namespaces, PTYs and every process it started are gone afterwards, also on
failure): namespaces node1, node2 and client on a private bridge (192.0.2.0/24
only), a 19200-baud null-modem between two PTYs, per-node /etc/ha.d with VIP
192.0.2.100 and the ``webapp`` init script that serves its node's name.  The
witnesses are independent of the agents: an HTTP client in the client
namespace fetching the VIP every 100 ms (who serves, and the outages), a
netlink monitor per node (when the VIP was configured where: double-holder
time), the cable's byte log (frame sizes), the agents' logs, and the control
socket (``hanode status``/``standby``/``takeover`` run as real commands).

Timing bounds are deliberately loose: other engineers run namespace tests on
this 2-core machine at the same time, and a Python agent starts in 0.5-3 s
depending on the load.  Each bound says what it separates (e.g. a hand-over
in < 5 s cannot be a 15 s deadtime detection).
"""
import contextlib
import json
import os
import re
import signal
import threading
import time

import pytest

from hanode.control import ControlError, request
from hanode.core.limits import CONTROL_WIRE_BYTES
from hanode.lab.bed import HTTP_GET, VIP, WEBAPP, Lab
from hanode.lab.presets import KEY, TIMINGS

pytestmark = pytest.mark.integration

GROUP = "%s/24/eth0" % VIP
CLIENT_INTERVAL = 0.1
COLD_START_TIMEOUT = 30.0   # two Python agents starting on a loaded box: seconds, not tens of them


@pytest.fixture(autouse=True)
def _root_and_no_leftovers():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and port 80")
    yield
    # every Lab this process built is torn down: no namespace of ours may survive a test
    mine = re.compile(r"^hn%dx\d+-" % os.getpid())
    left = [n for n in os.listdir("/run/netns") if mine.match(n)] if os.path.isdir("/run/netns") else []
    assert not left, "namespaces left behind: %s" % left


@contextlib.contextmanager
def pair(**kwargs):
    """``with Lab(**kwargs) as lab``, printing what happened if the test fails (pytest shows it)."""
    with Lab(**kwargs) as lab:
        try:
            yield lab
        except BaseException:
            dump(lab)
            raise


def dump(lab):
    t0 = lab.marks[0][0] if lab.marks else 0.0
    print("--- lab marks:")
    for t, text in lab.marks:
        print("%9.3f  %s" % (t - t0, text))
    print("--- client (who served, from when):")
    last = None
    for e in lab.client_events():
        what = e["body"] if e["ok"] else "no answer (%s)" % e["body"]
        if what != last:
            print("%9.3f  %s" % (e["t"] - t0, what))
            last = what
    for node in ("node1", "node2"):
        print("--- VIP on %s: %s" % (node, [(round(a - t0, 3), round(b - t0, 3)) for a, b in lab.vip_intervals(node)]))
        print("--- %s log:" % node)
        print(lab.log_text(node))


# ---------------------------------------------------------------- witnesses
def served_sequence(lab, since=0.0):
    """Who answered the client after `since`, consecutive repeats collapsed: ['node1', 'node2', ...]."""
    seq = []
    for e in lab.client_events():
        if e["ok"] and e["t"] >= since and (not seq or seq[-1] != e["body"]):
            seq.append(e["body"])
    return seq


def wait_served(lab, who, since, timeout):
    """Time of the first good answer from `who` after `since`; fails the test if none comes."""
    def first():
        times = [e["t"] for e in lab.client_events() if e["ok"] and e["body"] == who and e["t"] >= since]
        return min(times) if times else None
    if lab.wait_for(lambda: first() is not None, timeout) is None:
        pytest.fail("the client was never served by %s within %.0f s\n--- node1 log:\n%s\n--- node2 log:\n%s"
                    % (who, timeout, lab.log_text("node1")[-3000:], lab.log_text("node2")[-3000:]))
    return first()


def outage_s(lab, since):
    """Seconds without a good answer after `since` (the client's view)."""
    return sum(end - max(start, since) for start, end, _, _ in lab.outages(since) if end >= since)


def longest_outage_s(lab, since):
    """The longest single window without a good answer after `since`.  The client gives up on a
    fetch after 100 ms, so on a loaded box a slow answer shows up as a ~0.1-0.2 s blip."""
    return max([end - max(start, since) for start, end, _, _ in lab.outages(since) if end >= since] or [0.0])


def first_log(lab, node, pattern, since=0.0):
    """(time, message) of the first log line of `node` after `since` matching the regex, or None."""
    for t, _level, msg in lab.log_lines(node):
        if t >= since - 0.001 and re.search(pattern, msg):
            return t, msg
    return None


def status(lab, node):
    """The status straight from the control socket (no subprocess: cheap enough to sample)."""
    return request("status", os.path.join(lab.node_dir(node), "control.sock"), timeout=5)


def polled(lab, node):
    """status() for wait_for predicates: {} while the agent is not (yet) answering, so the
    predicate's lookup fails with KeyError and wait_for tries again."""
    try:
        return status(lab, node)
    except ControlError:
        return {}


def group(st):
    return st["groups"][0]


def settled(lab):
    """Both agents in touch, node1 running the group and node2 seeing it there."""
    st1, st2 = polled(lab, "node1"), polled(lab, "node2")
    return (st1["peer_state"] == st2["peer_state"] == "active" and group(st1)["state"] == "running"
            and group(st2)["held_by"] == "node1")


def start_pair(lab):
    """Client and both agents started; returns (when they were started, when the pair had settled:
    node1 serving the page and both agents agreeing on it).  Tests of something other than the
    cold start look only at what happens after the second time."""
    lab.start_client(CLIENT_INTERVAL)
    t_begin = time.time()
    lab.start("node1")
    lab.start("node2")
    wait_served(lab, "node1", t_begin, COLD_START_TIMEOUT)
    assert lab.wait_for(lambda: settled(lab), 10), "the pair did not settle after node1 served"
    t_settled = time.time()
    wait_served(lab, "node1", t_settled, 5)   # so that served_sequence(lab, t_settled) starts with node1
    return t_begin, t_settled


def webapp_with(start_prefix="", stop_suffix=""):
    """The lab's webapp init script with lines added at the top of `start` / before `stop` exits."""
    text = WEBAPP
    if start_prefix:
        text = text.replace("start)\n", "start)\n" + start_prefix, 1)
    if stop_suffix:
        text = text.replace('rm -f "$PIDFILE"; fi\n    exit 0 ;;',
                            'rm -f "$PIDFILE"; fi\n' + stop_suffix + "    exit 0 ;;", 1)
    assert text != WEBAPP, "the lab's webapp script changed shape; update webapp_with()"
    return text


def eth0_mac(lab, node):
    import subprocess
    out = subprocess.run(["ip", "-n", lab.ns(node), "-j", "link", "show", "eth0"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]["address"]


# -------------------------------------------------------------------- tests
def test_a_connection_that_never_sends_does_not_hold_the_web_service():
    """A failback moves the VIP away while a client's connection to it is open: its request and
    FIN then go to the other box, and this one's service waits on it for good.  The lab's webapp
    (like httpd) serves other connections meanwhile and drops the silent one after its timeout."""
    import subprocess
    import sys
    probe = HTTP_GET + r"""
import sys, time
silent = socket.create_connection((sys.argv[1], 80), timeout=5)   # connects, never sends
t0 = time.time()
ok, body = get(sys.argv[1], 1.5)
print("served", ok, body, "%.2f" % (time.time() - t0))
silent.settimeout(5)
t1 = time.time()
print("silent closed", silent.recv(1) == b"", "%.1f" % (time.time() - t1))
"""
    with pair() as lab:
        started = lab.webapp("node2", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            r = subprocess.run(["ip", "netns", "exec", lab.ns("client"), sys.executable, "-c", probe, "192.0.2.12"],
                               capture_output=True, text=True, timeout=30)
        finally:
            lab.webapp("node2", "stop")
        assert r.returncode == 0, r.stdout + r.stderr
        served, closed = r.stdout.splitlines()
        assert served.split()[:3] == ["served", "True", "node2"], r.stdout
        assert closed.split()[:3] == ["silent", "closed", "True"], r.stdout


def test_power_loss_fails_over_and_node1_fails_back():
    with pair() as lab:
        t0, _ = start_pair(lab)
        time.sleep(1.0)

        t1 = time.time()
        lab.power_off("node1")
        t_node2 = wait_served(lab, "node2", t1, 15)
        # deadtime 500 ms + ARP probe (~50 ms) + webapp start (~0.2 s) measures ~0.8 s here;
        # 5 s leaves room for a loaded box and is still half the 10 s initdead
        print("failover: node2 serves %.3f s after the power loss" % (t_node2 - t1))
        assert t_node2 - t1 < 5.0, lab.log_text("node2")
        assert first_log(lab, "node2", r"node node1: is dead", t1)
        time.sleep(1.0)

        t2 = time.time()
        lab.power_on("node1")
        wait_served(lab, "node1", t2, COLD_START_TIMEOUT)
        time.sleep(1.0)
        # node2 stops the group before node1 starts it: the outage is node1's webapp start and
        # little else (node2's stop, two frames, the VIP), ~0.3 s measured
        acquired = r"^Resource group %s acquired" % re.escape(GROUP)
        assert lab.wait_for(lambda: first_log(lab, "node1", acquired, t2), 10)
        start = first_log(lab, "node1", r"^Running .*/webapp start$", t2)
        up = first_log(lab, "node1", acquired, t2)
        print("failback: outage %.3f s, node1's webapp start %.3f s" % (outage_s(lab, t2), up[0] - start[0]))
        assert 0 <= outage_s(lab, t2) <= (up[0] - start[0]) + 1.0

        assert served_sequence(lab, t0) == ["node1", "node2", "node1"]
        assert lab.double_holder_ms() == 0
        assert len(lab.vip_intervals("node1")) == 2 and len(lab.vip_intervals("node2")) == 1

        frames = lab.cable_frames()
        assert frames["bytes_per_frame"] == 24, frames
        # no status frame is ever longer; shorter ones are frames the UART replaced with a newer
        # one while still unsent (the resync 0x00 ends them: see uart.write_latest), measured 0-4
        # of ~130. The only longer ones are the 32-byte notices that carry the config revision
        # (three copies to each new life of the peer: docs/protocol.md, frame type 3), never
        # cut short: a control frame is not replaced while unsent (25-31 bytes were seen once
        # in ~130 frames before that rule).
        longer = {size: n for size, n in frames["sizes"].items() if size > 24}
        # (at most 3 copies for each of the 3 lives here and 3 for each new life each one meets;
        # 12 measured)
        notices = sum(longer.values())
        assert set(longer) <= {CONTROL_WIRE_BYTES} and notices <= 18, frames
        assert frames["sizes"][24] >= 0.8 * (frames["frames"] - notices), frames

        st1, st2 = status(lab, "node1"), status(lab, "node2")
        assert group(st1)["held_by"] == group(st2)["held_by"] == "node1"
        assert group(st1)["state"] == "running" and group(st2)["state"] == "stopped"
        assert st1["generation"] == 2 and st2["peer_generation"] == 2   # a new boot, persisted
        assert st2["counters"]["failovers"] == 1 and st2["counters"]["peer_restarts"] == 1


def test_cold_start_heartbeats_go_on_while_the_first_vip_is_added(tmp_path):
    # No bytecode cache: every module is compiled from source, as on a box whose read-only image
    # ships no .pyc files, so the import of pyroute2 takes 0.5-4 s here.  The first VIP add comes
    # ~0.1 s after READY; if it waits for that import on the loop thread, heartbeats stop for
    # 0.4-2.3 s (measured before e06c92b), always more than the "fast" deadtime of 250 ms.  With
    # the cache the same happened only on a heavily loaded box (3 of 9 runs at load 10, tight timing).
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(tmp_path / "no-pyc")}
    with pair(timing="fast") as lab:
        lab.start_client(CLIENT_INTERVAL)
        t_begin = time.time()
        # node2 first, so that node1 hears it (and acquires) right after its own READY, while its
        # pyroute2 import is still running; node2 alone waits for initdead (10 s)
        lab.start("node2", env=env)
        assert lab.wait_for(lambda: polled(lab, "node2")["state"] == "up", COLD_START_TIMEOUT)
        lab.start("node1", env=env)
        wait_served(lab, "node1", t_begin, COLD_START_TIMEOUT)
        assert lab.wait_for(lambda: settled(lab), 10)
        assert not first_log(lab, "node1", r"Our own loop stalled")
        assert not first_log(lab, "node2", r"is dead")
        assert served_sequence(lab, t_begin) == ["node1"]
        assert lab.double_holder_ms() == 0


def test_auto_failback_off_keeps_the_group_on_node2():
    with pair(auto_failback="off") as lab:
        _, t0 = start_pair(lab)
        lab.power_off("node1")
        wait_served(lab, "node2", time.time(), 15)

        t2 = time.time()
        lab.power_on("node1")
        assert lab.wait_for(lambda: polled(lab, "node1")["peer_state"] == "active"
                            and polled(lab, "node2")["peer_state"] == "active", COLD_START_TIMEOUT), \
            lab.log_text("node1")
        time.sleep(2.0)   # 20 keepalives: long enough for a failback to have started

        assert served_sequence(lab, t0) == ["node1", "node2"]
        assert longest_outage_s(lab, t2) < 0.5    # a failback costs a stop and a start: ~0.3 s and more
        assert not [s for s in lab.vip_intervals("node1") if s[0] > t2]
        st1, st2 = status(lab, "node1"), status(lab, "node2")
        assert group(st1)["held_by"] == group(st2)["held_by"] == "node2"
        assert group(st1)["wanted"] is False
        assert st1["auto_failback"] == "off"

        text = lab.cli("node2", "status")
        assert text.returncode == 0, text.stderr
        assert "auto_failback off: groups stay where they are when node1 returns" in text.stdout
        assert re.search(r"^%s\s+node1\s+node2\s+running" % re.escape(GROUP), text.stdout, re.M), text.stdout


def test_standby_and_takeover_through_the_cli():
    with pair() as lab:
        _, t0 = start_pair(lab)

        t = time.time()
        r = lab.cli("node1", "standby")
        assert r.returncode == 0, r.stderr
        assert "hanode standby: giving all resource groups to node2" in r.stdout
        assert "hanode standby: done: node2 now holds %s" % GROUP in r.stdout
        wait_served(lab, "node2", t, 10)
        assert status(lab, "node1")["standby"] is True
        # the peer must have finished starting before it may be asked to give the group back
        assert lab.wait_for(lambda: group(polled(lab, "node2"))["state"] == "running", 10)

        t = time.time()
        r = lab.cli("node1", "takeover")
        assert r.returncode == 0, r.stderr
        assert "hanode takeover: taking all resource groups from node2" in r.stdout
        assert "hanode takeover: done: node1 now holds %s" % GROUP in r.stdout
        # node1 runs the group itself once takeover says done: the page is there within a fetch or two
        assert wait_served(lab, "node1", t, 10)
        st1 = status(lab, "node1")
        assert st1["standby"] is False and group(st1)["state"] == "running"
        assert served_sequence(lab, t0) == ["node1", "node2", "node1"]
        assert lab.double_holder_ms(t0) == 0

        lab.power_off("node2")
        assert lab.wait_for(lambda: polled(lab, "node1")["peer_state"] == "dead", 10)
        r = lab.cli("node1", "takeover")
        assert r.returncode == 1
        assert r.stdout == ""
        assert r.stderr.strip() == ("hanode takeover: refused: node2 is not alive: its groups are taken over "
                                    "automatically when it is declared dead")
        r = lab.cli("node1", "standby")
        assert r.returncode == 1
        assert "hanode standby: refused: node2 is not alive: there is nobody to hand the groups to" in r.stderr
        assert first_log(lab, "node1", r"^takeover refused: node2 is not alive")
        time.sleep(0.5)
        assert served_sequence(lab, t0) == ["node1", "node2", "node1"]   # nothing moved
        assert group(status(lab, "node1"))["held_by"] == "node1"


def test_standby_says_done_only_when_the_peer_runs_the_group():
    # node2's start takes 1.5 s longer than node1's: long enough that a premature "done" is caught
    slow = webapp_with(start_prefix='    [ "@NODE@" = node2 ] && sleep 1.5\n')
    with pair(resource_scripts={"webapp": slow}) as lab:
        start_pair(lab)
        r = lab.cli("node1", "standby")
        assert r.returncode == 0 and "done: node2 now holds" in r.stdout, r.stderr
        assert group(status(lab, "node2"))["state"] == "running"


def test_start_failing_on_node1_moves_the_group_to_node2():
    broken = webapp_with(start_prefix='    if [ "@NODE@" = node1 ]; then echo "cannot bind port 80 on @NODE@"; '
                                      'exit 1; fi\n')
    with pair(resource_scripts={"webapp": broken}) as lab:
        lab.start_client(CLIENT_INTERVAL)
        t0 = time.time()
        lab.start("node1")
        lab.start("node2")
        wait_served(lab, "node2", t0, COLD_START_TIMEOUT)

        assert first_log(lab, "node1", r"^webapp: cannot bind port 80 on node1$")    # script output, logged
        assert first_log(lab, "node1", r"Return code 1 from .*/webapp")
        assert first_log(lab, "node1", r"^Giving up resource group %s due to a failed start \(1 of \d+ here\); "
                                       r"node2 may take it"
                         % re.escape(GROUP))
        # node1 retries a failed group every 5 s, and only if nobody holds it: watch past that
        time.sleep(5.5)
        assert served_sequence(lab, t0) == ["node2"]
        assert lab.double_holder_ms() == 0
        assert len(lab.vip_intervals("node1")) == 1          # the one failed attempt, given back
        st1 = status(lab, "node1")
        assert group(st1)["held_by"] == "node2" and group(st1)["failed"] is True
        assert st1["counters"]["start_failures"] == 1


def test_hung_stop_script_times_out_while_heartbeats_go_on():
    # the stop does its work, then hangs (like a script waiting for connections to drain)
    hangs = webapp_with(stop_suffix='    echo "draining connections"; sleep 60\n')
    with pair(resource_scripts={"webapp": hangs}, extra_ha_cf="resource_timeout 2\n") as lab:
        _, t0 = start_pair(lab)
        result = []
        cli = threading.Thread(target=lambda: result.append(lab.cli("node1", "standby")))
        t = time.time()
        cli.start()
        samples, node1_states = [], set()
        while cli.is_alive() and time.time() - t < 20:
            try:
                st2 = status(lab, "node2")
                samples.append((st2["peer_state"], st2["links"][0]["last_heard_ms"]))
                node1_states.add(group(status(lab, "node1"))["state"])
            except ControlError:
                pass
            time.sleep(0.05)
        cli.join(30)
        took = time.time() - t
        print("hung stop: standby took %.3f s; node2 heard node1 at most %s ms ago in %d samples"
              % (took, max(s[1] for s in samples) if samples else None, len(samples)))

        r = result[0]
        assert r.returncode == 0, r.stderr
        assert "done: node2 now holds" in r.stdout
        assert took >= 2.0                                 # it waited for the timeout
        assert "stopping" in node1_states
        # the peer heard node1 all along: never dead, never longer silent than the deadtime (500 ms)
        assert len(samples) >= 10, samples
        assert {s[0] for s in samples} == {"active"}, samples
        assert max(s[1] for s in samples) < 500, samples
        assert not first_log(lab, "node2", r"is dead", t)
        assert status(lab, "node2")["counters"]["failovers"] == 0

        hang = first_log(lab, "node1", r"^webapp stop timed out after 2\.\d s; killed its process group$", t)
        assert hang, lab.log_text("node1")
        assert first_log(lab, "node1", r"^webapp: draining connections$", t)
        # the group moved only after the stop was over
        wait_served(lab, "node2", t, 10)
        moved = [span for span in lab.vip_intervals("node2") if span[0] >= t]
        assert moved and moved[0][0] >= hang[0] - 0.01, (moved, hang)
        assert served_sequence(lab, t0) == ["node1", "node2"]
        assert lab.double_holder_ms(t0) == 0


def test_wrong_key_on_one_side_rejected_counted_and_no_takeover_fight():
    timing = dict(TIMINGS["tight"], initdead="2")      # the lone node takes over after 2 s, not 10
    other_key = "wrong-" + KEY
    keys = {"node1": "auth 1\n1 hmac-sha256 %s\n" % KEY, "node2": "auth 1\n1 hmac-sha256 %s\n" % other_key}
    with pair(timing=timing, authkeys=keys) as lab:
        lab.start_client(CLIENT_INTERVAL)
        t0 = time.time()
        lab.start("node1")
        wait_served(lab, "node1", t0, COLD_START_TIMEOUT)   # alone: initdead, probe, take

        t1 = time.time()
        lab.start("node2")
        assert lab.wait_for(lambda: first_log(lab, "node2", r"^Not taking resource group", t1), COLD_START_TIMEOUT), \
            lab.log_text("node2")
        time.sleep(1.5)   # several more probes, 200 ms apart

        st1, st2 = status(lab, "node1"), status(lab, "node2")
        for st in (st1, st2):
            assert st["counters"]["dropped"]["bad_tag"] > 0, st["counters"]
            assert st["counters"]["frames_received"] == 0
            assert st["peer_state"] == "dead"
        assert st2["counters"]["probes_busy"] >= 3
        assert group(st1)["held_by"] == "node1" and group(st2)["held_by"] is None
        busy = first_log(lab, "node2", r"^Not taking resource group .*%s is answered by" % re.escape(VIP))
        assert busy and eth0_mac(lab, "node1") in busy[1].lower(), busy    # node1's port answered

        assert lab.vip_intervals("node2") == []
        assert lab.double_holder_ms() == 0
        assert served_sequence(lab, t0) == ["node1"]
        assert longest_outage_s(lab, t1) < 0.5    # node1 kept serving while node2 came up and probed


def test_sigterm_hands_over_at_once_even_with_classic_timing():
    with pair(timing="classic") as lab:             # keepalive 1 s, deadtime 15 s
        _, t0 = start_pair(lab)

        t = time.time()
        lab.signal("node1", signal.SIGTERM)
        assert lab.procs["node1"].wait(timeout=20) == 0
        t_served = wait_served(lab, "node2", t, 14)
        took = [span for span in lab.vip_intervals("node2") if span[0] >= t][0][0] - t
        # a takeover by silence could not happen before the 15 s deadtime; ~0.3 s measured here
        assert took < 5.0, lab.log_text("node2")

        assert first_log(lab, "node1", r"^SIGTERM received: releasing resources", t)
        assert first_log(lab, "node1", r"^All HA resources relinquished", t)
        assert first_log(lab, "node1", r"^node1 Heartbeat shutdown complete", t)
        assert first_log(lab, "node2", r"^Received shutdown notice from 'node1'", t)
        assert first_log(lab, "node2", r"^node1 shut down cleanly", t)
        assert not first_log(lab, "node2", r"is dead", t)

        # the client waits for node2's webapp start and little else (node1's stop, one frame, the VIP);
        # the script returns (and "acquired" is logged) a moment after its port answers
        acquired = r"^Resource group %s acquired" % re.escape(GROUP)
        assert lab.wait_for(lambda: first_log(lab, "node2", acquired, t), 10)
        start = first_log(lab, "node2", r"^Running .*/webapp start$", t)
        up = first_log(lab, "node2", acquired, t)
        service_start = up[0] - start[0]
        outage = outage_s(lab, t)
        print("SIGTERM: node2 has the VIP after %.3f s; outage %.3f s, node2's webapp start %.3f s"
              % (took, outage, service_start))
        # 0 is possible: a quick hand-over falls between two of the client's fetches (100 ms apart)
        assert 0 <= outage <= service_start + 1.0, (outage, service_start)
        assert served_sequence(lab, t0) == ["node1", "node2"]
        assert lab.double_holder_ms(t0) == 0
        assert t_served - t < 5.0


def test_status_json_content_and_text_table():
    with pair() as lab:
        start_pair(lab)

        r = lab.cli("node2", "status", "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert (st["me"], st["peer"], st["state"], st["peer_state"]) == ("node2", "node1", "active", "active")
        assert (st["generation"], st["peer_generation"]) == (1, 1)
        assert st["agent"]["pid"] == lab.procs["node2"].pid
        [link] = st["links"]
        assert link["name"] == os.path.join(lab.node_dir("node2"), "ttyS0")
        assert link["state"] == "up"
        # heard within the deadtime (500 ms), or the peer would not be "active"
        assert 0 <= link["last_heard_ms"] < 500 and 0 <= st["peer_last_heard_ms"] < 500
        [g] = st["groups"]
        # (monitoring is off in this lab: nothing checked; tests/integration/test_monitor_pair.py has it on)
        monitor = g.pop("monitor")
        assert monitor["state"] == "off" and [r["last_check_ms_ago"] for r in monitor["resources"]] == [None, None]
        assert g == {"key": GROUP, "preferred": "node1", "resources": [GROUP, "webapp"], "state": "stopped",
                     "held_by": "node1", "wanted": False, "failed": False, "given": False, "taking": False,
                     "pending": None, "start_failures": 0, "gave_up": False, "stop_failures": 0, "escalated": False}
        c = st["counters"]
        assert c["frames_sent"] > 0 and c["frames_received"] > 0
        # (garbage/version/length/unknown_key may count the tail of a frame read at start-up)
        for reason in ("bad_tag", "replay"):
            assert c["dropped"][reason] == 0, c["dropped"]
        assert c["failovers"] == 0 and c["start_failures"] == 0
        time.sleep(1.0)
        later = status(lab, "node2")["counters"]
        # keepalive 100 ms: ~10 frames a second each way; 5 leaves room for a loaded box
        assert later["frames_received"] - c["frames_received"] >= 5
        assert later["frames_sent"] - c["frames_sent"] >= 5

        r = lab.cli("node1", "status")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        # (a loop stall on this busy box would add ", STALE (own loop stalled)" for a moment)
        assert re.match(r"^node1 \(generation 1\): active, resources: local(, STALE .*)?$", lines[0]), lines[0]
        assert re.match(r"^peer node2 \(generation 1\): active, last heard \d+ ms ago$", lines[1]), lines[1]
        header = next(line for line in lines if line.startswith("GROUP"))
        row = next(line for line in lines if line.startswith(GROUP))
        assert header.split() == ["GROUP", "PREFERRED", "HELD", "BY", "STATE", "RESOURCES"]
        assert row.split() == [GROUP, "node1", "node1", "running", GROUP, "webapp"]
        for column, value in (("PREFERRED", "node1"), ("HELD BY", "node1"), ("STATE", "running")):
            assert row[header.index(column):].startswith(value), (header, row)   # columns line up
        link_row = next(line for line in lines if line.startswith(os.path.join(lab.node_dir("node1"), "ttyS0")))
        assert link_row.split()[1] == "up" and link_row.endswith(" ms ago"), link_row
        assert "auto_failback on: groups preferred by node2 go back to it when it returns" in lines
        assert any(re.match(r"^frames sent \d+, received \d+, dropped: ", line) for line in lines)
