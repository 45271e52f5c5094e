"""``hanode reload`` and SIGHUP: re-read /etc/ha.d and put in force what can change live.

Theory of operation
-------------------
A reload reads ha.cf, authkeys and haresources again with the same checks as the
start (``configdir.check_dir``).  A file with an error is refused with its
file:line problems and the running configuration stays in force.  A valid
configuration is then compared with the running one (``differences``):

* applied at once: timings (keepalive, warntime, deadtime, initdead), logging
  (logfile, debugfile, logfacility, debug), probe and gratuitous-ARP settings,
  the keys (``auth N`` and the accepted set), ``auto_failback``,
  ``resource_timeout``;
* applied at the group's next hand-over: a running group's resources (the
  node stops a group with the definition it was started with; ``hanode
  status`` shows the new one as pending);
* refused with the reason: everything else - node names, serial devices, baud,
  ucast, the set, order and preferred nodes of the groups, paths, watchdog,
  realtime, respawn.  One refused item refuses the whole reload: a
  configuration is in force entirely or not at all.

Timings are judged by the peer with *its* deadtime, and the two boxes are
reloaded one after the other, so for a while each runs a different revision.
Rather than announcing timings on the wire (a status frame has no room, and
an old peer would not read an extra frame), a reload may only change the
timings in a step that is safe against a peer still on the running revision:
the new keepalive must be less than half the running deadtime (the peer still
judges us by it), and the new deadtime more than twice the running keepalive
(the peer still sends at it).  A bigger change takes two reloads on each box:
a longer deadtime first, then the longer keepalive (a shorter keepalive first,
then the shorter deadtime).  With a hardware watchdog, whose timeout was set
from the deadtime at start, the deadtime may not get shorter.

The revision is the first 12 hex digits of the SHA-256 of the three files, in
order; ``hanode status`` shows it with the last reload's result.
"""
import hashlib
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from hanode.configdir import FILES, check_dir

# to_dict() keys a reload puts in force (the node, the runner, the logging);
# "groups" and "auth" are compared on their own
LIVE = ("keepalive_ms", "warntime_ms", "deadtime_ms", "initdead_ms", "logfile", "debugfile", "logfacility",
        "debug", "vip_probe", "probe_count", "probe_interval_ms", "probe_wait_ms", "garp_count",
        "garp_interval_ms", "auto_failback", "resource_timeout_ms", "extra", "use_logd",
        "monitor_interval_ms", "monitor_timeout_ms", "monitor_failures", "monitor_window_ms",
        "deadping_ms", "restart_grace_ms")
WHY_NOT = {
    "nodes": "node names are the ids both boxes put in every frame",
    "me": "this box's name is the id it puts in every frame",
    "serial": "the serial ports are opened and locked at start",
    "baud": "the serial ports are opened at start",
    "ucast": "the heartbeat sockets are opened at start",
    "udpport": "the heartbeat sockets are opened at start",
    "watchdog": "the watchdog is opened at start",
    "watchdog_required": "the watchdog is opened at start",
    "control_socket": "the control socket is this reload's own channel",
}


def revision(config_dir: str) -> str:
    """Short hash of ha.cf, authkeys and haresources as they are on disk now."""
    h = hashlib.sha256()
    for name in FILES:
        try:
            with open(os.path.join(config_dir, name), "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"\0missing\0")
        h.update(b"\0")
    return h.hexdigest()[:12]


def _keys(cfg: Any) -> Dict[int, Tuple[str, Any]]:
    return {i: (k.method, k.key) for i, k in cfg.auth_keys.items()}


def _group_shape(cfg: Any) -> List[Tuple[str, str]]:
    return [(g.key, g.preferred) for g in cfg.groups]


def timing_problems(old: Any, new: Any, watchdog_on: bool) -> List[str]:
    """Why a timing change is unsafe against a peer still on the running revision (module docstring)."""
    problems = []
    if 2 * new.keepalive_ms >= old.deadtime_ms:
        problems.append("keepalive %d ms: the peer judges us by its deadtime, still %d ms until it is "
                        "reloaded too, and needs more than two heartbeats in it; raise deadtime first "
                        "(reload both boxes), then keepalive" % (new.keepalive_ms, old.deadtime_ms))
    if new.deadtime_ms <= 2 * old.keepalive_ms:
        problems.append("deadtime %d ms: the peer still sends every %d ms until it is reloaded too; "
                        "lower keepalive first (reload both boxes), then deadtime"
                        % (new.deadtime_ms, old.keepalive_ms))
    if watchdog_on and new.deadtime_ms < old.deadtime_ms:
        problems.append("deadtime %d ms is shorter than the running %d ms, but the hardware watchdog's "
                        "timeout was set from the deadtime at start: restart hanode to shorten it"
                        % (new.deadtime_ms, old.deadtime_ms))
    return problems


def differences(old: Any, new: Any, watchdog_on: bool = False) -> Tuple[List[str], List[str]]:
    """``(refused, changed)``: reasons a reload cannot go live, and what it changes (names)."""
    a, b = old.to_dict(), new.to_dict()
    refused, changed = [], []
    for name in sorted(a):
        if a[name] == b.get(name) or name in ("groups", "auth", "node_ids", "peer"):
            continue
        if name in LIVE:
            changed.append(name)
        elif name == "watchdog_timeout_s" and (not new.watchdog or new.watchdog_timeout_s > old.watchdog_timeout_s
                                               or new.deadtime_ms != old.deadtime_ms):
            # unused; or longer: the open watchdog keeps its shorter timeout, the safe side; or
            # derived from a changed deadtime, which timing_problems judges
            continue
        else:
            refused.append("%s: cannot change while hanode runs (%s); restart hanode to apply it" % (
                name, WHY_NOT.get(name, "it is set up at start")))
    if _group_shape(old) != _group_shape(new):
        refused.append("haresources: the groups, their order or their preferred nodes changed (%s -> %s); "
                       "each group's place is its bit in every frame: restart hanode on both boxes"
                       % (" ".join(k for k, _ in _group_shape(old)), " ".join(k for k, _ in _group_shape(new))))
    else:
        for g_old, g_new in zip(old.groups, new.groups):
            if [r.token for r in g_old.resources] != [r.token for r in g_new.resources]:
                changed.append("group %s" % g_new.key)
    if _keys(old) != _keys(new) or old.auth_index != new.auth_index:
        changed.append("authkeys")
    if any(n in changed for n in ("keepalive_ms", "deadtime_ms")):
        refused.extend(timing_problems(old, new, watchdog_on))
    return refused, changed


class Reloader:
    """The daemon's reload: ``reload()`` answers the control socket; ``status()`` goes into hanode status.

    ``apply(cfg)`` is the daemon's, called with a configuration that passed every check.
    """

    def __init__(self, cfg: Any, config_dir: str, apply: Callable[[Any], None],
                 log: Callable[[str, str], None], watchdog_on: Callable[[], bool]) -> None:
        self.cfg = cfg
        self.config_dir = config_dir
        self.apply = apply
        self.log = log
        self.watchdog_on = watchdog_on
        self.revision = revision(config_dir)
        self.last: Optional[Dict[str, Any]] = None

    def reload(self) -> Dict[str, Any]:
        new_revision = revision(self.config_dir)
        cfg, problems = check_dir(self.config_dir, self.cfg.me, refuse_example_keys=True)
        if cfg is None:
            reasons = [str(p) for p in problems if p.level == "error"]
            return self._done(False, new_revision, "configuration error, running configuration kept", reasons)
        refused, changed = differences(self.cfg, cfg, self.watchdog_on())
        if refused:
            return self._done(False, new_revision, "refused, running configuration kept", refused)
        for p in problems:
            self.log("warning", str(p))
        self.revision = new_revision   # (apply tells the peer)
        self.apply(cfg)
        self.cfg = cfg
        return self._done(True, new_revision, "in force: %s" % (", ".join(changed) or "no change"), [])

    def _done(self, ok: bool, new_revision: str, message: str, reasons: List[str]) -> Dict[str, Any]:
        self.last = {"ok": ok, "revision": new_revision, "message": message, "problems": reasons,
                     "at": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.log("info" if ok else "error", "reload of %s (revision %s): %s%s" % (
            self.config_dir, new_revision, message, "".join("\n  " + r for r in reasons)))
        return dict(self.last)

    def status(self) -> Dict[str, Any]:
        return {"revision": self.revision, "last_reload": self.last}


def apply_live(agent: Any, runner: Any, cfg: Any, verbose: int, revision: str = "") -> None:
    """Put a checked configuration in force: the node (timings, keys, groups; its revision, told to
    the peer), the agent's sleep cap, the runner's settings, the logging.  Nothing here moves a
    resource."""
    relog(cfg, verbose)
    with agent.lock:
        agent.dispatch(agent.node.reconfigure(cfg, agent.clock()))
        if revision:
            agent.dispatch(agent.node.set_revision(int(revision, 16), agent.clock()))
        # the loop sleeps until the core's next deadline (which the new timings already move); its
        # safety cap follows a shorter keepalive, and stays within the health gate's bound it had
        agent.max_sleep_ms = min(agent.max_sleep_ms, agent.sleep_cap_ms(cfg.keepalive_ms))
        agent.expect_keepalive(cfg.keepalive_ms)
    # the runner's own copies of the settings; a group is started and stopped with the definition
    # the node has for it: the node swaps in a reloaded one only once the group is stopped there
    runner.reconfigure(cfg, _NodeGroups(agent))


def relog(cfg: Any, verbose: int) -> None:
    """Point the logging at the reloaded ha.cf's targets, closing the old ones now (setup_logging
    only drops them: their logfiles would be flushed and closed whenever they are collected)."""
    from hanode.logs import LOG, setup_logging
    for handler in list(LOG.handlers):
        handler.close()
    setup_logging(cfg, verbose)


class _NodeGroups:
    """The runner's group lookup (``get``, ``items``), answered by the node's current definitions."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def get(self, key: str) -> Any:
        with self.agent.lock:
            return next((g.group for g in self.agent.node.groups if g.key == key), None)

    def items(self) -> List[Tuple[str, Any]]:
        with self.agent.lock:
            return [(g.key, g.group) for g in self.agent.node.groups]
