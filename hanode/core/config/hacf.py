"""ha.cf: Heartbeat's directives, hanode's extensions, and the checks across them.

Directives are read as Heartbeat's ``parse_config`` reads them (first word the
directive, ``#`` starts a comment anywhere, most directives take each further
word as one value) and each becomes an attribute of ``Config``, or an entry of
``Config.extra`` when Heartbeat knows it but hanode has no use for it.  After the
last line come the checks that need the whole file (media, nodes, the timing
rules and their defaults), with Heartbeat's messages where it has one.
"""

from hanode.core.config.model import (BAUD_RATES, FRAME_WIRE_BYTES, STOP_FAILURE_ACTIONS,
                                      STOP_FAILURE_BLOCK, STOP_FAILURE_FENCE, STOP_FAILURE_REBOOT,
                                      USABLE_MEDIA, default_resource_dirs)
from hanode.core.limits import MAX_RESTART_GRACE_MS
from hanode.core.config.problems import HA_CF, FileParser
from hanode.core.health import MAX_HEALTH
from hanode.core.config.values import (edit_distance, is_digits, parse_bool, parse_ipv4,
                                       parse_time_ms, split_lines)

SYSLOG_FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7", "none",
)
# Programs that only work against Heartbeat's client API; a respawn line naming one cannot work.
_HEARTBEAT_API_CLIENTS = (
    "ipfail", "ccm", "dopd", "crmd", "cib", "attrd", "mgmtd", "pingd", "lrmd", "stonithd",
    "hbagent", "ha_logd", "pacemakerd",
)

_EXAMPLES = {
    "stop_failure": "e.g. 'stop_failure fence', 'stop_failure block' or 'stop_failure reboot /sbin/reboot -nf'",
    "keepalive": "e.g. 'keepalive 1' or 'keepalive 200ms'",
    "deadtime": "e.g. 'deadtime 15'",
    "warntime": "e.g. 'warntime 5'",
    "initdead": "e.g. 'initdead 60'",
    "udpport": "e.g. 'udpport 694'",
    "baud": "e.g. 'baud 19200'",
    "serial": "e.g. 'serial /dev/ttyS0'",
    "bcast": "e.g. 'bcast eth1'",
    "ucast": "e.g. 'ucast eth1 192.0.2.2'",
    "mcast": "e.g. 'mcast eth1 225.0.0.1 694 1 0'",
    "node": "e.g. 'node node1 node2', as 'uname -n' prints the names",
    "auto_failback": "on, off or legacy",
    "watchdog": "e.g. 'watchdog /dev/watchdog'",
    "respawn": "e.g. 'respawn hacluster /usr/lib/heartbeat/ipfail'",
    "ping": "e.g. 'ping 192.0.2.1' (the gateway)",
    "ping_group": "e.g. 'ping_group routers 192.0.2.1 192.0.2.2'",
    "state_dir": "e.g. /var/lib/hanode",
    "control_socket": "e.g. /run/hanode/control.sock",
    "resource_dir": "e.g. 'resource_dir /etc/ha.d/resource.d'",
    "monitor_interval": "e.g. 'monitor_interval 10' (seconds; 0 or no line: off)",
    "monitor_timeout": "e.g. 'monitor_timeout 20'",
    "monitor_window": "e.g. 'monitor_window 600'",
}

_TIME, _BOOL, _INT, _CHOICE, _WORD, _ABSPATH, _LINE, _SPECIAL = range(8)

# name -> (kind, Config attribute or None (kept in Config.extra), argument for the kind)
_DIRECTIVES = {
    "keepalive": (_TIME, "keepalive_ms", None),
    "deadtime": (_TIME, "deadtime_ms", None),
    "warntime": (_TIME, "warntime_ms", None),
    "initdead": (_TIME, "initdead_ms", None),
    "deadping": (_TIME, "deadping_ms", None),
    "conn_logd_time": (_TIME, None, None),
    "udpport": (_SPECIAL, None, None),
    "baud": (_SPECIAL, None, None),
    "serial": (_SPECIAL, None, None),
    "bcast": (_SPECIAL, None, None),
    "ucast": (_SPECIAL, None, None),
    "mcast": (_SPECIAL, None, None),
    "mcast6": (_LINE, None, None),
    "ucast6": (_LINE, None, None),
    "node": (_SPECIAL, None, None),
    "auto_failback": (_SPECIAL, None, None),
    "nice_failback": (_SPECIAL, None, None),
    "autojoin": (_SPECIAL, None, None),
    "watchdog": (_SPECIAL, None, None),
    "debugfile": (_WORD, "debugfile", None),
    "logfile": (_WORD, "logfile", None),
    "logfacility": (_CHOICE, "logfacility", SYSLOG_FACILITIES),
    "use_logd": (_SPECIAL, None, None),
    "debug": (_INT, "debug", (0, 255)),
    "respawn": (_SPECIAL, None, None),
    "failfast": (_LINE, None, None),
    "apiauth": (_LINE, None, None),
    "ping": (_SPECIAL, None, None),
    "ping_group": (_SPECIAL, None, None),
    "hbaping": (_LINE, None, None),
    "stonith": (_LINE, None, None),
    "stonith_host": (_LINE, None, None),
    "crm": (_SPECIAL, None, None),
    "pacemaker": (_SPECIAL, None, None),
    "hopfudge": (_INT, None, (0, 255)),
    "realtime": (_BOOL, "realtime", None),
    "rtprio": (_INT, "rtprio", (1, 99)),
    "hbgenmethod": (_CHOICE, None, ("file", "time")),
    "uuidfrom": (_CHOICE, None, ("file", "nodename")),
    "msgfmt": (_CHOICE, None, ("classic", "netstring")),
    "compression": (_WORD, None, None),
    "compression_threshold": (_INT, None, (0, 1048576)),
    "traditional_compression": (_BOOL, None, None),
    "max_rexmit_delay": (_INT, None, (0, 1000000000)),
    "memreserve": (_INT, None, (0, 1000000000)),
    "coredumps": (_BOOL, None, None),
    "coreroot": (_WORD, None, None),
    "normalpoll": (_BOOL, None, None),
    "log_badpack": (_BOOL, None, None),
    "syslogmsgfmt": (_BOOL, None, None),
    "cluster": (_WORD, None, None),
    "env": (_LINE, None, None),
    # Pacemaker/quorum/apphbd only; meaningless in R1 mode, accepted so old files load.
    "quorum_server": (_LINE, None, None),
    "use_apphbd": (_LINE, None, None),
    "crm_daemon_dir": (_LINE, None, None),
    "crmd_spawns_pengine": (_LINE, None, None),
    "record_config_changes": (_LINE, None, None),
    "record_pengine_inputs": (_LINE, None, None),
    "enable_config_writes": (_LINE, None, None),
    # hanode extensions (Heartbeat does not have these)
    "vip_probe": (_BOOL, "vip_probe", None),
    "probe_count": (_INT, "probe_count", (1, 100)),
    "probe_interval": (_TIME, "probe_interval_ms", None),
    "probe_wait": (_TIME, "probe_wait_ms", None),
    "garp_count": (_INT, "garp_count", (0, 100)),
    "garp_interval": (_TIME, "garp_interval_ms", None),
    "watchdog_timeout": (_INT, "watchdog_timeout_s", (1, 65535)),
    "watchdog_required": (_BOOL, "watchdog_required", None),
    "stop_failure": (_SPECIAL, None, None),
    "state_dir": (_ABSPATH, "state_dir", None),
    "control_socket": (_ABSPATH, "control_socket", None),
    "resource_dir": (_SPECIAL, None, None),
    "resource_timeout": (_TIME, "resource_timeout_ms", None),
    "restart_grace": (_TIME, "restart_grace_ms", None),
    "monitor_interval": (_TIME, "monitor_interval_ms", None),
    "monitor_timeout": (_TIME, "monitor_timeout_ms", None),
    "monitor_failures": (_INT, "monitor_failures", (0, 1000)),
    "monitor_window": (_TIME, "monitor_window_ms", None),
}

_NOT_USED_LAN = ("hanode's LAN path is UDP unicast ('ucast <interface> <peer address>'); "
                 "%s media are read but not used")
_NO_PING = "hanode probes ping and ping_group nodes with ICMP echo; the %s line is ignored"
_NO_STONITH = ("hanode has no STONITH: the watchdog is its self-fence (a hung node reboots before the "
               "peer takes over; set 'watchdog /dev/watchdog'); the %s line is ignored")
# Directives Heartbeat acts on but hanode cannot: accepted, with a warning saying so.
_WHY_IGNORED = {
    "bcast": _NOT_USED_LAN % "bcast",
    "mcast": _NOT_USED_LAN % "mcast",
    "mcast6": _NOT_USED_LAN % "mcast6",
    "ucast6": _NOT_USED_LAN % "IPv6 ucast6",
    "hbaping": _NO_PING % "hbaping",
    "stonith": _NO_STONITH % "stonith",
    "stonith_host": _NO_STONITH % "stonith_host",
    "failfast": ("hanode does not start failfast children (they need Heartbeat's client API); "
                 "the failfast line is ignored"),
}
_MEDIA = ("serial", "bcast", "ucast", "mcast", "mcast6", "ucast6")


class HaCfParser(FileParser):
    """ha.cf: each directive as Heartbeat reads it, then the checks across directives."""

    FILE = HA_CF

    def __init__(self, cfg, problems, me):
        FileParser.__init__(self, cfg, problems)
        self.me = me.lower() if me else None
        self.first = {}  # directive -> first line, for duplicate checks
        self.seen = {}  # directive -> line of the value in effect, for messages about it
        self.media_lines = []  # (line, medium) in file order
        self.node_lines = {}
        self.resource_dirs_given = False
        self.ping_line = 0     # the first ping or ping_group line, for the check across them

    def parse(self, text):
        for n, raw in enumerate(split_lines(text)):
            line = n + 1
            hash_at = raw.find("#")
            body = raw if hash_at < 0 else raw[:hash_at]
            toks = body.split()
            if not toks:
                continue
            name = toks[0].lower()
            args = toks[1:]
            spec = _DIRECTIVES.get(name)
            if spec is None:
                self._unknown(line, toks[0])
                continue
            why = _WHY_IGNORED.get(name)
            if why:
                self.warn(line, why)
            if name in _MEDIA:
                self.media_lines.append((line, name))
            if not args:
                self.err(line, "%s needs a value (%s)" % (name, _EXAMPLES.get(name, "see ha.cf(5)")))
                continue
            kind, attr, arg = spec
            if kind == _SPECIAL:
                getattr(self, "_d_" + name)(line, name, args)
            else:
                self._generic(line, name, kind, attr, arg, args)
        self._ha_cf_checks()

    def _unknown(self, line, name):
        """An unknown directive is an error, as Heartbeat's ``Illegal directive`` (it refuses to
        start): a typo such as ``deadtim 500ms`` must not leave the default dead time in force."""
        lowered = name.lower()
        refused = " (Heartbeat refuses it too: Illegal directive)"
        for sep in "=:":
            at = lowered.find(sep)
            if at > 0 and lowered[:at] in _DIRECTIVES:
                self.err(line, "[%s] is not a directive: write the value after a blank, '%s %s'%s"
                         % (_shown(name), lowered[:at], _shown(name[at + 1:]), refused))
                return
        best = _nearest(lowered)
        if best is not None:
            self.err(line, "unknown directive [%s] - did you mean [%s]?%s" % (_shown(name), best, refused))
        elif not _is_word(lowered):
            self.err(line, "garbled line: [%s] is not a directive name (names are letters, digits and "
                           "'_'); fix or remove the line%s" % (_shown(name), refused))
        else:
            self.err(line, "unknown directive [%s]: neither Heartbeat nor hanode has it (see ha.cf(5) and "
                           "hanode's extensions in the README); remove the line%s" % (_shown(name), refused))

    def _convert(self, line, name, kind, arg, value):
        """One value of a directive -> (True, converted) or (False, None) after reporting it."""
        if kind == _TIME:
            v = parse_time_ms(value)
            if v is None:
                self.err(line, "invalid time [%s] for %s; write seconds (2, 0.5) or milliseconds "
                               "(500ms); microseconds take 'us'" % (value, name))
                return False, None
            return True, v
        if kind == _BOOL:
            v = parse_bool(value)
            if v is None:
                self.err(line, "invalid value [%s] for %s; use on or off (also yes/no, true/false, "
                               "y/n, 1/0)" % (value, name))
                return False, None
            return True, v
        if kind == _INT:
            lo, hi = arg
            if not is_digits(value) or int(value) < lo or int(value) > hi:
                self.err(line, "invalid number [%s] for %s; use a whole number from %d to %d"
                         % (value, name, lo, hi))
                return False, None
            return True, int(value)
        if kind == _CHOICE:
            v = value.lower()
            if v not in arg:
                self.err(line, "invalid value [%s] for %s; use one of %s" % (value, name, ", ".join(arg)))
                return False, None
            return True, v
        if kind == _ABSPATH:
            if not value.startswith("/"):
                self.err(line, "%s [%s] must be an absolute path (%s)" % (name, value, _EXAMPLES[name]))
                return False, None
            return True, value
        return True, value  # _WORD

    def _generic(self, line, name, kind, attr, arg, args):
        rest = " ".join(args)
        if kind == _LINE:
            self.cfg.extra.append((name, rest))
            return
        if kind == _TIME and len(args) > 1 and parse_time_ms(rest) is not None:
            args = [rest]  # "1500 ms": cl_get_msec allows blanks before the unit
        if len(args) > 1:
            self.warn(line, "%s takes one value but the line has %d; Heartbeat applies each in turn, "
                            "so the last one [%s] is used" % (name, len(args), args[-1]))
        value = None
        ok = False
        for a in args:
            ok, value = self._convert(line, name, kind, arg, a)
        if not ok:
            return
        if attr is None:
            self.cfg.extra.append((name, rest))
            if name == "hbgenmethod" and value == "time":
                self.warn(line, "hbgenmethod time is ignored: hanode always keeps its boot generation in a "
                                "file under state_dir (a clock that goes backwards would defeat replay "
                                "protection)")
            if name == "msgfmt" and value == "netstring":
                self.warn(line, "msgfmt netstring is ignored: hanode speaks its own compact binary frame "
                                "(docs/protocol.md), not Heartbeat's text messages")
            return
        self._once(line, name)
        setattr(self.cfg, attr, value)

    def _once(self, line, name, fatal=None):
        """Note a single-valued directive; a repeat is a warning (last wins) or Heartbeat's error."""
        first = self.first.get(name)
        if first is None:
            self.first[name] = line
            self.seen[name] = line
            return True
        if fatal:
            self.err(line, "%s (first on line %d); give %s only once" % (fatal, first, name))
            return False
        self.warn(line, "%s given again (first on line %d); the last value is used, as in Heartbeat"
                  % (name, first))
        self.seen[name] = line
        return True

    def _d_udpport(self, line, name, args):
        for a in args:
            if not is_digits(a) or not 1 <= int(a) <= 65535:
                self.err(line, "invalid udpport [%s]; use a port number from 1 to 65535 (Heartbeat's "
                               "is 694)" % a)
                continue
            self._once(line, name)
            self.cfg.udpport = int(a)
            for (ml, medium) in self.media_lines:
                if medium in ("bcast", "ucast") and ml < line:
                    self.warn(line, "udpport setting must precede media statements (the %s on line %d); "
                                    "hanode uses port %s for every UDP medium anyway" % (medium, ml, a))
                    break

    def _d_baud(self, line, name, args):
        for a in args:
            if not self._once(line, name, fatal="Baudrate multiply specified"):
                continue
            if not is_digits(a) or int(a) not in BAUD_RATES:
                self.err(line, "invalid baud rate [%s]; use one of %s"
                         % (a, " ".join([str(b) for b in BAUD_RATES])))
                continue
            self.cfg.baud = int(a)
            for (ml, medium) in self.media_lines:
                if medium == "serial":
                    self.warn(line, "baud setting must precede media statements (serial on line %d); "
                                    "Heartbeat would run that line at 19200, hanode applies baud %s to "
                                    "every serial line" % (ml, a))
                    break

    def _d_serial(self, line, name, args):
        for dev in args:
            if not dev.startswith("/"):
                self.err(line, "serial port [%s] must be an absolute device path such as /dev/ttyS0" % dev)
            elif dev in self.cfg.serial:
                self.warn(line, "serial port [%s] is listed twice; it is used once" % dev)
            else:
                self.cfg.serial.append(dev)
                self.cfg.lines[("serial", dev)] = line

    def _d_bcast(self, line, name, args):
        for dev in args:
            if dev not in self.cfg.bcast:
                self.cfg.bcast.append(dev)

    def _d_ucast(self, line, name, args):
        if len(args) != 2:
            self.err(line, "ucast needs 2 values, got %d; write 'ucast <interface> <peer IPv4 address>' "
                           "(the same line on both nodes is fine: a ucast to one's own address is "
                           "skipped)" % len(args))
            return
        if parse_ipv4(args[1]) is None:
            self.err(line, "ucast peer [%s] is not an IPv4 address; hanode does not resolve host names: "
                           "write 'ucast %s 192.0.2.2'" % (args[1], args[0]))
            return
        self.cfg.ucast.append((args[0], args[1]))
        self.cfg.lines.setdefault(("ucast", args[0]), line)

    def _d_mcast(self, line, name, args):
        if len(args) != 5:
            self.err(line, "mcast needs 5 values, got %d; write 'mcast <interface> <group> <port> <ttl> "
                           "<loop>', e.g. 'mcast eth0 225.0.0.1 694 1 0'" % len(args))
            return
        dev, group, port, ttl, loop = args
        ok = True
        if parse_ipv4(group) is None or not 224 <= int(group.split(".")[0]) <= 239:
            self.err(line, "mcast group [%s] is not an IPv4 multicast address (224.0.0.0 to "
                           "239.255.255.255)" % group)
            ok = False
        if not is_digits(port) or not 1 <= int(port) <= 65535:
            self.err(line, "mcast port [%s] must be a number from 1 to 65535" % port)
            ok = False
        if not is_digits(ttl) or not 1 <= int(ttl) <= 255:
            self.err(line, "mcast ttl [%s] must be a number from 1 to 255" % ttl)
            ok = False
        if loop not in ("0", "1"):
            self.err(line, "mcast loop [%s] must be 0 or 1 (0 recommended)" % loop)
            ok = False
        if ok:
            self.cfg.mcast.append((dev, group, int(port), int(ttl), int(loop)))

    def _d_node(self, line, name, args):
        for a in args:
            n = a.lower()
            if n in self.cfg.nodes:
                self.warn(line, "node [%s] is listed twice (first on line %d); it counts once"
                          % (n, self.node_lines[n]))
                continue
            self.node_lines[n] = line
            self.cfg.nodes.append(n)

    def _d_auto_failback(self, line, name, args):
        if len(args) > 1:
            self.warn(line, "auto_failback takes one value; the last one [%s] is used" % args[-1])
        v = args[-1].lower()
        b = parse_bool(v)
        if b is None and v != "legacy":
            self.err(line, "invalid auto_failback [%s]; use on, off or legacy" % args[-1])
            return
        self._once(line, name)
        self.cfg.auto_failback = "legacy" if b is None else ("on" if b else "off")

    def _d_nice_failback(self, line, name, args):
        b = parse_bool(args[-1])
        if b is None:
            self.err(line, "invalid nice_failback [%s]; better: replace the line by 'auto_failback on' "
                           "(or off)" % args[-1])
            return
        mapped = "off" if b else "legacy"
        self.warn(line, "nice_failback flag is obsolete. Use auto_failback {on, off, legacy} instead. "
                        "'nice_failback %s' is taken as 'auto_failback %s', as Heartbeat does"
                  % (args[-1], mapped))
        self.first.setdefault("auto_failback", line)
        self.seen["auto_failback"] = line
        self.cfg.auto_failback = mapped

    def _d_autojoin(self, line, name, args):
        v = args[-1].lower()
        if v not in ("none", "other", "any"):
            self.err(line, "invalid autojoin [%s]; use none (other and any exist in Heartbeat but hanode "
                           "needs none)" % args[-1])
            return
        if v != "none":
            self.err(line, "R1 style resource management conflicts with autojoin set (autojoin %s); "
                           "hanode has two fixed nodes: write 'autojoin none' or remove the line" % v)
            return
        self.cfg.extra.append((name, v))

    def _d_watchdog(self, line, name, args):
        for a in args:
            if not self._once(line, name, fatal="Watchdog device multiply specified"):
                continue
            if not a.startswith("/"):
                self.err(line, "watchdog device [%s] must be an absolute path such as /dev/watchdog" % a)
                continue
            self.cfg.watchdog = a

    def _d_stop_failure(self, line, name, args):
        """What to do when a group's stop still fails after its retries (issue 13 finding 3):
        ``fence`` (stop petting the watchdog: the box resets), ``block`` (stay, alarmed: Pacemaker's
        on-fail=block) or ``reboot [command ...]`` (run the command; Heartbeat's ResourceManager
        runs ``/sbin/reboot -nf``)."""
        action = args[0].lower()
        if action not in STOP_FAILURE_ACTIONS:
            self.err(line, "invalid value [%s] for stop_failure; use one of %s (%s)"
                     % (args[0], ", ".join(STOP_FAILURE_ACTIONS), _EXAMPLES[name]))
            return
        command = args[1:]
        if command and action != STOP_FAILURE_REBOOT:
            self.err(line, "stop_failure %s takes no command; only 'stop_failure reboot <command ...>' does"
                     % action)
            return
        if command and not command[0].startswith("/"):
            self.err(line, "stop_failure reboot: the command [%s] must be an absolute path, e.g. "
                           "/sbin/reboot -nf" % command[0])
            return
        self._once(line, name)
        self.cfg.stop_failure = action
        if command:
            self.cfg.reboot_command = list(command)

    def _d_use_logd(self, line, name, args):
        b = parse_bool(args[-1])
        if b is None:
            self.err(line, "invalid value [%s] for use_logd; use on or off" % args[-1])
            return
        self._once(line, name)
        self.cfg.use_logd = b
        if b:
            self.warn(line, "hanode has no ha_logd client: use_logd is ignored; set logfacility (syslog) "
                            "or logfile for hanode's log")

    def _d_respawn(self, line, name, args):
        if len(args) < 2:
            self.err(line, "respawn needs a user and a program, e.g. 'respawn hacluster "
                           "/usr/lib/heartbeat/ipfail'")
            return
        prog = args[1].split("/")[-1]
        if prog == "ipfail":
            self.warn(line, "respawn of ipfail: not started, hanode does its job itself - the carrier of "
                            "every interface with a VIP and the ping/ping_group nodes make up each box's LAN "
                            "health, and a group moves to the box whose LAN is better (docs/faults.md)")
            return
        if prog in _HEARTBEAT_API_CLIENTS:
            self.warn(line, "respawn of %s: it talks to Heartbeat's client API, which hanode does not "
                            "provide, so it cannot work under hanode" % prog)
        self.cfg.respawn.append((args[0], list(args[1:])))

    def _d_ping(self, line, name, args):
        for a in args:
            if parse_ipv4(a) is None:
                self.err(line, "ping [%s] is not an IPv4 address (%s)" % (a, _EXAMPLES["ping"]))
            elif a in self.cfg.ping:
                self.warn(line, "ping node %s is listed twice; it counts once" % a)
            else:
                self.cfg.ping.append(a)
        self.ping_line = self.ping_line or line

    def _d_ping_group(self, line, name, args):
        if len(args) < 2:
            self.err(line, "ping_group needs a name and at least one address (%s)" % _EXAMPLES["ping_group"])
            return
        bad = [a for a in args[1:] if parse_ipv4(a) is None]
        if bad:
            self.err(line, "ping_group %s: [%s] is not an IPv4 address" % (args[0], bad[0]))
            return
        if args[0] in [n for n, _ in self.cfg.ping_groups]:
            self.err(line, "ping_group %s is defined twice" % args[0])
            return
        self.cfg.ping_groups.append((args[0], list(args[1:])))
        self.ping_line = self.ping_line or line

    def _d_crm(self, line, name, args):
        v = args[-1]
        if parse_bool(v) is False:
            self.cfg.extra.append((name, v))
            return
        if parse_bool(v) is None and v.lower() not in ("respawn", "minimal"):
            self.err(line, "invalid value [%s] for %s; hanode accepts only '%s off'" % (v, name, name))
            return
        self.err(line, "%s %s: CRM mode is Pacemaker's job; hanode runs haresources (R1) resource groups "
                       "only: remove the line or write '%s off'" % (name, v, name))

    _d_pacemaker = _d_crm

    def _d_resource_dir(self, line, name, args):
        if not self.resource_dirs_given:
            self.resource_dirs_given = True
            self.cfg.resource_dirs = []
        for a in args:
            if not a.startswith("/"):
                self.err(line, "resource_dir [%s] must be an absolute path (e.g. /etc/ha.d/resource.d)" % a)
            elif a not in self.cfg.resource_dirs:
                self.cfg.resource_dirs.append(a)

    def _line_of(self, *names):
        for n in names:
            if n in self.seen:
                return self.seen[n]
        return 0

    def _ha_cf_checks(self):
        c = self.cfg
        media = [m for (_, m) in self.media_lines]
        if not media:
            self.err(0, "No heartbeat media defined; add 'serial /dev/ttyS0' (and, as a second path, "
                        "'ucast <interface> <peer address>')")
        elif not (c.serial or c.ucast):
            usable_given = [m for m in media if m in USABLE_MEDIA]
            if not usable_given:  # (a usable medium with a bad value has its own error already)
                self.err(0, "no heartbeat medium hanode can use: %s are ignored; add 'serial /dev/ttyS0' "
                            "or 'ucast <interface> <peer address>'" % ", ".join(media))
        if not c.nodes:
            self.err(0, "no nodes defined; add 'node <name>' for both machines, named as 'uname -n' "
                        "prints them")
        elif len(c.nodes) != 2:
            self.err(self.node_lines[c.nodes[-1]] if len(c.nodes) > 2 else 0,
                     "hanode needs exactly two nodes; ha.cf lists %d (%s)" % (len(c.nodes), ", ".join(c.nodes)))
        if self.me is not None and c.nodes and self.me not in c.nodes:
            self.err(0, "Current node [%s] not in configuration! By default, cluster nodes are named by "
                        "`uname -n` and must be declared with a 'node' directive in the ha.cf file "
                        "(ha.cf lists: %s)" % (self.me, ", ".join(c.nodes)))
        c.me = self.me
        if self.me is not None and len(c.nodes) == 2 and self.me in c.nodes:
            c.peer = c.nodes[1] if c.nodes[0] == self.me else c.nodes[0]

        keep_ok = True
        if c.keepalive_ms <= 0:
            keep_ok = False
            self.err(self._line_of("keepalive"), "keepalive must be more than 0: it is the interval "
                                                 "between heartbeats, e.g. 'keepalive 1' or 'keepalive 200ms'")
        if keep_ok and c.deadtime_ms <= 2 * c.keepalive_ms:
            self.err(self._line_of("deadtime", "keepalive"),
                     "Dead time [%d ms] is too small compared to keepalive [%d ms]; deadtime must be more than "
                     "twice keepalive, e.g. 'deadtime %dms' or more"
                     % (c.deadtime_ms, c.keepalive_ms, 2 * c.keepalive_ms + 1))
        if c.warntime_ms is None:
            c.warntime_ms = c.deadtime_ms // 2
        elif c.warntime_ms <= 0:
            self.err(self._line_of("warntime"), "warntime must be more than 0, e.g. 'warntime %dms' "
                                                "(deadtime/2)" % (c.deadtime_ms // 2))
        if c.warntime_ms > 0 and c.warntime_ms >= c.deadtime_ms:
            self.warn(self._line_of("warntime", "deadtime"),
                      "warntime [%d ms] is not less than deadtime [%d ms]: no 'Late heartbeat' warning can come "
                      "before the peer is declared dead; use less, e.g. deadtime/2 = %dms"
                      % (c.warntime_ms, c.deadtime_ms, c.deadtime_ms // 2))
        elif keep_ok and 0 < c.warntime_ms <= c.keepalive_ms:
            self.warn(self._line_of("warntime", "keepalive"),
                      "warntime [%d ms] is not more than keepalive [%d ms]: every heartbeat would be reported "
                      "late; use at least 2 x keepalive" % (c.warntime_ms, c.keepalive_ms))
        if c.initdead_ms is None:
            if c.deadtime_ms > 10000:
                c.initdead_ms = c.deadtime_ms
            elif c.deadtime_ms < 6000:
                c.initdead_ms = 12000
            else:
                c.initdead_ms = 2 * c.deadtime_ms
        if c.initdead_ms < c.deadtime_ms:
            self.err(self._line_of("initdead"),
                     "Initial dead time [%d ms] is smaller than deadtime [%d ms]; initdead must be at least "
                     "deadtime (and 10 s or more for slow boots)" % (c.initdead_ms, c.deadtime_ms))
        if c.initdead_ms < 10000:
            self.warn(self._line_of("initdead"),
                      "Initial dead time [%d ms] may be too small! Initial dead time accounts for slow "
                      "network startup time. It should be >= deadtime and >= 10 seconds" % c.initdead_ms)
        if "auto_failback" not in self.seen:
            self.warn(0, "Deprecated 'legacy' auto_failback option selected. Please convert to "
                         "'auto_failback on'. See documentation for conversion details. (No auto_failback "
                         "line: Heartbeat's default is legacy)")
        if c.use_logd is None:
            # Heartbeat: "No log entry found in ha.cf -- use logd"
            c.use_logd = c.logfile is None and c.debugfile is None and c.logfacility is None
        default_wd = (c.deadtime_ms + 10 + 999) // 1000
        if c.watchdog_timeout_s is None:
            c.watchdog_timeout_s = default_wd
        else:
            if c.watchdog is None:
                self.warn(self._line_of("watchdog_timeout"), "watchdog_timeout has no effect without a "
                                                             "'watchdog /dev/watchdog' line")
            elif c.watchdog_timeout_s > default_wd:
                self.warn(self._line_of("watchdog_timeout"),
                          "watchdog_timeout [%d s] is longer than deadtime [%d ms]: a hung node keeps its "
                          "resources up to %d s while the peer takes over after %d ms; Heartbeat uses "
                          "%d s" % (c.watchdog_timeout_s, c.deadtime_ms, c.watchdog_timeout_s,
                                    c.deadtime_ms, default_wd))
        if c.watchdog_required and c.watchdog is None:
            self.err(self._line_of("watchdog_required"), "watchdog_required on needs a watchdog to require: "
                                                         "add 'watchdog /dev/watchdog'")
        if c.stop_failure is None:
            c.stop_failure = STOP_FAILURE_FENCE if c.watchdog else STOP_FAILURE_BLOCK
        elif c.stop_failure == STOP_FAILURE_FENCE and c.watchdog is None:
            self.err(self._line_of("stop_failure"), "stop_failure fence needs a watchdog to stop petting: add "
                                                    "'watchdog /dev/watchdog', or use 'stop_failure reboot' or "
                                                    "'stop_failure block'")
        if c.resource_dirs is None:
            c.resource_dirs = default_resource_dirs(c.config_dir)
        for attr, name in (("probe_interval_ms", "probe_interval"), ("garp_interval_ms", "garp_interval"),
                           ("resource_timeout_ms", "resource_timeout")):
            if getattr(c, attr) <= 0:
                self.err(self._line_of(name), "%s must be more than 0" % name)
        if not 0 < c.restart_grace_ms <= MAX_RESTART_GRACE_MS:
            self.err(self._line_of("restart_grace"), "restart_grace [%d ms] must be more than 0 and at most "
                     "%d s: the peer leaves our groups unguarded that long if the restart fails"
                     % (c.restart_grace_ms, MAX_RESTART_GRACE_MS // 1000))
        self._monitor_checks()
        self._ping_checks()
        if c.serial and keep_ok:
            self._line_load()

    def _monitor_checks(self):
        c = self.cfg
        for attr, name in (("monitor_timeout_ms", "monitor_timeout"), ("monitor_window_ms", "monitor_window")):
            if name in self.seen and getattr(c, attr) <= 0:
                self.err(self._line_of(name), "%s must be more than 0 (%s)" % (name, _EXAMPLES[name]))
        if c.monitor_interval_ms < 0:
            self.err(self._line_of("monitor_interval"), "monitor_interval cannot be negative (%s)"
                     % _EXAMPLES["monitor_interval"])
        given = [n for n in ("monitor_timeout", "monitor_failures", "monitor_window") if n in self.seen]
        if not c.monitor_interval_ms:
            if given:
                self.warn(self._line_of(*given), "%s has no effect without monitor_interval: resources are "
                                                 "not monitored (%s)" % (given[0], _EXAMPLES["monitor_interval"]))
            return
        if c.monitor_interval_ms < 100:
            self.err(self._line_of("monitor_interval"), "monitor_interval [%d ms] is too short: each check "
                                                        "runs every resource's status script; use 100ms or more"
                     % c.monitor_interval_ms)
        if c.monitor_failures and c.monitor_failures * c.monitor_interval_ms >= c.monitor_window_ms:
            # restarts come at least a monitor_interval apart (each is found by a check)
            self.warn(self._line_of("monitor_window", "monitor_interval", "monitor_failures"),
                      "monitor_window [%d ms] is not longer than monitor_failures x monitor_interval [%d x %d ms]: "
                      "the restarts never add up to the limit within it, so a failing group is never moved "
                      "to the peer" % (c.monitor_window_ms, c.monitor_failures, c.monitor_interval_ms))

    def _ping_checks(self):
        c = self.cfg
        # (not given: the dead time, as in Heartbeat - resolved by Config.deadping(), so that a
        # reload of deadtime moves it too)
        if c.deadping_ms is not None and c.keepalive_ms > 0 and c.deadping_ms < 2 * c.keepalive_ms:
            self.err(self._line_of("deadping"),
                     "deadping [%d ms] must be at least twice keepalive [%d ms]: ping nodes are probed once "
                     "per keepalive, and one lost echo must not count as a lost node; e.g. 'deadping %dms'"
                     % (c.deadping_ms, c.keepalive_ms, 2 * c.keepalive_ms))
        nodes = len(c.ping) + len(c.ping_groups)
        if nodes > MAX_HEALTH - 1:
            self.warn(self.ping_line,
                      "%d ping nodes: LAN health counts at most %d of them (the heartbeat frame carries a "
                      "3-bit value); a box reaching more is not judged better; group them with ping_group"
                      % (nodes, MAX_HEALTH - 1))

    def _line_load(self):
        c = self.cfg
        # the auth method is not known yet: assume the longer keyed frame (the load check is a warning)
        frame = FRAME_WIRE_BYTES
        tenth_ms = frame * 10 * 10000 // c.baud  # 8N1: 10 bit times per byte; in 0.1 ms
        if 2 * tenth_ms * 10 > c.keepalive_ms * 100:  # frame time > keepalive/2
            self.warn(self._line_of("keepalive", "baud"),
                      "keepalive [%d ms] is short for %d baud: one %d-byte frame takes %d.%d ms, so the serial "
                      "line would be busy more than half the time; use keepalive >= %d ms or a higher baud"
                      % (c.keepalive_ms, c.baud, frame, tenth_ms // 10, tenth_ms % 10, (tenth_ms * 4 + 9) // 10))


def _nearest(word):
    """The known directive one or two edits away from word (the first in sorted order), or None."""
    best, dist = None, 3
    for known in sorted(_DIRECTIVES):  # sorted: the same suggestion on both interpreters
        if abs(len(known) - len(word)) >= dist:
            continue   # the distance is at least the length difference: cannot win
        d = edit_distance(word, known)
        if d < dist:
            best, dist = known, d
    return best


def _is_word(text):
    for c in text:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_"):
            return False
    return True


def _shown(text, limit=40):
    """Text fit for a message: control and non-ASCII characters escaped, long words cut."""
    out = []
    for c in text[:limit]:
        o = ord(c)
        if 32 < o < 127:
            out.append(c)
        elif o < 256:
            out.append("\\x%02x" % o)
        else:
            out.append("\\u%04x" % o)
    return "".join(out) + ("..." if len(text) > limit else "")
