"""``hanode run``: the daemon on Linux - config, adapters, agent loop, signals.

Theory of operation
-------------------
``run`` loads /etc/ha.d (every problem reported at once; nothing starts on an
error), bumps and persists the boot generation, opens every ``serial`` port
exclusively, and only then builds the adapters: the resource runner (init
scripts, and VIPs through netlink with gratuitous ARP), the ARP probe, the
watchdog, systemd notification and the control socket.  The agent loop then
runs until SIGTERM/SIGINT, which releases every group (right to left), tells
the peer, closes the watchdog with the magic character and exits 0.  SIGHUP
and ``hanode reload`` re-read the configuration (``hanode.reload``).

The heartbeat path (ticker, links, core) runs on its own loop, ``hanode.pulse``,
in a thread at the agent's priority; asyncio runs the rest.  The watchdog and
WatchdogSec are petted by ``watchdog.Petter`` (in the ticker's rounds; its timer
if none come) only while ``HealthGate`` says the heartbeat loop is on time, the
core ticked, the UART is open and asyncio checks in: a wedged agent stops
petting and the box is reset, which makes it safe for the peer to take over.

Exit codes follow LSB: 0 clean stop, 1 failure, 6 configuration error.
"""
import asyncio
import contextlib
import logging
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

from hanode import __version__
from hanode.agent import Agent
from hanode.links import SerialLink
from hanode.logs import log, setup_logging
from hanode.pulse import PulseLoop
from hanode.realtime import go_realtime, limit_memory, lock_memory, trim_memory
from hanode.runline import add_arguments as add_run_arguments

EXIT_CONFIG = 6


# hanode.runline's: hanode.cli reads a plain `hanode run` without argparse
add_arguments = add_run_arguments


class CannotStart(Exception):
    """An adapter could not be opened; the message says which and why (logged as critical, exit 1)."""


class Daemon:
    def __init__(self, cfg: Any, args: Any) -> None:
        self.cfg = cfg
        self.args = args
        self.realtime = cfg.realtime if args.realtime is None else args.realtime
        self.state_dir = args.state_dir or cfg.state_dir
        self.socket_path = args.socket or cfg.control_socket
        self.serials: List[Any] = []
        self.udp_links: List[Any] = []
        self.links: List[Any] = []
        self.watchdog: Any = None
        self.petter: Any = None
        self.notifier: Any = None
        self.agent: Optional[Agent] = None
        self.runner: Any = None
        self.reloader: Any = None
        self.started = time.monotonic()
        self.shutdown_requested = 0
        self.escalation: Any = None   # StopFailureEscalation, once the watchdog is open
        self.lan: Any = None          # hanode.lan.LanWatch while running
        self.pulse: Optional[PulseLoop] = None   # the heartbeat's loop, while running
        self.warm_up_asked = False

    # ---- hooks called by the agent
    def on_tick(self, now: int, lateness: int) -> None:
        if self.petter is not None:
            self.petter.core_ticked(now, lateness)
        if not self.warm_up_asked and self.runner is not None and self.agent.node.may_acquire_soon(now):
            self.warm_up_asked = True   # pyroute2 in before an acquire needs it (once, on the asyncio loop)
            self.agent.home.call_soon_threadsafe(self.runner.start_warm_up)

    def on_change(self, summary: str) -> None:
        self.notifier.status(summary)
        log("debug", "status: " + summary)

    def on_escalate(self, group: str, reason: str) -> bool:
        return self.escalation.escalate(group, reason)   # ha.cf stop_failure: hanode/escalation.py

    def on_peer_generation(self, generation: int) -> None:
        from hanode.generation import save_peer_generation_soon
        save_peer_generation_soon(self.state_dir, generation, log)   # fsyncs: not on the loop

    async def save_generation(self, generation: int) -> Tuple[bool, str]:
        """Persist the generation a rejoin jumps to, off the loop (it fsyncs twice)."""
        from hanode.generation import save_generation
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, save_generation, self.state_dir, generation, log)

    # ---- control socket
    def handle(self, cmd: str, which: Optional[str] = None) -> Dict[str, Any]:
        from hanode.commands import handle
        return handle(self, cmd, which)

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
                "its timeout is %d s)" % (signal.Signals(signum).name, self.reloader.cfg.resource_timeout_ms // 1000))

    def running_groups(self) -> List[str]:
        """Keys of the groups the node says are running: the ones whose VIPs the runner keeps."""
        with self.agent.lock:   # (asked only while the agent runs)
            return self.agent.node.running_groups()

    async def main(self) -> int:
        """Open the adapters, run the agent until it has shut down, close everything; the exit code."""
        from hanode.control import ControlServer
        from hanode.core.node import Node
        from hanode.generation import peer_generation
        from hanode.notify import SystemdNotifier
        from hanode.reload import Reloader
        from hanode.resources import ResourceRunner
        cfg = self.cfg
        self.notifier = SystemdNotifier(log=log)
        log("info", "**************************")
        log("info", "Configuration validated. Starting hanode %s on %s (peer %s)" % (__version__, cfg.me, cfg.peer))
        try:
            generation = self._open_adapters()
        except CannotStart as e:
            log("critical", str(e))
            self._close_links()
            return 1
        runner = self.runner = ResourceRunner(cfg, log=log)
        running = await runner.found_running(scripts=getattr(self.args, "restarted", False))   # left running
        node = Node(cfg, me=cfg.me, generation=generation, peer_generation=peer_generation(self.state_dir, log),
                    links=[link.name for link in self.links])
        self.pulse = PulseLoop(on_error=lambda text: log("error", "heartbeat loop: " + text))
        self.pulse.start()   # after go_realtime: the thread takes this one's policy
        # the watchdog's health gate needs a tick well within its max age
        self.agent = Agent(node, self.links, runner, log, hooks=self, pulse=self.pulse,
                           max_sleep_ms=min(Agent.sleep_cap_ms(cfg.keepalive_ms), self.petter.gate.max_age_ms // 2))
        self.reloader = Reloader(cfg, self.args.config_dir,
                                 lambda c: self._apply_live(runner, c),
                                 log, watchdog_on=lambda: bool(self.watchdog and self.watchdog.enabled))
        node.revision = int(self.reloader.revision, 16)   # told to the peer in notices
        control = ControlServer(self.socket_path, self.handle, log)
        try:
            await control.start()
        except OSError as e:
            log("critical", "control socket %s: %s" % (self.socket_path, e))
            self.pulse.stop()
            self._close_links()
            return 1
        try:
            await self._run(runner, running, generation)
        finally:
            self.pulse.stop()   # first: no pet from its thread may come after the magic close below
            await control.close()
            await runner.close()
            if self.escalation is not None:
                self.escalation.close_watchdog()   # the magic close, unless we self-fence
            self._close_links()
            if not self.shutdown_requested:   # a signal has said STOPPING=1 already
                self.notifier.stopping()
        return 0

    def _open_adapters(self) -> int:
        """Open the serial ports, bump the boot generation (only once the ports are ours: a start
        refused by a lock burns no generation), then the watchdog and the UDP links; return the
        generation. CannotStart says why not."""
        from hanode.generation import StateError, next_generation
        from hanode.uart import Serial, SerialException
        cfg = self.cfg
        lock_dir = self.args.lock_dir
        for device in cfg.serial:
            try:
                port = Serial(device, cfg.baud, lock_dir=lock_dir)
            except (SerialException, OSError, ValueError) as e:
                raise CannotStart("cannot open serial port: %s" % e)
            # the link reopens a hung-up port itself: no restart
            self.serials.append(SerialLink(port, log=log,
                                           reopen=lambda path=device: Serial(path, cfg.baud, lock_dir=lock_dir)))
            log("info", "Starting serial heartbeat on tty %s (%d baud)" % (device, cfg.baud))
        try:
            generation = next_generation(self.state_dir, log)
        except StateError as e:
            raise CannotStart(str(e))
        if self.realtime:
            go_realtime(cfg.rtprio)
            lock_memory()
        self._open_watchdog()
        self.links = list(self.serials) + self._open_udp_links()
        return generation

    def _open_watchdog(self) -> None:
        from hanode import aio
        from hanode.watchdog import HealthGate, Petter, Watchdog, WatchdogError
        cfg = self.cfg
        if cfg.watchdog:
            self.watchdog = Watchdog(cfg.watchdog, cfg.watchdog_timeout_s, required=cfg.watchdog_required, log=log)
            try:
                self.watchdog.open()   # without watchdog_required: a warning, and no watchdog
            except WatchdogError as e:
                raise CannotStart("%s; watchdog_required is on: not starting without it" % e)
        gate = HealthGate(max_lateness_ms=max(200, cfg.deadtime_ms // 2),
                          max_age_ms=max(500, cfg.deadtime_ms), need_uart=bool(cfg.serial))
        self.petter = Petter(gate, self.watchdog, self.notifier, every_ms=max(100, min(1000, cfg.keepalive_ms)),
                             clock=aio.ticks_ms, uart_ok=lambda: all(s.is_open for s in self.serials), log=log)
        from hanode.escalation import StopFailureEscalation
        self.escalation = StopFailureEscalation(cfg, self.watchdog, self.petter, self.notifier, log)

    def _open_udp_links(self) -> List[Any]:
        cfg = self.cfg
        if not cfg.ucast:
            return []
        from hanode.links import ucast_links
        from hanode.vip import configured_ipv4
        try:
            self.udp_links, notes = ucast_links(cfg.ucast, cfg.udpport, configured_ipv4(), log)
        except OSError as e:
            raise CannotStart(str(e.strerror or e))
        for note in notes:
            log("info", note)
        for link in self.udp_links:
            log("info", "Starting ucast heartbeat on %s to %s:%d" % (link.dev, link.peer, link.port))
        return list(self.udp_links)

    async def _run(self, runner: Any, running: List[str], generation: int) -> None:
        """Signals, background work (VIP recheck, companions), then the agent."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.reload)   # the same as `hanode reload`
        # netlink calls and the pyroute2 import, never more than two at a time
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2, thread_name_prefix="hanode-io"))
        runner.keep_vips(self.running_groups)
        from hanode.respawn import start_companions
        respawner = start_companions(self.cfg.respawn, log)
        agent: Any = self.agent
        run = asyncio.create_task(agent.run(running))
        # the ticker's first round comes at once, well before the first pet is due
        pets = asyncio.create_task(self.petter.run(self.pulse)) if self.petter.targets() else None
        await asyncio.sleep(0)   # the node has started: READY before any WATCHDOG=1, and it may hear the LAN
        self.notifier.ready(agent.summary())
        log("info", "READY: generation %d, control socket %s" % (generation, self.socket_path))
        from hanode.lan import start_watch
        await runner.ready()   # pyroute2 once, off the loop: the LAN watch's import raced the warm-up's
        self.lan = await start_watch(self.cfg, agent.lan_changed, log)
        await loop.run_in_executor(None, trim_memory)   # start-up is over: its garbage goes back
        try:
            await run
        finally:
            if self.lan is not None:
                self.lan.close()
            if pets is not None:
                pets.cancel()
            if respawner is not None:
                await respawner.stop()

    def _apply_live(self, runner: Any, cfg: Any) -> None:
        from hanode.reload import apply_live
        apply_live(self.agent, runner, cfg, self.args.verbose, self.reloader.revision)
        if self.lan is not None:
            self.lan.reconfigure(cfg)

    def _close_links(self) -> None:
        for link in self.udp_links:
            link.close()
        self.udp_links = []
        for s in self.serials:
            with contextlib.suppress(OSError):
                s.close()
        self.serials = []


def run(args: Any) -> int:
    from hanode.configdir import load
    from hanode.core.config import ConfigError
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="hanode[%(process)d]: %(levelname)s: %(message)s")
    try:
        cfg = load(args.config_dir, me=args.node, refuse_example_keys=True)  # issue 13 finding 12
    except ConfigError as e:
        for problem in e.problems:
            print(str(problem), file=sys.stderr)
        print("hanode not started: configuration error.", file=sys.stderr)
        return EXIT_CONFIG
    limit_memory()   # before any thread starts
    setup_logging(cfg, args.verbose)
    for problem in cfg.warnings:
        log("warning", str(problem))
    from hanode.restart import run_and_reexec
    return run_and_reexec(Daemon(cfg, args), log)   # re-executed after `hanode restart`
