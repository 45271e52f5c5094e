"""``hanode restart``: restart or upgrade the agent without a failover (issue 15).

Theory of operation
-------------------
The running daemon answers the control command ``restart`` (``accept``) only if
the configuration on disk passes every check (the next agent must not die of
it) and the node agrees (no group starting, stopping or being probed).  The
node then tells the peer "restarting, my groups stay, grace G" (three NOTICE
frames, docs/protocol.md) and stops without releasing anything; the daemon
closes its adapters but the hardware watchdog: it stays armed and open across
the re-execution (``Watchdog.hand_over``: its timeout stretched to the grace
where the driver allows, the fd inherited and taken by the new agent), so a
next agent that hangs or never comes is reset like a hung one, while a restart
that works never lets it expire.  ``reexec`` replaces the process with a fresh
``python -m hanode`` and the same arguments: the same PID (systemd's main PID,
the init script's pidfile, a respawn supervisor's child stay valid; the
resource daemons in the unit's cgroup are not touched), new code from disk
(an upgrade installed before), the configuration read anew.  The new agent
finds the groups still running (``ResourceRunner.found_running``: addresses,
and - re-executed, ``restarted()`` - the scripts of groups without one) and
adopts them; the peer, which held off, sees "Heartbeat restart" with the held bits
continuous.

The command line (``run``) waits for the new life (a status with another
generation) and its adopted groups running.  If no new life answers within the
grace, the peer takes over as from a dead peer - probing the addresses first,
which the groups left running here would still answer, and starting a group
without an address blind: so this command, the restart's guard, releases them
(right to left, as a stop would) at GUARD_SHARE of the grace, before the peer
acts, so that its probe finds them free and nothing runs twice.  (With a
hardware watchdog the handed-over device resets the box too, at the latest
when the stretched timeout - the grace - runs out.)
"""
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:   # the agent (hanode run) never imports argparse: hanode.runline
    import argparse

EXIT_NOT_RUNNING = 3
# The guard releases what the restart left running after this share of the grace: before the peer
# takes over, which it does without a probe for a group with no address (or with vip_probe off).
GUARD_SHARE = 0.8
# Once the new agent answers, the groups are its own (never released here); its adoption may still
# wait for a slow start (pyroute2's import on a loaded box): the command waits this long for it.
ADOPT_WAIT_S = 60
SETTLE_WAIT_S = 60   # how long the command retries while a group is starting, stopping or probed


def accept(daemon: Any) -> Dict[str, Any]:
    """The control command: check the configuration on disk, then start the node's restart."""
    from hanode.configdir import check_dir
    cfg, problems = check_dir(daemon.args.config_dir, daemon.cfg.me, refuse_example_keys=True)
    if cfg is None:
        return {"ok": False, "message": "configuration error: the next agent would not start; nothing changed",
                "problems": [str(p) for p in problems if p.level == "error"]}
    agent = daemon.agent
    with agent.lock:
        return _begin(daemon, agent, agent.node, cfg)


def _begin(daemon: Any, agent: Any, node: Any, cfg: Any) -> Dict[str, Any]:
    ok, why = node.can_restart()
    if not ok:   # retry: a group in transition or a rejoin's save settles by itself
        return {"ok": False, "message": why,
                "retry": any(g.busy() for g in node.groups) or node.rejoin.saving()}
    watchdog = daemon.watchdog
    if watchdog is not None and watchdog.enabled and cfg.watchdog == watchdog.path:
        watchdog.hand_over(-(-cfg.restart_grace_ms // 1000))   # armed across the gap (module docstring)
    agent.dispatch(node.restart(agent.clock()))
    return {"ok": True, "message": why, "generation": node.gen, "grace_ms": node.config.restart_grace_ms,
            "groups": node.held_groups()}


RESTARTED_ENV = "HANODE_RESTARTED"   # set for the re-executed agent: look for running scripts too


def restarted() -> bool:
    """Was this agent re-executed by ``hanode restart``?  (Then it asks the ``status`` of the groups
    without an address; a cold boot does not wait for status scripts before its first heartbeat.)"""
    return os.environ.pop(RESTARTED_ENV, None) is not None


def run_and_reexec(daemon: Any, log: Any) -> int:
    """``hanode run``'s end: run the daemon; after ``hanode restart`` re-execute it (the exit code
    otherwise).  A re-executed agent looks for running scripts too (``daemon.args.restarted``), and
    disarms a handed-over watchdog its configuration no longer names."""
    from hanode.watchdog import release_handed_over
    daemon.args.restarted = restarted()
    if not daemon.cfg.watchdog:
        release_handed_over(log)
    try:
        code = asyncio.run(daemon.main())
    except KeyboardInterrupt:
        return 130
    if daemon.agent is not None and daemon.agent.node.restarting is not None:
        reexec(log, daemon.notifier)   # the next agent adopts the groups; returns only on failure
        return 1
    return code


def interpreter_options() -> List[str]:
    """The options this interpreter was started with that shape what the agent imports and
    reads (the appliance runs ``python3 -S``: no site scan), for the agent that replaces it."""
    flags = sys.flags
    options = ["-I"] if flags.isolated else (
        (["-E"] if flags.ignore_environment else []) + (["-s"] if flags.no_user_site else [])
        + (["-P"] if getattr(flags, "safe_path", False) else []))
    options += (["-S"] if flags.no_site else []) + (["-B"] if flags.dont_write_bytecode else [])
    return options + (["-" + "O" * flags.optimize] if flags.optimize else [])


def reexec(log: Any, notifier: Any = None) -> None:
    """Replace this process by a new agent with the same arguments; returns only if exec failed.
    ``notifier``: systemd's NOTIFY_SOCKET and WATCHDOG_USEC, which it took out of the environment
    (so that resource scripts do not see them), go back in for the new agent (the same main PID):
    it says READY=1 again and keeps WatchdogSec= fed."""
    argv = [sys.executable] + interpreter_options() + ["-m", "hanode"] + sys.argv[1:]
    os.environ[RESTARTED_ENV] = "1"
    if notifier is not None and notifier.socket_path:
        os.environ["NOTIFY_SOCKET"] = notifier.socket_path
        if notifier.watchdog_usec:
            os.environ["WATCHDOG_USEC"] = str(notifier.watchdog_usec)
            os.environ["WATCHDOG_PID"] = str(os.getpid())
    log("info", "Agent restart: executing %s" % " ".join(argv))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as e:
        log("critical", "Agent restart: cannot execute %s: %s; the resource groups stay up without an agent "
            "(hanode restart releases them once the grace is over)" % (sys.executable, e))


# ---------------------------------------------------------------- the command line
def add_arguments(parser: "argparse.ArgumentParser") -> None:
    from hanode.control import DEFAULT_SOCKET
    parser.add_argument("--socket", default=os.environ.get("HANODE_SOCKET", DEFAULT_SOCKET),
                        help="control socket of the running daemon (default %(default)s; env HANODE_SOCKET)")
    parser.add_argument("--config-dir", default=os.environ.get("HANODE_CONFIG_DIR", "/etc/ha.d"),
                        help="the daemon's configuration directory, to release the groups if the new agent "
                             "does not come back (default %(default)s)")
    parser.add_argument("--node", help="this node's name, as given to hanode run (default: uname -n)")


def run(args: "argparse.Namespace") -> int:
    """Exit 0 once the new agent runs and its adopted groups are running; 1 if the restart is refused
    or the new agent does not come back within the grace (its groups are then released)."""
    from hanode.control import ControlError, request
    until = time.monotonic() + SETTLE_WAIT_S
    while True:
        try:
            answer = request("restart", args.socket, timeout=30)
        except ControlError as e:
            print("hanode restart: %s" % e, file=sys.stderr)
            return EXIT_NOT_RUNNING
        if answer.get("ok") or not answer.get("retry") or time.monotonic() > until:
            break
        time.sleep(0.2)   # a group is starting or stopping: wait for it to settle
    if not answer.get("ok"):
        print("\n".join(["hanode restart: refused: %s" % answer.get("message")]
                        + ["  " + p for p in answer.get("problems", [])]), file=sys.stderr)
        return 1
    print("hanode restart: %s" % answer["message"])
    started = time.monotonic()
    deadline = started + GUARD_SHARE * answer["grace_ms"] / 1000.0
    up_at = None   # when the new agent first answered: from then on its groups are its own
    while True:
        try:
            st = request("status", args.socket, timeout=2)
        except (ControlError, OSError, ValueError):   # the old agent going, the new one not there yet
            st = {}
        now = time.monotonic()
        if st.get("generation", answer["generation"]) != answer["generation"]:
            up_at = up_at or now
            if _adopted(st, answer["groups"]):
                print("hanode restart: done in %.1f s: generation %d -> %d, holds %s" % (
                    now - started, answer["generation"], st["generation"],
                    " ".join(g["key"] for g in st["groups"] if g["state"] == "running") or "nothing"))
                return 0
        if up_at is not None and now - up_at > ADOPT_WAIT_S:
            print("hanode restart: the new agent runs, but %s not running after %d s; see its log"
                  % (" ".join(answer["groups"]), ADOPT_WAIT_S), file=sys.stderr)
            return 1
        if up_at is None and now >= deadline:
            break
        time.sleep(0.05)
    print("hanode restart: the new agent did not come back within %.1f s of the restart grace (%d ms): "
          "releasing the groups it left running (%s) so that the peer can take them over"
          % (time.monotonic() - started, answer["grace_ms"], " ".join(answer["groups"]) or "none"), file=sys.stderr)
    release_leftovers(args.config_dir, args.node)
    return 1


def _adopted(st: Dict[str, Any], groups: List[str]) -> bool:
    running = [g["key"] for g in st.get("groups", []) if g["state"] == "running"]
    return all(key in running for key in groups)


def release_leftovers(config_dir: str, node: Any = None) -> None:
    """Stop every group found running here, right to left, as the agent's release would."""
    from hanode.configdir import load
    from hanode.resources import ResourceRunner

    def say(level: str, text: str) -> None:
        print("hanode restart: %s: %s" % (level, text), file=sys.stderr)

    async def release() -> None:
        runner = ResourceRunner(load(config_dir, me=node), log=say)
        try:
            for key in reversed(await runner.found_running()):
                await runner.release(key)
        finally:
            await runner.close()
    asyncio.run(release())
