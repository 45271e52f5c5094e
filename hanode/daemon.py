"""``hanode run``: the daemon on Linux - config, adapters, agent loop, signals.

Theory of operation
-------------------
``run`` loads /etc/ha.d (every problem reported at once; nothing starts on an
error), opens every ``serial`` port exclusively, bumps and persists the boot
generation (a start refused a port burns none), and only then builds the
adapters: the resource runner (init scripts, and VIPs through netlink with
gratuitous ARP), the ARP probe, the watchdog, systemd notification and the
control socket.  The agent loop then
runs until SIGTERM/SIGINT, which releases every group (right to left), tells
the peer, closes the watchdog with the magic character and exits 0.

The watchdog and systemd's WatchdogSec are petted from the agent's tick only
while ``HealthGate`` says the loop is on time, the core ticked and the UART is
open: a wedged agent stops petting and the box is reset, which is what makes
it safe for the peer to take over a hung node's address.

Exit codes follow LSB: 0 clean stop, 1 failure, 6 configuration error.
"""
import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import logging.handlers
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from hanode import __version__
from hanode.agent import Agent
from hanode.links import SerialLink

EXIT_CONFIG = 6
LOG = logging.getLogger("hanode")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
SYSLOG_FACILITIES = logging.handlers.SysLogHandler.facility_names
VIP_RECHECK_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", default=os.environ.get("HANODE_CONFIG_DIR", "/etc/ha.d"),
                        help="directory with ha.cf, authkeys, haresources (default %(default)s)")
    parser.add_argument("--node", help="this node's name (default: uname -n, as Heartbeat)")
    parser.add_argument("--state-dir", help="persistent state (boot generation); overrides ha.cf state_dir")
    parser.add_argument("--socket", help="control socket path; overrides ha.cf control_socket")
    parser.add_argument("--lock-dir", help="UUCP lock directory for the serial ports (default /var/lock or /run/lock)")
    rt = parser.add_mutually_exclusive_group()
    rt.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                    help="SCHED_FIFO and mlockall (ha.cf realtime; Heartbeat's default is on)")
    rt.add_argument("--no-realtime", dest="realtime", action="store_false")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging on stderr")


# ------------------------------------------------------------------ logging
class SayOnce:
    """Mixin for a log handler whose target may fail (disk full, unwritable
    logfile, no syslog): the agent keeps running and says so once on stderr,
    and once more when the target works again."""

    failing = False
    failed_now = False
    what = "log"

    def emit(self, record: logging.LogRecord) -> None:
        self.failed_now = False
        try:
            super().emit(record)   # type: ignore[misc]
        except OSError:
            # FileHandler(delay=True) opens the file inside emit, outside its own error handling:
            # a read-only or missing log directory must not end the daemon
            self.handleError(record)
        if self.failing and not self.failed_now:
            self.failing = False
            sys.stderr.write("hanode: %s works again\n" % self.what)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed_now = True
        if not self.failing:
            self.failing = True
            error = sys.exc_info()[1]
            sys.stderr.write("hanode: cannot write %s (%s); continuing without it, this is said once\n"
                             % (self.what, error))


class LogFileHandler(SayOnce, logging.FileHandler):
    def __init__(self, path: str) -> None:
        super().__init__(path, delay=True)
        self.what = "logfile %s" % path


class SyslogHandler(SayOnce, logging.handlers.SysLogHandler):
    what = "syslog (/dev/log)"


def setup_logging(cfg: Any, verbose: int) -> None:
    LOG.handlers[:] = []
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False
    fmt = logging.Formatter("%(asctime)s.%(msecs)03d hanode[%(process)d]: %(levelname)s: %(message)s",
                            "%Y/%m/%d_%H:%M:%S")
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.INFO)
    err.setFormatter(fmt)
    LOG.addHandler(err)
    for path, level in ((cfg.logfile, logging.INFO), (cfg.debugfile, logging.DEBUG)):
        if path and path != "/dev/null":
            handler = LogFileHandler(path)
            handler.setFormatter(fmt)
            handler.setLevel(level)
            LOG.addHandler(handler)
    facility = cfg.logfacility
    if facility and facility != "none" and facility in SYSLOG_FACILITIES:
        if os.path.exists("/dev/log"):
            syslog = SyslogHandler("/dev/log", SYSLOG_FACILITIES[facility])
            syslog.setFormatter(logging.Formatter("hanode[%(process)d]: %(levelname)s: %(message)s"))
            syslog.setLevel(logging.INFO)
            LOG.addHandler(syslog)
        else:
            LOG.warning("logfacility %s: no syslog socket /dev/log on this machine; logging to stderr only",
                        facility)


def log(level: str, text: str) -> None:
    LOG.log(LEVELS.get(level, logging.INFO), text)


# ---------------------------------------------------------------- realtime
def go_realtime(priority: Optional[int]) -> None:
    try:
        lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
        prio = priority if priority is not None else (lo + hi) // 2
        # children (resource scripts) must not inherit real-time priority
        os.sched_setscheduler(0, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(prio))
        log("info", "realtime: SCHED_FIFO priority %d" % prio)
    except (OSError, AttributeError) as e:
        log("warning", "realtime: cannot set SCHED_FIFO (%s); heartbeats may be late under load" % e)


def lock_memory() -> None:
    """mlockall, so that a page fault under memory pressure cannot delay a heartbeat.  Locking
    a Python process's pages takes ~0.3 s; ctypes releases the GIL, so it runs in a thread."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.mlockall(1 | 2) != 0:   # MCL_CURRENT | MCL_FUTURE
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        log("info", "realtime: memory locked (mlockall)")
    except (OSError, AttributeError, TypeError) as e:
        log("warning", "realtime: cannot lock memory (%s)" % e)


# ------------------------------------------------------------------ adapters
class LinuxRunner:
    """The agent's runner on Linux: init scripts and VIPs (resources.py), ARP probe (arp.py)."""

    def __init__(self, cfg: Any) -> None:
        from hanode.resources import ResourceRunner
        self.cfg = cfg
        self.resources = ResourceRunner(cfg, log=log)
        self.warm: Optional["asyncio.Future[None]"] = None

    def start_warm_up(self) -> None:
        self.warm = asyncio.get_running_loop().run_in_executor(None, self.warm_up)

    async def ready(self) -> None:
        """Netlink calls run on the loop thread: if they imported pyroute2 while the warm-up
        thread holds its import lock, the loop (and every heartbeat) would wait for it."""
        if self.warm is not None:
            await asyncio.shield(self.warm)

    async def acquire(self, key: str):
        await self.ready()
        return await self.resources.acquire(self.cfg.group(key))

    async def release(self, key: str):
        await self.ready()
        return await self.resources.release(self.cfg.group(key))

    async def probe(self, key: str):
        await self.ready()
        return await self.resources.probe(key)

    def active_groups(self) -> List[str]:
        """Groups whose address is configured on this box right now (left over by a crash).
        Asked without netlink, so that the first heartbeat need not wait for pyroute2."""
        from hanode.vip import configured_ipv4
        here = set(configured_ipv4())
        return [g.key for g in self.cfg.groups if any(r.is_ip and r.ip in here for r in g.resources)]

    @staticmethod
    def warm_up() -> None:
        """Import what the first acquire needs (pyroute2 costs 100+ ms), off the loop."""
        import pyroute2  # noqa: F401
        import hanode.arp  # noqa: F401


class Daemon:
    def __init__(self, cfg: Any, args: argparse.Namespace) -> None:
        self.cfg = cfg
        self.args = args
        self.state_dir = args.state_dir or cfg.state_dir
        self.socket_path = args.socket or cfg.control_socket
        self.serials: List[Any] = []
        self.udp_links: List[Any] = []
        self.watchdog: Any = None
        self.gate: Any = None
        self.notifier: Any = None
        self.agent: Optional[Agent] = None
        self.started = time.monotonic()
        self.last_pet_ms = 0
        self.pet_every_ms = max(100, min(1000, cfg.keepalive_ms))
        self.unhealthy_reported = False
        self.shutdown_requested = 0

    # ---- hooks called by the agent
    def on_tick(self, now: int, lateness: int) -> None:
        gate = self.gate
        gate.note_loop(now, lateness)
        gate.note_tick(now)
        gate.uart_ok(all(s.is_open for s in self.serials))
        if now - self.last_pet_ms < self.pet_every_ms:
            return
        healthy, why = gate.healthy(now)
        if not healthy:
            if not self.unhealthy_reported:
                log("error", "not petting the watchdog: %s" % why)
                self.unhealthy_reported = True
            return
        self.unhealthy_reported = False
        self.last_pet_ms = now
        if self.watchdog is not None and self.watchdog.enabled:
            self.watchdog.pet()
        if self.notifier.watchdog_enabled:
            self.notifier.watchdog()

    def on_change(self, summary: str) -> None:
        self.notifier.status(summary)
        log("debug", "status: " + summary)

    def on_peer_generation(self, generation: int) -> None:
        from hanode.state import save_peer_generation
        save_peer_generation(self.state_dir, generation, log)

    # ---- control socket
    def handle(self, cmd: str) -> Dict[str, Any]:
        agent = self.agent
        if agent is None:
            return {"ok": False, "message": "starting up"}
        if cmd == "status":
            st = agent.node.status()
            st["agent"] = {
                "pid": os.getpid(), "version": __version__,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "watchdog": (("%s (%s s)" % (self.watchdog.path, self.watchdog.granted_timeout_s))
                             if self.watchdog is not None and self.watchdog.enabled else "off"),
                "summary": agent.summary(),
                "write_errors": agent.write_errors,
                "uart_replaced": sum(getattr(s, "replaced", 0) for s in self.serials),
            }
            return st
        if cmd in ("standby", "takeover"):
            ok, why = getattr(agent, cmd)()
            return {"ok": ok, "message": why}
        return {"ok": False, "message": "unknown command %r (status, standby, takeover)" % cmd}

    # ---- signals
    def on_signal(self, signum: int) -> None:
        self.shutdown_requested += 1
        if self.shutdown_requested == 1:
            log("info", "%s received: releasing resources and stopping" % signal.Signals(signum).name)
            self.notifier.stopping("releasing resources")
            if self.agent is not None:
                self.agent.shutdown()
        else:
            log("warning", "%s received again: still releasing resources (a stop script may be slow; "
                "its timeout is %d s)" % (signal.Signals(signum).name, self.cfg.resource_timeout_ms // 1000))

    async def recheck_vips(self, runner: LinuxRunner) -> None:
        while True:
            await asyncio.sleep(VIP_RECHECK_S)
            await runner.ready()
            for g in self.agent.node.groups:
                if g.state == "running":
                    try:
                        await runner.resources.recheck_vips(g.group)
                    except Exception as e:   # never let a recheck take the loop down
                        log("error", "VIP recheck of %s failed: %r" % (g.key, e))

    async def main(self) -> int:
        from hanode.core.node import Node
        from hanode.control import ControlServer
        from hanode.notify import SystemdNotifier
        from hanode.state import StateError, next_generation, peer_generation
        from hanode.uart import Serial, SerialException
        from hanode.watchdog import HealthGate, Watchdog, WatchdogError
        cfg = self.cfg
        self.notifier = SystemdNotifier(log=log)
        log("info", "**************************")
        log("info", "Configuration validated. Starting hanode %s on %s (peer %s)" % (__version__, cfg.me, cfg.peer))
        for device in cfg.serial:
            try:
                self.serials.append(Serial(device, cfg.baud, lock_dir=self.args.lock_dir))
            except (SerialException, OSError, ValueError) as e:
                log("critical", "cannot open serial port: %s" % e)
                self._close_serials()
                return 1
            log("info", "Starting serial heartbeat on tty %s (%d baud)" % (device, cfg.baud))
        try:   # only once the ports are ours: a start that fails on a lock burns no generation
            generation = next_generation(self.state_dir, log)
        except StateError as e:
            log("critical", str(e))
            self._close_serials()
            return 1
        realtime = cfg.realtime if self.args.realtime is None else self.args.realtime
        if realtime:
            go_realtime(cfg.rtprio)
        self.gate = HealthGate(max_lateness_ms=max(200, cfg.deadtime_ms // 2),
                               max_age_ms=max(500, cfg.deadtime_ms), need_uart=bool(cfg.serial))
        if cfg.watchdog:
            timeout = cfg.watchdog_timeout_s or -(-(cfg.deadtime_ms + 10) // 1000)
            self.watchdog = Watchdog(cfg.watchdog, timeout, required=False, log=log)
            try:
                self.watchdog.open()
            except WatchdogError as e:
                log("error", str(e))
        runner = LinuxRunner(cfg)
        running = runner.active_groups()
        # self.serials become the links: a hung-up port is reopened by its link, not by a restart
        lock_dir = self.args.lock_dir
        self.serials = [SerialLink(s, log=log, reopen=lambda port=s.port: Serial(port, cfg.baud, lock_dir=lock_dir))
                        for s in self.serials]
        links: List[Any] = list(self.serials)
        if cfg.ucast:
            from hanode.links import ucast_links
            from hanode.vip import configured_ipv4
            try:
                udp_links, notes = ucast_links(cfg.ucast, cfg.udpport, configured_ipv4(), log)
            except OSError as e:
                log("critical", str(e.strerror or e))
                self._close_serials()
                return 1
            for note in notes:
                log("info", note)
            for link in udp_links:
                log("info", "Starting ucast heartbeat on %s to %s:%d" % (link.dev, link.peer, link.port))
            links += udp_links
            self.udp_links = udp_links
        node = Node(cfg, me=cfg.me, generation=generation, peer_generation=peer_generation(self.state_dir, log),
                    links=[link.name for link in links])
        self.agent = agent = Agent(node, links, runner, log, hooks=self)
        control = ControlServer(self.socket_path, self.handle, log)
        try:
            await control.start()
        except OSError as e:
            log("critical", "control socket %s: %s" % (self.socket_path, e))
            self._close_serials()
            return 1
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: log(
            "warning", "SIGHUP: hanode does not reload its configuration; restart it to apply changes"))
        runner.start_warm_up()
        if realtime:
            loop.run_in_executor(None, lock_memory)
        recheck = asyncio.create_task(self.recheck_vips(runner))
        respawner = None
        # a respawn line naming hanode itself is for the init script (S45hanode supervises us);
        # starting it here would run a second hanode
        companions = [(user, argv) for user, argv in cfg.respawn
                      if not argv or os.path.basename(argv[0]) != "hanode"]
        if companions:
            from hanode.respawn import Respawner
            respawner = Respawner(companions, log)
            respawner.start()
        run = asyncio.create_task(agent.run(running))
        await asyncio.sleep(0)
        self.notifier.ready(agent.summary())
        log("info", "READY: generation %d, control socket %s" % (generation, self.socket_path))
        try:
            await run
        finally:
            recheck.cancel()
            if respawner is not None:
                await respawner.stop()
            try:
                await runner.ready()
            except Exception as e:
                log("error", "importing pyroute2 failed: %r (run tools/setup)" % (e,))
            await control.close()
            await runner.resources.close()
            from hanode import arp
            arp.close_sockets()
            if self.watchdog is not None:
                self.watchdog.close_clean()
            self._close_serials()
            if not self.shutdown_requested:   # a signal has said STOPPING=1 already
                self.notifier.stopping()
        return 0

    def _close_serials(self) -> None:
        for link in self.udp_links:
            link.close()
        self.udp_links = []
        for s in self.serials:
            try:
                s.close()
            except OSError:
                pass
        self.serials = []


def run(args: argparse.Namespace) -> int:
    from hanode.configdir import load
    from hanode.core.config import ConfigError
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="hanode[%(process)d]: %(levelname)s: %(message)s")
    try:
        cfg = load(args.config_dir, me=args.node)
    except ConfigError as e:
        for problem in e.problems:
            print(str(problem), file=sys.stderr)
        print("hanode not started: configuration error.", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(cfg, args.verbose)
    for problem in cfg.warnings:
        log("warning", str(problem))
    try:
        return asyncio.run(Daemon(cfg, args).main())
    except KeyboardInterrupt:
        return 130
