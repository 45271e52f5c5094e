"""Tests for packaging/: the systemd unit checked by systemd's own tools, and the busybox init
script run for real - under dash and busybox sh, with Debian's start-stop-daemon, busybox's, and
none - against a stand-in daemon that records its PID and takes time to release on SIGTERM."""
import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "packaging", "hanode.service")
SCRIPT = os.path.join(REPO, "packaging", "S45hanode")
README = os.path.join(REPO, "packaging", "README.md")
SETUP_HINT = "run tools/setup --test to install it"


def need(tool):
    path = shutil.which(tool)
    assert path, "%s is missing: %s" % (tool, SETUP_HINT)
    return path


# --- systemd unit -----------------------------------------------------------------------------

def parse_unit(text):
    """{(section, key): [values]} - systemd allows a key more than once."""
    out, section = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def unit_copy(tmp_path, dropin=None):
    """The unit with ExecStart= on an executable that exists here (verify checks that)."""
    d = tmp_path / "units"
    d.mkdir()
    text = open(UNIT).read()
    assert "ExecStart=/usr/local/bin/hanode run" in text
    assert "ExecReload=/usr/local/bin/hanode reload" in text
    (d / "hanode.service").write_text(text.replace("ExecStart=/usr/local/bin/hanode", "ExecStart=/bin/true")
                                      .replace("ExecReload=/usr/local/bin/hanode", "ExecReload=/bin/true"))
    if dropin is not None:
        (d / "hanode.service.d").mkdir()
        (d / "hanode.service.d" / "strict.conf").write_text(dropin)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=str(d) + ":", SYSTEMD_LOG_COLOR="0", SYSTEMD_COLORS="0")
    return str(d / "hanode.service"), env


def strict_dropin():
    text = open(README).read()
    m = re.search(r"<!-- strict-dropin:begin -->\s*```ini\n(.*?)```\s*<!-- strict-dropin:end -->", text, re.S)
    assert m, "packaging/README.md lost its strict drop-in block"
    return m.group(1)


def verify(path, env):
    tool = need("systemd-analyze")
    r = subprocess.run([tool, "verify", path], capture_output=True, text=True, env=env, timeout=60)
    # verify exits 0 on warnings such as an unknown key; any output at all is a finding.
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def exposure(path, env):
    tool = need("systemd-analyze")
    r = subprocess.run([tool, "security", "--offline=yes", "--no-pager", path],
                       capture_output=True, text=True, env=env, timeout=60)
    m = re.search(r"Overall exposure level for hanode\.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


def test_unit_verifies(tmp_path):
    verify(*unit_copy(tmp_path))


def test_unit_verify_catches_mistakes(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    path, env = unit_copy(tmp_path, dropin="[Service]\nWatchdogSecs=10s\n")
    with pytest.raises(AssertionError, match="WatchdogSecs"):
        verify(path, env)


def test_strict_dropin_from_readme_verifies_and_is_tighter(tmp_path):
    (tmp_path / "shipped").mkdir()
    (tmp_path / "strict").mkdir()
    base_path, base_env = unit_copy(tmp_path / "shipped")
    strict_path, strict_env = unit_copy(tmp_path / "strict", dropin=strict_dropin())
    verify(strict_path, strict_env)
    base, strict = exposure(base_path, base_env), exposure(strict_path, strict_env)
    # The README quotes both numbers; keep it honest.
    readme = open(README).read()
    assert "rates the shipped unit %.1f" % base in readme, base
    assert "it rates %.1f" % strict in readme, strict
    assert strict < base - 4


def test_unit_settings():
    u = parse_unit(open(UNIT).read())
    S = "Service"
    assert u[(S, "Type")] == ["notify"]
    assert u[(S, "NotifyAccess")] == ["main"]
    assert u[(S, "KillMode")] == ["mixed"]
    assert u[(S, "Restart")] == ["on-failure"]
    assert u[(S, "RuntimeDirectory")] == ["hanode"] and u[(S, "StateDirectory")] == ["hanode"]
    assert u[(S, "EnvironmentFile")] == ["-/etc/default/hanode"]
    watchdog_s = int(u[(S, "WatchdogSec")][0].rstrip("s"))
    restart_s = int(u[(S, "RestartSec")][0].rstrip("s"))
    stop_s = int(u[(S, "TimeoutStopSec")][0].rstrip("s"))
    assert watchdog_s >= 4, "WATCHDOG=1 goes out every WatchdogSec/2; leave the loop slack"
    assert restart_s <= 5, "a restarted hanode must reopen /dev/watchdog before it fires"
    assert stop_s >= 60, "resources need time to be released"
    from hanode.daemon import EXIT_CONFIG
    assert u[(S, "RestartPreventExitStatus")] == [str(EXIT_CONFIG)], "no restart loop on a broken ha.cf"
    families = set(u[(S, "RestrictAddressFamilies")][0].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"} <= families
    for mount_ns_or_device_option in ("ProtectSystem", "PrivateTmp", "PrivateDevices", "DevicePolicy",
                                      "CapabilityBoundingSet", "NoNewPrivileges"):
        assert (S, mount_ns_or_device_option) not in u, "breaks resource scripts; see the unit's comments"


def test_execstart_names_the_console_script():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert re.search(r"^\s*hanode\s*=", scripts, re.M)
    u = parse_unit(open(UNIT).read())
    argv = u[("Service", "ExecStart")][0].split()
    assert os.path.basename(argv[0]) == "hanode" and argv[1] == "run"
    assert "HANODE_BIN:=%s" % argv[0] in open(SCRIPT).read(), "unit and init script agree on the path"


# --- busybox init script ----------------------------------------------------------------------

STAND_IN = textwrap.dedent("""\
    #!{python}
    # Stand-in for `hanode run` (and `hanode reload`, `hanode restart`): records its start, takes FAKE_RELEASE_S to
    # "release resources" on SIGTERM, or exits by itself with FAKE_EXIT after FAKE_EXIT_AFTER seconds; on SIGUSR1
    # (sent by the stand-in `hanode restart`) it re-executes itself in place, releasing nothing, as hanode does.
    import os, signal, sys, time
    log = os.environ["FAKE_LOG"]
    def note(text):
        with open(log, "a") as f:
            f.write(text + "\\n")
    def term(signum, frame):
        time.sleep(float(os.environ.get("FAKE_RELEASE_S", "0.2")))
        note("released %d" % os.getpid())
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    signal.signal(signal.SIGUSR1, lambda signum, frame: (note("restarting %d" % os.getpid()),
                                                         os.execv(sys.executable, [sys.executable] + sys.argv)))
    if sys.argv[1:2] == ["restart"]:   # `hanode restart`: the daemon re-executes itself, then this answers
        note("restart %d" % os.getpid())
        with open(os.environ["PIDFILE"]) as f:
            os.kill(int(f.read().split()[0]), signal.SIGUSR1)
        time.sleep(0.5)
        sys.exit(0)
    if sys.argv[1:2] == ["reload"]:   # `hanode reload`: FAKE_RELOAD_EXIT says how it went
        note("reload %d" % os.getpid())
        print("ha.cf:3: error: stand-in refusal", file=sys.stderr, flush=True)
        sys.exit(int(os.environ.get("FAKE_RELOAD_EXIT", "0")))
    note("start %d argv=%s cfg=%s" % (os.getpid(), " ".join(sys.argv[1:]), os.environ.get("HANODE_CONFIG_DIR")))
    print("stand-in hanode %d up" % os.getpid(), flush=True)
    if "FAKE_EXIT" in os.environ:
        time.sleep(float(os.environ.get("FAKE_EXIT_AFTER", "0")))
        print("ha.cf:3: error: stand-in configuration error", file=sys.stderr, flush=True)
        note("exit %d" % os.getpid())
        sys.exit(int(os.environ["FAKE_EXIT"]))
    while True:
        time.sleep(60)
""")

# (shell, start-stop-daemon) combinations a box may have
VARIANTS = ["dash+debian-ssd", "busybox+busybox-ssd", "busybox+none", "dash+none"]


class Rig:
    """A temp root for the init script: paths, a stand-in daemon, and cleanup of every PID."""

    def __init__(self, tmp_path, variant):
        self.dir = tmp_path
        self.shell_name, self.ssd_name = variant.split("+")
        self.log = tmp_path / "daemon.log"
        self.log.write_text("")
        self.pidfile = tmp_path / "run" / "hanode.pid"
        self.respawn_pidfile = tmp_path / "run" / "hanode-respawn.pid"
        self.output = tmp_path / "log" / "hanode.out"
        self.cfg = tmp_path / "ha.d"
        self.cfg.mkdir()
        self.bin = tmp_path / "sbin" / "hanode"
        self.bin.parent.mkdir()
        self.bin.write_text(STAND_IN.format(python=sys.executable))
        self.bin.chmod(0o755)
        self.seen_pids = set()
        path = os.environ.get("PATH", "/usr/bin:/bin")
        if self.shell_name == "busybox":
            busybox = need("busybox")
            applets = tmp_path / "busybox-bin"
            applets.mkdir()
            for name in subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split():
                os.symlink(busybox, applets / name)
            self.shell = [str(applets / "sh")]
            sh = str(applets / "sh")
            path = str(applets) + os.pathsep + path   # the script's tools are busybox applets too
        else:
            self.shell = [need("dash")]
            sh = self.shell[0]
        if self.ssd_name == "debian-ssd":
            ssd = need("start-stop-daemon")
        elif self.ssd_name == "busybox-ssd":
            ssd = str(tmp_path / "busybox-bin" / "start-stop-daemon")
        else:
            ssd = ""
        self.env = {
            "PATH": path, "HOME": str(tmp_path), "LANG": "C",
            "HANODE_DEFAULTS": str(tmp_path / "default-hanode"),
            "HANODE_BIN": str(self.bin), "HANODE_CONFIG_DIR": str(self.cfg),
            "PIDFILE": str(self.pidfile), "RESPAWN_PIDFILE": str(self.respawn_pidfile),
            "HANODE_OUTPUT": str(self.output), "HANODE_SH": sh, "START_STOP_DAEMON": ssd,
            "HANODE_START_WAIT": "1", "HANODE_STOP_TIMEOUT": "10", "HANODE_RESPAWN": "0",
            "HANODE_RESPAWN_DELAY": "0.2", "FAKE_LOG": str(self.log),
        }

    def run(self, action, timeout=30, **env):
        e = dict(self.env)
        e.update({k: str(v) for k, v in env.items()})
        r = subprocess.run(self.shell + [SCRIPT, action], capture_output=True, text=True, env=e,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        self._remember()
        return r

    def _remember(self):
        for f in (self.pidfile, self.respawn_pidfile):
            try:
                self.seen_pids.add(int(f.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        for line in self.log.read_text().splitlines():
            if line.startswith("start "):
                self.seen_pids.add(int(line.split()[1]))

    def supervisors(self):
        """Live supervisor loops of this rig (found by their environment: ours alone)."""
        marker = ("RESPAWN_PIDFILE=%s" % self.respawn_pidfile).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if b"_supervise" not in f.read():
                        continue
                with open("/proc/%s/environ" % entry, "rb") as f:
                    if marker in f.read().split(b"\0") and alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def pid(self):
        return int(self.pidfile.read_text().split()[0])

    def events(self, word):
        return [int(line.split()[1]) for line in self.log.read_text().splitlines() if line.startswith(word + " ")]

    def wait_for(self, cond, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._remember()
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; daemon log:\n%s\noutput:\n%s"
                             % (what, self.log.read_text(), self.output.read_text() if self.output.exists() else ""))

    def wait_started(self, n=1):
        return self.wait_for(lambda: len(self.events("start")) >= n and self.events("start")[n - 1],
                             what="stand-in start #%d" % n)

    def cleanup(self):
        self._remember()
        self.seen_pids.update(self.supervisors())
        for pid in self.seen_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


@pytest.fixture(params=VARIANTS)
def rig(request, tmp_path):
    r = Rig(tmp_path, request.param)
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def dash_rig(tmp_path):
    r = Rig(tmp_path, "dash+none")
    try:
        yield r
    finally:
        r.cleanup()


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_script_parses(shell):
    argv = [need("dash")] if shell == "dash" else [need("busybox"), "sh"]
    r = subprocess.run(argv + ["-n", SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_start_status_stop_restart(rig):
    r = rig.run("status")
    assert r.returncode == 3 and "not running" in r.stdout

    r = rig.run("start")
    assert r.returncode == 0, r.stdout + r.stderr
    pid = rig.wait_started()
    assert rig.pid() == pid and "OK (pid %d)" % pid in r.stdout
    assert alive(pid)
    assert "stand-in hanode %d up" % pid in rig.wait_for(lambda: rig.output.exists() and rig.output.read_text(),
                                                         what="output file")

    r = rig.run("status")
    assert r.returncode == 0 and "running (pid %d)" % pid in r.stdout

    r = rig.run("start")
    assert r.returncode == 0 and "already running (pid %d)" % pid in r.stdout
    assert len(rig.events("start")) == 1

    # restart is `hanode restart`: the daemon re-executes itself in place (same PID, nothing released)
    r = rig.run("restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rig.wait_started(2) == pid and rig.events("restarting") == [pid]
    assert rig.events("released") == [] and rig.pid() == pid and alive(pid)

    r = rig.run("stop")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    assert rig.events("released") == [pid], "stop returned before the resources were released"
    assert not alive(pid) and not rig.pidfile.exists()
    # restart with nothing running: a start
    r = rig.run("restart")
    assert r.returncode == 0 and "OK (pid" in r.stdout, r.stdout + r.stderr
    pid2 = rig.wait_started(3)
    assert pid2 != pid and rig.pid() == pid2
    r = rig.run("stop")
    assert r.returncode == 0 and rig.events("released") == [pid, pid2]
    assert rig.run("status").returncode == 3
    r = rig.run("stop")
    assert r.returncode == 0 and "not running" in r.stdout


def test_reload_passes_hanode_reloads_verdict(rig):
    r = rig.run("reload")
    assert r.returncode == 7 and "not running" in r.stdout   # LSB: program is not running
    assert rig.run("start").returncode == 0
    pid = rig.wait_started()
    r = rig.run("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(rig.events("reload")) == 1
    r = rig.run("reload", FAKE_RELOAD_EXIT=1)
    assert r.returncode == 1 and "stand-in refusal" in r.stderr
    assert rig.pid() == pid and alive(pid), "a refused reload leaves the daemon running"


@pytest.mark.parametrize("variant", ["dash+debian-ssd", "busybox+none"])
def test_respawn_after_kill9(tmp_path, variant):
    rig = Rig(tmp_path, variant)
    try:
        r = rig.run("start", HANODE_RESPAWN=1)
        assert r.returncode == 0, r.stdout + r.stderr
        first = rig.wait_started()
        supervisor = int(rig.respawn_pidfile.read_text())
        assert rig.pid() == first and alive(supervisor)
        assert "respawn supervisor pid %d" % supervisor in rig.run("status").stdout

        os.kill(rig.pid(), signal.SIGKILL)   # by the PID read from the pidfile
        second = rig.wait_started(2)
        assert second != first and not alive(first)
        rig.wait_for(lambda: rig.pid() == second, what="pidfile updated")
        r = rig.run("status")
        assert r.returncode == 0 and "running (pid %d" % second in r.stdout
        out = rig.output.read_text()
        assert "was killed by signal 9; respawning" in out

        r = rig.run("stop")
        assert r.returncode == 0, r.stdout + r.stderr
        assert rig.events("released") == [second]
        assert not alive(second) and not alive(supervisor)
        assert not rig.pidfile.exists() and not rig.respawn_pidfile.exists()
        assert len(rig.events("start")) == 2, "stop must not be followed by a respawn"
    finally:
        rig.cleanup()


def test_respawn_requested_by_ha_cf(dash_rig):
    rig = dash_rig
    (rig.cfg / "ha.cf").write_text("keepalive 1\n# respawn root /usr/local/bin/hanode\n"
                                   "respawn hacluster /usr/lib/heartbeat/ipfail\n")
    r = rig.run("start", HANODE_RESPAWN="auto")
    assert r.returncode == 0 and not rig.respawn_pidfile.exists(), "ipfail is not hanode"
    rig.wait_started()
    assert rig.run("stop").returncode == 0

    (rig.cfg / "ha.cf").write_text("keepalive 1\nrespawn\troot  /usr/local/bin/hanode\n")
    r = rig.run("start", HANODE_RESPAWN="auto")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rig.respawn_pidfile.exists() and alive(int(rig.respawn_pidfile.read_text()))
    rig.wait_started(2)
    os.kill(rig.pid(), signal.SIGKILL)
    rig.wait_started(3)
    assert rig.run("stop").returncode == 0


@pytest.mark.parametrize("status, why", [(100, "exited with status 100: not respawning"),
                                         (6, "exited with status 6 (configuration error): not respawning")])
def test_respawn_stops_on_exit_100_or_config_error(dash_rig, status, why):
    rig = dash_rig
    r = rig.run("start", HANODE_RESPAWN=1, HANODE_START_WAIT=0, FAKE_EXIT=status, FAKE_EXIT_AFTER=0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    rig.wait_for(lambda: not rig.respawn_pidfile.exists(), what="supervisor to give up")
    assert len(rig.events("start")) == 1
    assert why in rig.output.read_text()
    assert rig.run("status").returncode == 3


def test_respawn_gives_up_when_dying_too_fast(dash_rig):
    rig = dash_rig
    r = rig.run("start", HANODE_RESPAWN=1, HANODE_START_WAIT=0, HANODE_RESPAWN_MAX=3,
                HANODE_RESPAWN_DELAY=0.1, FAKE_EXIT=1, FAKE_EXIT_AFTER=0.3)
    assert r.returncode == 0, r.stdout + r.stderr
    rig.wait_for(lambda: not rig.respawn_pidfile.exists(), what="supervisor to give up")
    assert len(rig.events("start")) == 3
    assert "died 3 times in a row within 30 s of starting: giving up" in rig.output.read_text()
    assert rig.run("status").returncode == 3


def test_start_reports_a_daemon_that_exits_at_once(rig):
    r = rig.run("start", FAKE_EXIT=1)
    assert r.returncode == 1 and "FAIL" in r.stdout
    assert "stand-in configuration error" in r.stderr, "the reason is shown to the admin"
    assert not rig.pidfile.exists()
    assert rig.run("status").returncode == 3


def test_start_failure_with_respawn_leaves_no_supervisor(dash_rig):
    rig = dash_rig
    # the first hanode dies after 0.3 s, the respawned ones too: not a successful start
    r = rig.run("start", HANODE_RESPAWN=1, FAKE_EXIT=1, FAKE_EXIT_AFTER=0.3, HANODE_RESPAWN_DELAY=0.1)
    assert r.returncode == 1 and "FAIL" in r.stdout
    assert rig.supervisors() == [] and not rig.respawn_pidfile.exists()
    starts = len(rig.events("start"))
    time.sleep(1)
    assert len(rig.events("start")) == starts, "nothing respawned behind the admin's back"


def test_stop_waits_then_gives_up_without_killing(dash_rig):
    rig = dash_rig
    assert rig.run("start", FAKE_RELEASE_S=4).returncode == 0
    pid = rig.wait_started()
    t0 = time.monotonic()
    r = rig.run("stop", HANODE_STOP_TIMEOUT=1)
    took = time.monotonic() - t0
    assert r.returncode == 1 and "FAIL" in r.stdout
    assert "still running after 1 s" in r.stderr and "Not killing it" in r.stderr
    assert 0.9 <= took < 3, took
    assert alive(pid), "no SIGKILL: the resources are still being released"
    rig.wait_for(lambda: rig.events("released") == [pid], what="the release to finish")
    assert rig.run("stop").returncode == 0


def test_defaults_file_supplies_args_and_config_dir(dash_rig):
    rig = dash_rig
    other = rig.dir / "other-ha.d"
    other.mkdir()
    (rig.dir / "default-hanode").write_text('HANODE_ARGS="--debug --extra x"\nHANODE_CONFIG_DIR=%s\n' % other)
    assert rig.run("start").returncode == 0
    rig.wait_started()
    line = [entry for entry in rig.log.read_text().splitlines() if entry.startswith("start ")][0]
    assert line.endswith("argv=run --debug --extra x cfg=%s" % other)
    assert rig.run("stop").returncode == 0


def test_status_and_start_with_a_stale_or_reused_pid(dash_rig):
    rig = dash_rig
    rig.pidfile.parent.mkdir(parents=True, exist_ok=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    rig.pidfile.write_text("%d\n" % gone.pid)
    r = rig.run("status")
    assert r.returncode == 1 and "dead but pidfile" in r.stdout

    # a live process that is not hanode (PID reuse) must not count as running
    other = subprocess.Popen(["sleep", "30"])
    try:
        rig.pidfile.write_text("%d\n" % other.pid)
        assert rig.run("status").returncode == 1
        r = rig.run("start")
        assert r.returncode == 0 and "already running" not in r.stdout
        assert rig.pid() == rig.wait_started()
        assert rig.run("stop").returncode == 0
        assert other.poll() is None, "stop signalled only hanode"
    finally:
        other.kill()
        other.wait()


def test_missing_binary_and_usage(dash_rig):
    rig = dash_rig
    r = rig.run("start", HANODE_BIN=rig.dir / "nope")
    assert r.returncode == 5 and "nope is missing or not executable" in r.stderr
    r = rig.run("frobnicate")
    assert r.returncode == 2 and "Usage:" in r.stderr
