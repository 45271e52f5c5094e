"""``hanode check-config``: report every problem in /etc/ha.d and what the settings mean.

Theory of operation
-------------------
The same code path as ``hanode run`` reads the directory (``hanode.configdir``),
so what this command accepts is exactly what the agent accepts.  All problems of
all three files are printed first, one per line as ``path:line: level: message``
(the format compilers use, so editors can jump to them).  When the configuration
is usable a summary follows that turns the numbers into consequences: how long a
frame takes on the serial line, after how many missed heartbeats the peer is
declared dead, which group starts what in which order, and what happens when the
preferred node comes back.  ``--json`` gives the same as one JSON object for
scripts.  Exit status: 0 usable (warnings allowed), 1 not usable.

One check goes further than ``hanode run``'s (it must start where it would not
pass): what the files name must exist on this machine (resource scripts,
executable; serial ports; interfaces) unless ``--files-only`` is given.  A
published example key is refused by both (the image gets its key from
image/build).  Output into a pipe that closes early (``| head``) ends quietly.
"""
import argparse
import json
import os
import sys
from typing import Dict, List, Optional

from hanode.configdir import DEFAULT_DIR, check_dir, default_node_name, find_script
from hanode.core.config import FRAME_WIRE_BYTES, FRAME_WIRE_BYTES_CRC, Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", default=DEFAULT_DIR, metavar="DIR",
                        help="directory with ha.cf, authkeys and haresources (default: %(default)s)")
    parser.add_argument("--node", metavar="NAME", default=None,
                        help="check as this node (default: uname -n, as Heartbeat does)")
    parser.add_argument("--json", action="store_true",
                        help='print {"ok": ..., "problems": [...], "config": ...} instead of text')
    parser.add_argument("--files-only", action="store_true",
                        help="check the three files only, not whether this machine has the resource scripts, "
                             "serial ports and interfaces they name (e.g. when checking a box's files elsewhere)")


def _secs(ms: int) -> str:
    s = ("%.3f" % (ms / 1000.0)).rstrip("0").rstrip(".")
    return "%s s" % s


def _plural(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def _stop_failure_text(cfg: Config) -> str:
    """What ha.cf's stop_failure does (issue 13 finding 3), for the explanation."""
    from hanode.core import wants
    from hanode.core.config.model import STOP_FAILURE_FENCE, STOP_FAILURE_REBOOT
    tries = "a stop that still fails after %d release%s %d s apart (each runs the script up to 4 times)" % (
        wants.STOP_RETRIES + 1, "s" if wants.STOP_RETRIES else "", wants.RETRY_MS // 1000)
    if cfg.stop_failure == STOP_FAILURE_FENCE:
        return ("fence: %s stops the watchdog pets, so the box resets within %d s and the peer takes over "
                "(Heartbeat reboots here; Pacemaker fences)" % (tries, cfg.watchdog_timeout_s))
    if cfg.stop_failure == STOP_FAILURE_REBOOT:
        return "reboot: %s runs %s" % (tries, " ".join(cfg.reboot_command))
    return ("block: %s leaves the group unserved, alarmed in status, until it stops or an operator acts "
            "(Pacemaker's on-fail=block without fencing; set 'watchdog' or 'stop_failure reboot')" % tries)


def _lan_lines(cfg: Config) -> List[str]:
    """What makes up each box's LAN health, and what it moves (hanode/core/health.py)."""
    from hanode.core import health
    nodes = ["%s" % a for a in cfg.ping] + ["%s (any of %s)" % (n, " ".join(a)) for n, a in cfg.ping_groups]
    d = cfg.deadtime_ms
    out = ["LAN       health = carrier on every interface with a VIP (netlink link events)%s"
           % (" + ping nodes reached: %s, ICMP echo every %s, lost after deadping %s (%d missed)"
              % (", ".join(nodes), _secs(cfg.keepalive_ms), _secs(cfg.deadping()),
                 cfg.deadping() // cfg.keepalive_ms) if nodes else " (no ping/ping_group nodes)"),
           "          a loss counts after %s, a return after %s stable; a group goes to the box whose LAN "
           "is better, never to a worse one; both equal (e.g. both down): nothing moves; auto_failback %s"
           % (_secs(health.loss_settle_ms(d)), _secs(health.gain_settle_ms(d)),
              "on brings a group home once its box's LAN is as good again" if cfg.auto_failback != "off"
              else "off: a group stays where the LAN sent it")]
    return out


def _frame_ms(cfg: Config) -> float:
    frame = FRAME_WIRE_BYTES_CRC if cfg.auth_method() == "crc" else FRAME_WIRE_BYTES
    return frame * 10 * 1000.0 / cfg.baud  # 8N1: ten bit times per byte


def summary(cfg: Config, scripts: Optional[Dict[str, str]] = None) -> List[str]:
    """The effective values, each with what it means in practice.

    ``scripts``: resource script name -> the file the agent runs (when this machine was checked).
    """
    out = []
    me, peer = cfg.me, cfg.peer
    if me and peer:
        out.append("Nodes     %s (this node, wire id %d) and %s (peer, wire id %d)"
                   % (me, cfg.node_index(me), peer, cfg.node_index(peer)))
    else:
        out.append("Nodes     %s" % ", ".join(cfg.nodes))

    media = []
    frame_ms = _frame_ms(cfg)
    frame = FRAME_WIRE_BYTES_CRC if cfg.auth_method() == "crc" else FRAME_WIRE_BYTES
    for dev in cfg.serial:
        media.append("serial %s at %d baud 8N1: a %d-byte frame takes %.1f ms, %.0f%% of the line at one "
                     "frame per keepalive" % (dev, cfg.baud, frame, frame_ms, 100.0 * frame_ms / cfg.keepalive_ms))
    for dev, ip in cfg.ucast:
        media.append("ucast %s -> %s, UDP port %d (skipped on the node that owns %s)" % (dev, ip, cfg.udpport, ip))
    for dev in cfg.bcast:
        media.append("bcast %s: read but not used by hanode" % dev)
    for m in cfg.mcast:
        media.append("mcast %s %s: read but not used by hanode" % (m[0], m[1]))
    out.append("Media     " + ("\n          ".join(media) if media else "none"))
    if len(cfg.serial) + len(cfg.ucast) > 1:
        out.append("          the peer is dead only when every link is silent")

    k, w, d, i = cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms
    rows = [
        ("keepalive", k, "a status frame every %s, and at once on every change" % _secs(k)),
        ("warntime", w, "'Late heartbeat' logged when a frame comes more than %s after the previous one" % _secs(w)),
        ("deadtime", d, "peer declared dead after %s of silence on every link (about %s missed), then "
                        "its groups are taken over" % (_secs(d), _plural(max(d // k - 1, 1), "heartbeat"))),
        ("initdead", i, "after start-up, wait up to %s for the peer before taking its groups too" % _secs(i)),
    ]
    lines = ["%-9s %10s  %s" % (name, "%d ms" % v, text) for (name, v, text) in rows]
    out.append("Timing    " + "\n          ".join(lines))

    if cfg.watchdog:
        out.append("Watchdog  %s, timeout %d s: if hanode's loop hangs, the node reboots (its self-fence)"
                   % (cfg.watchdog, cfg.watchdog_timeout_s))
    else:
        out.append("Watchdog  none: a hung node is not reset (add 'watchdog /dev/watchdog')")
    out.append("Stop fail %s" % _stop_failure_text(cfg))

    method = cfg.auth_method()
    accepted = ", ".join("%d (%s)" % (n, cfg.auth_keys[n].method) for n in sorted(cfg.auth_keys))
    out.append("Auth      signs with key %d (%s); accepts keys %s%s"
               % (cfg.auth_index, method, accepted,
                  "; crc authenticates nothing" if any(a.method == "crc" for a in cfg.auth_keys.values()) else ""))

    if cfg.vip_probe:
        out.append("VIP       before taking an address while the peer is unreachable: %d ARP probes %d ms apart, "
                   "then %d ms for an answer; after taking it: %d gratuitous ARPs %d ms apart"
                   % (cfg.probe_count, cfg.probe_interval_ms, cfg.probe_wait_ms, cfg.garp_count, cfg.garp_interval_ms))
    else:
        out.append("VIP       no ARP probe before taking an address (vip_probe off); %d gratuitous ARPs %d ms apart"
                   % (cfg.garp_count, cfg.garp_interval_ms))

    out.extend(_lan_lines(cfg))

    if cfg.groups:
        out.append("Groups    started left to right, stopped right to left; each resource gets %s per action"
                   % _secs(cfg.resource_timeout_ms))
        where = " then ".join(cfg.resource_dirs)
        for n, g in enumerate(cfg.groups):
            out.append("          group %d: %s (prefers %s, haresources line %d)" % (n, g.key, g.preferred, g.line))
            for j, r in enumerate(g.resources):
                if r.is_ip:
                    how = "address %s" % r.ip
                    if r.prefixlen is not None:
                        how += "/%d" % r.prefixlen
                    if r.dev:
                        how += " on %s" % r.dev
                    if r.prefixlen is None or not r.dev:
                        how += " (%s from the route to it)" % " and ".join(
                            [w for w, known in (("prefix", r.prefixlen is not None), ("interface", r.dev))
                             if not known])
                    if r.label:
                        how += ", label %s" % r.label
                    if r.broadcast:
                        how += ", broadcast %s" % r.broadcast
                    how += " via %s" % r.script
                else:
                    found = (scripts or {}).get(r.script)
                    how = "%s %sstart|stop|status, %s" % (r.script, "".join(a + " " for a in r.args),
                                                          "run as " + found if found else "looked up in " + where)
                out.append("             %d) %-22s %s" % (j + 1, r.token, how))
    else:
        out.append("Groups    none")

    if cfg.monitor_interval_ms:
        out.append("Monitor   every %s each resource's status (LSB: 0 running, 1-3 stopped; an address: still "
                   "configured), %s timeout; a failed one is restarted in place (with those after it) up to %d "
                   "times within %s, then the group moves to the peer (if it can take it; else restarts back "
                   "off, alarmed)" % (_secs(cfg.monitor_interval_ms), _secs(cfg.monitor_timeout_ms),
                                      cfg.monitor_failures, _secs(cfg.monitor_window_ms)))
    else:
        out.append("Monitor   off: a resource is not checked after its start (as in Heartbeat); add e.g. "
                   "'monitor_interval 10' to restart a crashed service and then move it")

    failback = {
        "on": "on: a group goes back to its preferred node when that node returns (released first, then taken)",
        "off": "off: groups stay where they are when their preferred node returns; move them with "
               "'hanode standby' or 'hanode takeover'",
        "legacy": "legacy (no auto_failback line): a returning node takes back the groups it prefers, as "
                  "with 'on'; write 'auto_failback on' (or off) to say so",
    }
    out.append("Failback  " + failback[cfg.auto_failback])
    return out


def located_scripts(cfg: Config) -> Dict[str, str]:
    found = {}
    for g in cfg.groups:
        for r in g.resources:
            if not r.is_ip:
                path, _ = find_script(cfg.resource_dirs or [], r.script)
                if path:
                    found[r.script] = path
    return found


def report(args: argparse.Namespace) -> int:
    node: Optional[str] = args.node.lower() if args.node else default_node_name()
    system = not args.files_only
    cfg, problems = check_dir(args.config_dir, node, system=system)
    if args.json:
        print(json.dumps({"ok": cfg is not None,
                          "problems": [p.to_dict() for p in problems],
                          "config": cfg.to_dict() if cfg is not None else None}, indent=2, sort_keys=True))
        return 0 if cfg is not None else 1
    for p in problems:
        print(p)
    if any(p.message.startswith("Current node [") for p in problems) and not args.node:
        print("(checked as this machine's name; use --node NAME to check the file as the other node)")
    errors = sum(1 for p in problems if p.level == "error")
    warnings = len(problems) - errors
    if problems:
        print()
    counts = "%s, %s" % (_plural(errors, "error"), _plural(warnings, "warning"))
    if cfg is None:
        print("%s as node %s: NOT usable (%s); hanode would refuse to start" % (args.config_dir, node, counts))
        return 1
    print("%s as node %s: usable (%s)%s" % (args.config_dir, node, counts,
                                            "" if system else "; this machine not checked (--files-only)"))
    print()
    for line in summary(cfg, located_scripts(cfg) if system else None):
        print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    """The report; a reader that goes away early (``| head``) ends it quietly with the same status."""
    try:
        code = report(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would print a traceback, then fail again flushing stdout at exit: point stdout at
        # /dev/null instead (the documented way, "Note on SIGPIPE" in the signal module's docs)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    return code


def main(argv: Optional[List[str]] = None) -> int:
    # the help text is the command line's, not this module's docstring: the appliance runs python3 -OO
    from hanode.cli import one_line_help
    parser = argparse.ArgumentParser(prog="hanode check-config", description=one_line_help("check-config"))
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
