"""ResourceRunner against real shell scripts in a temporary directory.

Each test writes small LSB-style scripts that record every call ("name args
action") in a shared log file and keep their "running" state in a flag file,
so start/stop order, rollback, retries and status handling are observed from
the outside, exactly as a real init script would behave. The IP-resource
tests run inside a throw-away network namespace (tests/support/helpers.py).
"""
import asyncio
import concurrent.futures
import os
import sys
import threading
import time
import tracemalloc

import pytest

from hanode.resources import ResourceRunner, status_says_running

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import helpers  # noqa: E402


class Res:
    """Stand-in for hanode.core.config.Resource (script[::arg...])."""

    def __init__(self, token):
        parts = token.split("::")
        self.token = token
        self.script = parts[0]
        self.args = parts[1:]
        self.is_ip = False


class IpRes(Res):
    def __init__(self, ip, prefixlen=None, dev=None, label=None):
        super().__init__("IPaddr::" + ip)
        self.is_ip = True
        self.ip, self.prefixlen, self.dev, self.label, self.broadcast = ip, prefixlen, dev, label, None


class Group:
    def __init__(self, preferred, resources):
        self.preferred = preferred
        self.resources = resources
        self.key = resources[0].token


class Cfg:
    def __init__(self, groups, resource_dirs, timeout_ms=5000, me="node1"):
        self.groups = groups
        self.resource_dirs = resource_dirs
        self.resource_timeout_ms = timeout_ms
        self.garp_count = 2
        self.garp_interval_ms = 10
        self.me = me
        self.auto_failback = "on"
        self.config_dir = os.path.dirname(resource_dirs[0])


# An LSB-ish script: records "<name> <args...> <action>" in $CALLS, keeps state in $STATE/<name>.
LSB = """#!/bin/sh
name=$(basename "$0")
eval "action=\\${$#}"
echo "$name $*" >> "$CALLS"
flag="$STATE/$name"
case "$action" in
  start) @START@ ;;
  stop) @STOP@ ;;
  status) @STATUS@ ;;
  *) echo "Usage: $0 start|stop|status"; exit 2 ;;
esac
"""
START_OK = 'touch "$flag"; echo "Starting $name"; exit 0'
STOP_OK = 'rm -f "$flag"; exit 0'
STATUS_LSB = 'if [ -e "$flag" ]; then echo "$name is running"; exit 0; else echo "$name is not running"; exit 3; fi'


def write_script(directory, name, start=START_OK, stop=STOP_OK, status=STATUS_LSB, body=None, mode=0o755):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(body if body is not None
                else LSB.replace("@START@", start).replace("@STOP@", stop).replace("@STATUS@", status))
    os.chmod(path, mode)
    return path


class World:
    """A temp config dir with resource.d and a fake init.d, a calls log, and a message log."""

    def __init__(self, tmp_path, timeout_ms=5000, **runner_kw):
        self.root = str(tmp_path)
        self.rd = os.path.join(self.root, "resource.d")
        self.initd = os.path.join(self.root, "init.d")
        self.state = os.path.join(self.root, "state")
        os.makedirs(self.rd)
        os.makedirs(self.initd)
        os.makedirs(self.state)
        self.calls_path = os.path.join(self.root, "calls")
        self.timeout_ms = timeout_ms
        self.messages = []
        runner_kw.setdefault("stop_retry_interval_ms", 20)
        runner_kw.setdefault("kill_grace_ms", 200)
        self.runner_kw = runner_kw

    def runner(self, *groups):
        cfg = Cfg(list(groups), [self.rd, self.initd], timeout_ms=self.timeout_ms)
        env = {"CALLS": self.calls_path, "STATE": self.state}
        return ResourceRunner(cfg, log=lambda level, text: self.messages.append((level, text)), env=env,
                              **self.runner_kw)

    def calls(self):
        if not os.path.exists(self.calls_path):
            return []
        with open(self.calls_path) as f:
            return [line.strip() for line in f]

    def running(self, name):
        return os.path.exists(os.path.join(self.state, name))

    def text(self):
        return "\n".join("%s: %s" % m for m in self.messages)


def run(coro):
    return asyncio.run(coro)


def test_start_left_to_right_stop_right_to_left(tmp_path):
    w = World(tmp_path)
    for n in ("a", "b", "c"):
        write_script(w.rd, n)
    g = Group("node1", [Res("a"), Res("b::x::y"), Res("c")])
    r = w.runner(g)

    ok, detail = run(r.acquire(g.key))
    assert ok, detail
    starts = [c for c in w.calls() if c.endswith(" start")]
    assert starts == ["a start", "b x y start", "c start"]  # args first, action last
    assert all(w.running(n) for n in "abc")
    assert r.holds(g.key)
    assert "info: Acquiring resource group: node1 a b::x::y c" in w.text()
    assert "info: Running %s x y start" % os.path.join(w.rd, "b") in w.text()

    ok, detail = run(r.release(g.key))
    assert ok, detail
    stops = [c for c in w.calls() if c.endswith(" stop")]
    assert stops == ["c stop", "b x y stop", "a stop"]
    assert not any(w.running(n) for n in "abc")
    assert not r.holds(g.key)
    assert "info: Releasing resource group: node1 a b::x::y c" in w.text()


def test_failed_start_rolls_back_what_started(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "a")
    write_script(w.rd, "b", start='echo "b: cannot bind port" >&2; exit 1')
    write_script(w.rd, "c")
    g = Group("node1", [Res("a"), Res("b"), Res("c")])
    r = w.runner(g)

    ok, detail = run(r.acquire(g.key))
    assert not ok
    assert detail.startswith("b: Return code 1 from ")
    assert [c for c in w.calls() if not c.endswith("status")] == ["a start", "b start", "b stop", "a stop"]
    assert not w.running("a")
    assert "c start" not in w.calls() and "c stop" not in w.calls()
    assert "critical: Giving up resources due to failure of b" in w.text()
    assert "b (stderr): b: cannot bind port" in w.text()  # the script's own words reach the log
    assert not r.holds(g.key)


def test_missing_script_is_reported_and_rolls_back(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "a")
    g = Group("node1", [Res("a"), Res("nosuchd")])
    r = w.runner(g)
    ok, detail = run(r.acquire(g.key))
    assert not ok
    assert detail == "nosuchd: Cannot locate resource script nosuchd"
    assert "error: Cannot locate resource script nosuchd" in w.text()
    assert not w.running("a")


def test_status_running_skips_start(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "a")
    open(os.path.join(w.state, "a"), "w").close()  # already running
    g = Group("node1", [Res("a")])
    ok, detail = run(w.runner(g).acquire(g.key))
    assert ok and "already running" in detail
    assert w.calls() == ["a status"]


@pytest.mark.parametrize("rc, text, running", [
    (0, "httpd is running", True),
    (0, "", True),                         # LSB: the exit code is enough
    (3, "httpd is not running", False),
    (3, "", False),
    (1, "dead but pid file exists", False),
    (7, "INFO:  Resource is stopped", False),   # OCF_NOT_RUNNING from Heartbeat's wrappers
    (0, "httpd is not running", False),    # a pre-LSB script that always exits 0
    (0, "Usage: /etc/init.d/x start|stop", False),
    (4, "INFO:  Running OK", True),        # unknown code: Heartbeat's text rule
    (4, "something odd", False),
    (127, "", False),
])
def test_status_rule_table(rc, text, running):
    assert status_says_running(rc, text) is running


@pytest.mark.parametrize("rc, text, running", [(0, "", True), (3, "x is stopped", False),
                                               (0, "x is not running", False), (5, "Running OK", True)])
def test_status_from_real_scripts(tmp_path, rc, text, running):
    w = World(tmp_path)
    write_script(w.rd, "s", status='echo "%s"; exit %d' % (text, rc))
    g = Group("node1", [Res("s")])
    st = run(w.runner(g).status(g.key))
    assert st["resources"][0]["running"] is running
    assert st["state"] == ("all" if running else "none")
    # acquire starts it exactly when status says it is not running
    w2 = World(tmp_path / "again")
    write_script(w2.rd, "s", status='echo "%s"; exit %d' % (text, rc))
    ok, _ = run(w2.runner(g).acquire(g.key))
    assert ok
    assert ("s start" in w2.calls()) is (not running)


def test_status_reports_some(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "a")
    write_script(w.rd, "b")
    open(os.path.join(w.state, "b"), "w").close()
    g = Group("node1", [Res("a"), Res("b"), Res("missing")])
    st = run(w.runner(g).status(g.key))
    assert [x["running"] for x in st["resources"]] == [False, True, None]
    assert st["state"] == "some"
    assert st["resources"][2]["detail"] == "Cannot locate resource script missing"
    assert st["held"] is False


def test_resource_dirs_search_order(tmp_path):
    w = World(tmp_path)
    write_script(w.initd, "only_initd")
    write_script(w.rd, "both")
    write_script(w.initd, "both")
    write_script(w.rd, "notexec", mode=0o644)      # not executable: skipped
    write_script(w.initd, "notexec")
    os.makedirs(os.path.join(w.rd, "isdir"))      # not a regular file: skipped
    write_script(w.initd, "isdir")
    r = w.runner()
    assert r.locate("only_initd") == os.path.join(w.initd, "only_initd")
    assert r.locate("both") == os.path.join(w.rd, "both")
    assert r.locate("notexec") == os.path.join(w.initd, "notexec")
    assert r.locate("isdir") == os.path.join(w.initd, "isdir")
    assert r.locate("nowhere") is None
    assert r.locate("../init.d/both") is None
    g = Group("node1", [Res("only_initd")])
    ok, _ = run(w.runner(g).acquire(g.key))
    assert ok
    assert "info: Running %s start" % os.path.join(w.initd, "only_initd") in w.text()


def test_default_resource_dirs_are_config_dir_then_init_d(tmp_path):
    class Bare:
        config_dir = str(tmp_path)
        groups = []
    r = ResourceRunner(Bare(), log=lambda *a: None)
    assert r.resource_dirs == [os.path.join(str(tmp_path), "resource.d"), "/etc/init.d"]
    assert r.timeout_ms == 30000
    assert r.env["HA_DIR"] == str(tmp_path)
    assert r.env["HA_RESOURCEDIR"] == os.path.join(str(tmp_path), "resource.d")


def test_heartbeat_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    w = World(tmp_path)
    out = os.path.join(w.root, "env")
    write_script(w.rd, "envdump", start='env | grep -E "^(HA_|NOTIFY_SOCKET|PATH=)" | sort > "%s"; exit 0' % out)
    g = Group("node1", [Res("envdump")])
    ok, _ = run(w.runner(g).acquire(g.key))
    assert ok
    env = dict(line.split("=", 1) for line in open(out).read().splitlines())
    assert env["HA_CURHOST"] == "node1"
    assert env["HA_DIR"] == w.root
    assert env["HA_RESOURCEDIR"] == w.rd
    assert env["HA_NICEFAILBACK"] == "yes"
    assert env["HA_RCDIR"] == os.path.join(w.root, "rc.d")
    assert env["HA_FUNCS"] == os.path.join(w.root, "shellfuncs")
    assert "PATH" in env
    assert "NOTIFY_SOCKET" not in env  # the agent's systemd channel is not the scripts' business


def test_stop_is_retried_then_succeeds(tmp_path):
    w = World(tmp_path)
    counter = os.path.join(w.root, "stop_attempts")
    write_script(w.rd, "flaky", stop=(
        'n=$(cat "%s" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "%s"; '
        'if [ $n -lt 3 ]; then exit 1; fi; rm -f "$flag"; exit 0') % (counter, counter))
    g = Group("node1", [Res("flaky")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    ok, detail = run(r.release(g.key))
    assert ok, detail
    assert w.text().count("info: Retrying failed stop operation [flaky]") == 2
    assert [c for c in w.calls() if c.endswith("stop")] == ["flaky stop"] * 3


def test_stop_failing_while_running_is_reported(tmp_path):
    w = World(tmp_path, stop_retries=2)
    write_script(w.rd, "a")
    write_script(w.rd, "stuck", stop="exit 1")
    g = Group("node1", [Res("a"), Res("stuck")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    ok, detail = run(r.release(g.key))
    assert not ok
    assert "stuck" in detail and "it may still be running" in detail and "3 attempts" in detail
    assert not w.running("a")  # the rest of the group was still stopped
    assert "a stop" in w.calls()


def test_stop_failing_but_stopped_is_not_lsb_but_ok(tmp_path):
    w = World(tmp_path, stop_retries=1)
    write_script(w.rd, "sloppy", stop='rm -f "$flag"; exit 1')
    g = Group("node1", [Res("sloppy")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    ok, detail = run(r.release(g.key))
    assert ok, detail
    assert "Resource script for sloppy probably not LSB-compliant." in w.text()
    assert "it (sloppy) MUST succeed on a stop when already stopped" in w.text()


def test_hanging_stop_is_killed_with_its_process_group(tmp_path):
    w = World(tmp_path, timeout_ms=400, stop_retries=3)
    child_pid_file = os.path.join(w.root, "child.pid")
    # The stop ignores SIGTERM and leaves a child in the same process group: both must die.
    write_script(w.rd, "hang", stop="trap '' TERM; sleep 60 & echo $! > \"%s\"; wait; exit 0" % child_pid_file)
    g = Group("node1", [Res("hang")])
    r = w.runner(g)
    assert run(r.acquire(g.key))[0]
    t0 = time.monotonic()
    ok, detail = run(r.release(g.key))
    elapsed = time.monotonic() - t0
    try:
        assert not ok
        assert "timed out after" in detail and "it may still be running" in detail
        assert "hang stop timed out after" in w.text()
        # one attempt only (a hung stop would hang again): timeout + TERM grace, plus a status run
        assert 0.4 <= elapsed < 2.5, elapsed
        assert [c for c in w.calls() if c.endswith("stop")] == ["hang stop"]
        child = int(open(child_pid_file).read())
        deadline = time.monotonic() + 2
        while os.path.exists("/proc/%d" % child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.exists("/proc/%d" % child) or "Z" in open("/proc/%d/stat" % child).read().split()[2]
    finally:
        try:
            os.kill(int(open(child_pid_file).read()), 9)
        except (OSError, ValueError):
            pass


def test_hanging_start_times_out_and_rolls_back(tmp_path):
    w = World(tmp_path, timeout_ms=300)
    write_script(w.rd, "slow", start="sleep 60")
    g = Group("node1", [Res("slow")])
    t0 = time.monotonic()
    ok, detail = run(w.runner(g).acquire(g.key))
    assert not ok and "timed out after 0.3 s" in detail
    assert time.monotonic() - t0 < 2.0
    assert "slow stop" in w.calls()


def test_daemon_holding_the_pipe_does_not_block(tmp_path):
    w = World(tmp_path)
    pid_file = os.path.join(w.root, "daemon.pid")
    # A sloppy script: its background "daemon" inherits stdout/stderr, keeps them open and
    # writes to them later. Acquire must not wait for it, and it must not die of SIGPIPE.
    write_script(w.rd, "sloppyd", start=(
        '(sleep 0.4; echo "late news"; exec sleep 30) & echo $! > "%s"; echo started; exit 0') % pid_file)
    g = Group("node1", [Res("sloppyd")])
    r = w.runner(g)

    async def scenario():
        t0 = time.monotonic()
        ok, _ = await r.acquire(g.key)
        took = time.monotonic() - t0
        await asyncio.sleep(0.8)
        pid = int(open(pid_file).read())
        alive = os.path.exists("/proc/%d" % pid) and "Z" not in open("/proc/%d/stat" % pid).read().split()[2]
        lingering = len(r._lingering)
        await r.close()
        return ok, took, alive, lingering

    try:
        ok, took, alive, lingering = run(scenario())
        assert ok
        assert took < 1.0
        assert "info: sloppyd: started" in w.text()
        assert "info: sloppyd: late news" in w.text()   # still read after start returned
        assert alive                                     # and the daemon lived on
        assert lingering == 2
    finally:
        try:
            os.kill(int(open(pid_file).read()), 9)
        except (OSError, ValueError):
            pass


@pytest.mark.parametrize("producer", [
    "yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678"
    " | head -n 100000",                                        # 100,000 lines of 100 bytes
    "head -c 10000000 /dev/zero | tr '\\0' 'x'",                # one 10 MB line
])
def test_ten_megabytes_of_output(tmp_path, producer):
    w = World(tmp_path, max_output_lines=50)
    write_script(w.rd, "chatty", start=producer + "; exit 0")
    g = Group("node1", [Res("chatty")])
    r = w.runner(g)

    async def scenario():
        gaps = []
        stop = asyncio.Event()

        async def ticker():
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
        t = asyncio.ensure_future(ticker())
        tracemalloc.start()
        try:
            res = await r.acquire(g.key)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            stop.set()
            await t
        return res, peak, max(gaps)

    (ok, detail), peak, worst_gap = run(scenario())
    assert ok, detail
    logged = [m for m in w.messages if m[1].startswith("chatty: ") and m[0] == "info"]
    assert 1 <= len(logged) <= 50
    assert all(len(m[1]) < 1100 and ("0123456789" in m[1] or "xxxxxxxxxx" in m[1]) for m in logged)
    dropped = [m for m in w.messages if "output too long" in m[1]]
    assert len(dropped) == 1 and dropped[0][0] == "warning"
    assert peak < 2_000_000, "runner held %d bytes" % peak
    assert worst_gap < 0.25, "event loop stalled %.0f ms" % (worst_gap * 1000)


def test_one_action_at_a_time_per_group(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "slowstart", start='echo begin >> "$CALLS"; sleep 0.3; touch "$flag"; echo end >> "$CALLS"')
    g = Group("node1", [Res("slowstart")])
    r = w.runner(g)

    async def both():
        a = asyncio.ensure_future(r.acquire(g.key))
        await asyncio.sleep(0.05)  # the release is requested while the start runs
        b = asyncio.ensure_future(r.release(g.key))
        return await a, await b
    (ok1, _), (ok2, _) = run(both())
    assert ok1 and ok2
    calls = [c for c in w.calls() if not c.endswith("status")]
    assert calls == ["slowstart start", "begin", "end", "slowstart stop"]


def test_groups_run_concurrently(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "s1", start='sleep 0.3; touch "$flag"')
    write_script(w.rd, "s2", start='sleep 0.3; touch "$flag"')
    g1, g2 = Group("node1", [Res("s1")]), Group("node2", [Res("s2")])
    r = w.runner(g1, g2)

    async def both():
        return await asyncio.gather(r.acquire(g1.key), r.acquire(g2.key))
    t0 = time.monotonic()
    results = run(both())
    assert all(ok for ok, _ in results)
    assert time.monotonic() - t0 < 0.55  # not one after the other


def test_unknown_group_key(tmp_path):
    w = World(tmp_path)
    with pytest.raises(KeyError, match="no resource group 'nope'"):
        run(w.runner().acquire("nope"))


def test_cannot_exec_is_reported(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "badshebang", body="#!/nonexistent/interpreter\n")
    g = Group("node1", [Res("badshebang")])
    ok, detail = run(w.runner(g).acquire(g.key))
    assert not ok and "cannot run" in detail and "badshebang" in detail


# -- IP resources, in a network namespace ------------------------------------------------------

needs_netns = pytest.mark.skipif(not helpers.have_netns_privileges(), reason="needs root to create namespaces")


@needs_netns
@pytest.mark.integration
def test_group_with_vip_in_a_namespace(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "httpd")
    g = Group("node1", [IpRes("192.0.2.100", label="eth0:0"), Res("httpd")])

    async def body():
        from hanode.vip import Vip
        r = w.runner(g)
        out = {}
        out["acquire"] = await r.acquire(g.key)
        out["present"] = Vip("192.0.2.100").present()
        out["status"] = await r.status(g.key)
        Vip("192.0.2.100").remove()   # an interface restart loses the address
        out["recheck"] = await r.recheck_vips(g.key)
        out["present_after_recheck"] = Vip("192.0.2.100").present()
        out["recheck_again"] = await r.recheck_vips(g.key)
        out["release"] = await r.release(g.key)
        out["present_after_release"] = Vip("192.0.2.100").present()
        out["recheck_not_held"] = await r.recheck_vips(g.key)
        await r.close()
        out["messages"] = w.messages  # collected in the child: bring them back
        return out

    with helpers.Lan(1) as lan:
        out = lan.call(0, body)
    w.messages = out["messages"]
    assert out["acquire"][0], out["acquire"]
    assert out["present"]
    assert out["status"]["state"] == "all" and out["status"]["held"]
    assert out["status"]["resources"][0] == {"resource": "IPaddr::192.0.2.100", "running": True, "detail": "on eth0"}
    assert out["recheck"] == ["192.0.2.100"]
    assert out["present_after_recheck"]
    assert out["recheck_again"] == []
    assert out["release"] == (True, "released")
    assert not out["present_after_release"]
    assert out["recheck_not_held"] == []
    text = w.text()
    assert "192.0.2.100 added to eth0:0" in text
    assert "Sending gratuitous ARP for 192.0.2.100 on eth0 (2 x 10 ms)" in text
    assert "VIP 192.0.2.100 had vanished from eth0:0; re-added" in text
    assert text.index("192.0.2.100 added") < text.index("Running %s start" % os.path.join(w.rd, "httpd"))
    assert text.index("Running %s stop" % os.path.join(w.rd, "httpd")) < text.index("192.0.2.100 removed")


@needs_netns
@pytest.mark.integration
def test_vip_without_matching_subnet_fails_the_group(tmp_path):
    w = World(tmp_path)
    write_script(w.rd, "httpd")
    g = Group("node1", [Res("httpd"), IpRes("198.51.100.9")])

    async def body():
        return await w.runner(g).acquire(g.key)

    with helpers.Lan(1) as lan:
        ok, detail = lan.call(0, body)
    assert not ok
    assert detail == ("IPaddr::198.51.100.9: no interface has a subnet containing 198.51.100.9; "
                      "give one: 198.51.100.9/24/eth0")
    assert not w.running("httpd")  # rolled back


@needs_netns
@pytest.mark.integration
def test_with_the_real_config_parser(tmp_path):
    config = pytest.importorskip("hanode.core.config")
    w = World(tmp_path)
    write_script(w.rd, "webapp")
    ha_cf = "keepalive 1\ndeadtime 10\ninitdead 20\nserial /dev/ttyS0\nnode node1 node2\nauto_failback on\n"
    ha_cf += "garp_count 1\nresource_dir %s %s\n" % (w.rd, w.initd)
    authkeys = "auth 1\n1 sha1 secret\n"
    haresources = "node1 IPaddr::192.0.2.100/24/eth0:1 webapp::8080\n"
    cfg = config.parse(ha_cf, authkeys, haresources, me="node1", config_dir=w.root)
    messages = []

    async def body():
        r = ResourceRunner(cfg, log=lambda lvl, text: messages.append(text), env={"CALLS": w.calls_path,
                                                                                  "STATE": w.state})
        key = cfg.groups[0].key
        a = await r.acquire(key)
        b = await r.release(key)
        return a, b, messages

    with helpers.Lan(1) as lan:
        a, b, messages = lan.call(0, body)
    assert a[0] and b[0], (a, b)
    assert w.calls()[-2:] == ["webapp 8080 start", "webapp 8080 stop"]
    assert "Acquiring resource group: node1 IPaddr::192.0.2.100/24/eth0:1 webapp::8080" in messages
    assert "192.0.2.100 added to eth0:1" in messages


@needs_netns
@pytest.mark.integration
def test_probe_group_finds_a_vip_held_elsewhere(tmp_path):
    w = World(tmp_path)
    held = Group("node2", [IpRes("192.0.2.100"), IpRes("192.0.2.101", 24, "eth0"), Res("httpd")])
    free = Group("node1", [IpRes("192.0.2.102")])
    unresolvable = Group("node1", [IpRes("198.51.100.5")])

    async def body():
        r = w.runner(held, free, unresolvable)
        out = [await r.probe(held.key), await r.probe(free.key), await r.probe(unresolvable.key)]
        r.config.vip_probe = False
        out.append(await r.probe(held.key))
        return out

    with helpers.Lan(2) as lan:
        lan.run(0, "ip addr add 192.0.2.101/24 dev eth0")   # the other node still has one of them
        a, b, c, d = lan.call(1, body)
        mac = lan.mac(0)
    assert a == (True, "192.0.2.101 is answered by %s on eth0" % mac)
    assert b == (False, "nobody answered for 192.0.2.102")
    # a probe that cannot be done is "in use" (issue 13, finding 4): the address is never taken blind
    assert c == (True, "cannot probe 198.51.100.5: no interface has a subnet containing 198.51.100.5; give one: "
                       "198.51.100.5/24/eth0 (counted as in use: the address is not taken blind)")
    # whether to probe is the core's decision (it asks even with vip_probe off after an
    # address conflict, issue 13 finding 5): the runner probes when asked
    assert d == a



@needs_netns
@pytest.mark.integration
def test_the_runner_keeps_the_vips_of_running_groups(tmp_path):
    """keep_vips: the runner's own periodic task re-adds a VIP that vanished from a group the node
    says is running, and leaves alone the groups it does not name."""
    w = World(tmp_path, recheck_s=0.05)
    kept = Group("node1", [IpRes("192.0.2.100", 24, "eth0")])
    other = Group("node1", [IpRes("192.0.2.101", 24, "eth0")])

    async def body():
        from hanode.vip import Vip
        r = w.runner(kept, other)
        assert (await r.acquire(kept.key))[0] and (await r.acquire(other.key))[0]
        r.keep_vips(lambda: [kept.key])
        Vip("192.0.2.100").remove()
        Vip("192.0.2.101").remove()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if Vip("192.0.2.100").present():
                break
        await asyncio.sleep(0.2)   # several more rounds
        out = {"kept": Vip("192.0.2.100").present(), "other": Vip("192.0.2.101").present()}
        await r.close()
        Vip("192.0.2.100").remove()
        await asyncio.sleep(0.2)   # closed: no recheck any more
        out["after_close"] = Vip("192.0.2.100").present()
        out["messages"] = w.messages
        return out

    with helpers.Lan(1) as lan:
        out = lan.call(0, body)
    w.messages = out["messages"]
    assert out == dict(out, kept=True, other=False, after_close=False), w.text()
    assert sum("VIP 192.0.2.100 had vanished" in t for _l, t in w.messages) == 1, w.text()


@needs_netns
@pytest.mark.integration
def test_a_probe_that_cannot_be_done_counts_as_in_use_and_is_said_once(tmp_path):
    """Issue 13, finding 4: an interface that is down, or deleted, when the probe runs gives an
    ArpError; the address must count as in use (never taken blind), the reason is logged once per
    episode, and once more when probing works again."""
    w = World(tmp_path)
    on_eth0 = Group("node1", [IpRes("192.0.2.100", 24, "eth0")])
    on_eth1 = Group("node1", [IpRes("192.0.2.110", 24, "eth1")])

    async def body(ns):
        r = w.runner(on_eth0, on_eth1)
        out = {"free": await r.probe(on_eth0.key)}
        helpers.ns_run(ns, "ip link set eth0 down")
        out["down"] = [await r.probe(on_eth0.key) for _ in range(3)]
        helpers.ns_run(ns, "ip link set eth0 up")
        out["up_again"] = await r.probe(on_eth0.key)
        out["before_delete"] = await r.probe(on_eth1.key)
        helpers.ns_run(ns, "ip link del eth1")
        out["deleted"] = [await r.probe(on_eth1.key) for _ in range(2)]
        out["messages"] = w.messages
        await r.close()
        return out

    with helpers.Lan(2) as lan:
        # an interface that then vanishes (a veth pair inside the namespace: no dummy module needed)
        helpers.ns_run(lan.nodes[1], "ip link add eth1 type veth peer name eth1p")
        helpers.ns_run(lan.nodes[1], "ip link set eth1p up")
        helpers.ns_run(lan.nodes[1], "ip link set eth1 up")
        out = lan.call(1, body, lan.nodes[1])
    w.messages = out["messages"]
    assert out["free"] == (False, "nobody answered for 192.0.2.100")
    for in_use, detail in out["down"]:
        assert in_use, detail
        assert "cannot probe 192.0.2.100 on eth0: cannot send ARP on eth0: the interface is down" in detail
        assert detail.endswith("(counted as in use: the address is not taken blind)")
    assert out["up_again"] == (False, "nobody answered for 192.0.2.100")
    assert out["before_delete"] == (False, "nobody answered for 192.0.2.110")
    for in_use, detail in out["deleted"]:
        assert in_use and "eth1" in detail, detail
    errors = [t for lvl, t in w.messages if lvl == "error" and "could not be done" in t]
    # one line for the down episode of eth0, one for eth1 (its own group and reason)
    assert len(errors) == 2, w.text()
    assert "ARP probe of resource group IPaddr::192.0.2.100 could not be done: cannot probe 192.0.2.100 on eth0: " \
           "cannot send ARP on eth0: the interface is down" in errors[0]
    assert sum("ARP probe of resource group IPaddr::192.0.2.100 works again" in t for _l, t in w.messages) == 1


def test_found_running_adds_script_groups_whose_status_says_running_after_a_restart(tmp_path):
    """What hanode restart's next agent adopts: a group without an address counts when one of its
    scripts' status says running (a partly running one is completed by its start); on a cold start
    (scripts=False) no status script runs before the first heartbeat."""
    w = World(tmp_path)
    for name in ("a", "b", "c"):
        write_script(w.rd, name)
    open(os.path.join(w.state, "b"), "w").close()     # only b of the second group runs
    groups = [Group("node1", [Res("a")]), Group("node1", [Res("b"), Res("c")])]
    runner = w.runner(*groups)
    assert run(runner.found_running()) == [groups[1].key]
    assert run(runner.found_running(scripts=False)) == []
    ok, detail = run(runner.acquire(groups[1].key))
    assert ok and "b already running" in detail and "c started" in detail
    assert w.running("b") and w.running("c") and not w.running("a")


def test_netlink_work_runs_at_the_loops_priority_even_in_a_worker_made_before_it():
    """The agent goes real-time after some worker threads exist; a worker made before keeps the
    ordinary policy, and the failover's VIP add ran there behind the busy processes.  Work sent
    off the loop runs at the loop thread's policy, and the worker gets its own back after."""
    if os.geteuid() != 0:
        pytest.skip("SCHED_FIFO needs root")
    from hanode import resources
    seen = {}

    def policy():
        return os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_getparam(0).sched_priority

    async def main():
        loop = asyncio.get_running_loop()
        # one worker: with more, a job sent while the worker that just answered has not yet said it
        # is idle gets a new thread, made by this (now real-time) thread and inheriting its policy
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
        seen["worker before"] = await loop.run_in_executor(None, policy)   # made while ordinary
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))   # this thread only
        seen["off loop"] = await resources._off_loop(policy)
        seen["worker after"] = await loop.run_in_executor(None, policy)

    t = threading.Thread(target=asyncio.run, args=(main(),))
    t.start()
    t.join(30)
    assert seen == {"worker before": (os.SCHED_OTHER, 0), "off loop": (os.SCHED_FIFO, 1),
                    "worker after": (os.SCHED_OTHER, 0)}, seen
