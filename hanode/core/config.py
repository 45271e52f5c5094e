"""Heartbeat's three configuration files -> one ``Config`` (sans-IO, MicroPython-compatible).

Theory of operation
-------------------
hanode replaces a Heartbeat R1 pair by swapping the daemon, so it reads the same
``ha.cf``, ``authkeys`` and ``haresources`` and must agree with Heartbeat about what
they mean: the same defaults, the same time syntax (``cl_get_msec``), the same
booleans (``cl_str_to_boolean``), the same sanity rules and, where that helps the
user, the same messages.  Where hanode differs, the message says so: an unknown
directive is a warning (Heartbeat refuses to start), hanode needs exactly two nodes
and ``crm off``, and it adds a few directives of its own (VIP probing, watchdog
timeout, paths).

The parser never stops at the first problem.  Every line of all three files is
read, each problem becomes a ``Problem(path, line, message, level)``, and when any
of them is an error the whole list is raised at once in ``ConfigError``, so that
``hanode check-config`` can show everything in one run.  Messages say what is wrong
and what would be right.

Text goes in, plain objects come out: no files, no clock, no regular expressions
(MicroPython's ``re`` cannot do named groups), no reliance on dict order (lists
keep file order), and no floats (the two interpreters round differently).
"""

BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800)
AUTH_METHODS = ("crc", "md5", "sha1", "hmac-sha256")
MAX_AUTH_INDEX = 15  # the frame header has 4 bits for it (docs/protocol.md)
MAX_GROUPS = 8  # the frame's held/want fields are one byte each
MIN_KEY_BYTES = 16
# The media hanode actually sends on; the others are read (Heartbeat counts them) but unused.
USABLE_MEDIA = ("serial", "ucast")
# One status frame on the wire including its delimiter (docs/protocol.md): crc tags are shorter.
FRAME_WIRE_BYTES = 24
FRAME_WIRE_BYTES_CRC = 20
DEFAULT_PATHS = ("/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/ha.d/haresources")

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

_TRUE = ("true", "on", "yes", "y", "1")
_FALSE = ("false", "off", "no", "n", "0")
_DIGITS = "0123456789"


class Problem:
    """One thing wrong (or worth knowing) about a configuration file, with its place."""

    def __init__(self, path, line, message, level="error"):
        self.path = path
        self.line = line
        self.message = message
        self.level = level

    def __str__(self):
        if self.line:
            return "%s:%d: %s: %s" % (self.path, self.line, self.level, self.message)
        return "%s: %s: %s" % (self.path, self.level, self.message)

    def __repr__(self):
        return "Problem(%r, %r, %r, %r)" % (self.path, self.line, self.message, self.level)

    def to_dict(self):
        return {"path": self.path, "line": self.line, "level": self.level,
                "message": self.message, "text": str(self)}


class ConfigError(Exception):
    """Raised when at least one problem is an error; ``problems`` holds all of them."""

    def __init__(self, problems):
        self.problems = list(problems)
        first = None
        for p in self.problems:
            if p.level == "error":
                first = p
                break
        if first is None and self.problems:
            first = self.problems[0]
        self.path = first.path if first else None
        self.line = first.line if first else 0
        self.message = first.message if first else "configuration error"
        super().__init__(self._text())

    def _text(self):
        return "\n".join([str(p) for p in self.problems])

    def __str__(self):
        return self._text()


class AuthKey:
    """One authkeys line: index, method and the key as bytes (None for crc)."""

    def __init__(self, index, method, key):
        self.index = index
        self.method = method
        self.key = key

    def __repr__(self):
        # never the key itself: reprs end up in logs
        return "AuthKey(%d, %r, <%s>)" % (self.index, self.method,
                                          "no key" if self.key is None else "%d bytes" % len(self.key))


class Resource:
    """One haresources token: ``script[::arg...]`` or an IP address (IPaddr/IPaddr2/bare)."""

    def __init__(self, token, script, args):
        self.token = token
        self.script = script
        self.args = args
        self.is_ip = False
        self.ip = None
        self.prefixlen = None
        self.dev = None
        self.label = None  # the full Linux label, e.g. "eth0:1" (what netlink wants)
        self.broadcast = None

    def __repr__(self):
        return "Resource(%r)" % self.token

    def to_dict(self):
        d = {"token": self.token, "script": self.script, "args": list(self.args), "is_ip": self.is_ip}
        if self.is_ip:
            d["ip"] = self.ip
            d["prefixlen"] = self.prefixlen
            d["dev"] = self.dev
            d["label"] = self.label
            d["broadcast"] = self.broadcast
        return d


class ResourceGroup:
    """One haresources line: preferred node, key (first resource as written), resources."""

    def __init__(self, preferred, key, resources, line):
        self.preferred = preferred
        self.key = key
        self.resources = resources
        self.line = line

    def __repr__(self):
        return "ResourceGroup(%r, %r)" % (self.preferred, self.key)

    def to_dict(self):
        return {"key": self.key, "preferred": self.preferred, "line": self.line,
                "resources": [r.to_dict() for r in self.resources]}


class Config:
    """Everything hanode needs from /etc/ha.d; plain attributes (see docs/internals.md)."""

    def __init__(self):
        # timing (ms)
        self.keepalive_ms = 1000
        self.deadtime_ms = 30000
        self.warntime_ms = None  # deadtime/2 unless given
        self.initdead_ms = None  # Heartbeat's rule unless given
        # media
        self.baud = 19200
        self.serial = []
        self.udpport = 694
        self.bcast = []
        self.ucast = []
        self.mcast = []
        # nodes
        self.nodes = []
        self.me = None
        self.peer = None
        self.auto_failback = "legacy"
        # Heartbeat's other runtime settings
        self.watchdog = None
        self.logfile = None
        self.debugfile = None
        self.logfacility = None
        self.use_logd = None  # None: not given; resolved after parsing as Heartbeat does
        self.debug = 0
        self.respawn = []
        self.ping = []
        self.realtime = True
        self.rtprio = None
        self.crm = False
        # hanode extensions
        self.vip_probe = True
        self.probe_count = 3
        self.probe_interval_ms = 5
        self.probe_wait_ms = 30
        self.garp_count = 5
        self.garp_interval_ms = 200
        self.watchdog_timeout_s = None
        self.watchdog_required = False  # on: a watchdog that cannot be opened stops the start
        self.state_dir = "/var/lib/hanode"
        self.control_socket = "/run/hanode/control.sock"
        self.resource_dirs = None
        self.resource_timeout_ms = 30000
        # auth
        self.auth_index = None
        self.auth_keys = {}
        # resources
        self.groups = []
        # bookkeeping
        self.extra = []  # (directive, value) accepted for Heartbeat's sake, file order
        self.warnings = []
        self.paths = DEFAULT_PATHS
        self.config_dir = "/etc/ha.d"

    def node_index(self, name):
        """The node's id on the wire: its position in the sorted node list (0 or 1)."""
        name = name.lower()
        ordered = sorted(self.nodes)
        for i in range(len(ordered)):
            if ordered[i] == name:
                return i
        raise KeyError("node [%s] is not in ha.cf (nodes: %s)" % (name, ", ".join(self.nodes)))

    def group(self, key):
        for g in self.groups:
            if g.key == key:
                return g
        raise KeyError("no resource group with key [%s] in haresources" % key)

    def auth_method(self):
        """The method of the key used to sign outgoing frames (None if authkeys is unusable)."""
        k = self.auth_keys.get(self.auth_index)
        return k.method if k is not None else None

    def to_dict(self):
        """JSON-serialisable view for check-config --json and status: never the keys."""
        methods = {}
        for index in self.auth_keys:
            methods[str(index)] = self.auth_keys[index].method
        ids = {}
        for n in self.nodes:
            ids[n] = self.node_index(n)
        return {
            "keepalive_ms": self.keepalive_ms,
            "deadtime_ms": self.deadtime_ms,
            "warntime_ms": self.warntime_ms,
            "initdead_ms": self.initdead_ms,
            "baud": self.baud,
            "serial": list(self.serial),
            "udpport": self.udpport,
            "bcast": list(self.bcast),
            "ucast": [list(u) for u in self.ucast],
            "mcast": [list(m) for m in self.mcast],
            "nodes": list(self.nodes),
            "node_ids": ids,
            "me": self.me,
            "peer": self.peer,
            "auto_failback": self.auto_failback,
            "watchdog": self.watchdog,
            "watchdog_timeout_s": self.watchdog_timeout_s,
            "watchdog_required": self.watchdog_required,
            "logfile": self.logfile,
            "debugfile": self.debugfile,
            "logfacility": self.logfacility,
            "use_logd": self.use_logd,
            "debug": self.debug,
            "respawn": [[u, list(argv)] for (u, argv) in self.respawn],
            "ping": list(self.ping),
            "realtime": self.realtime,
            "rtprio": self.rtprio,
            "crm": self.crm,
            "vip_probe": self.vip_probe,
            "probe_count": self.probe_count,
            "probe_interval_ms": self.probe_interval_ms,
            "probe_wait_ms": self.probe_wait_ms,
            "garp_count": self.garp_count,
            "garp_interval_ms": self.garp_interval_ms,
            "state_dir": self.state_dir,
            "control_socket": self.control_socket,
            "resource_dirs": list(self.resource_dirs or []),
            "resource_timeout_ms": self.resource_timeout_ms,
            "auth": {"index": self.auth_index, "method": self.auth_method(), "methods": methods},
            "groups": [g.to_dict() for g in self.groups],
            "extra": [[n, v] for (n, v) in self.extra],
            "paths": list(self.paths),
            "config_dir": self.config_dir,
        }


# ---------------------------------------------------------------------------------------------
# value syntax


def _is_digits(s):
    if not s:
        return False
    for c in s:
        if c not in _DIGITS:
            return False
    return True


def parse_time_ms(text):
    """Heartbeat's ``cl_get_msec``: ``2`` -> 2000, ``0.5`` -> 500, ``1500 ms`` -> 1500, ``501us`` -> 1.

    Bare numbers are seconds, ``ms``/``msec`` milliseconds and ``us``/``usec``
    microseconds (case-insensitive, blanks allowed before the unit); the result is
    rounded half up to a whole millisecond.  Anything else (a sign, an exponent,
    trailing text) gives None.  The arithmetic is exact decimal, so ``0.0005``
    really is half a millisecond and rounds up, on both interpreters.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    i = 0
    while i < len(s) and s[i] in "0123456789.":
        i += 1
    number = s[:i]
    unit = s[i:].strip().lower()
    if number.count(".") > 1 or number.replace(".", "") == "":
        return None
    if unit == "":
        mult, div = 1000, 1
    elif unit in ("ms", "msec"):
        mult, div = 1, 1
    elif unit in ("us", "usec"):
        mult, div = 1, 1000
    else:
        return None
    if "." in number:
        dot = number.find(".")
        whole, frac = number[:dot], number[dot + 1:]
    else:
        whole, frac = number, ""
    num = int(whole + frac) * mult
    den = (10 ** len(frac)) * div
    return (2 * num + den) // (2 * den)


def parse_bool(text):
    """Heartbeat's ``cl_str_to_boolean``: True, False, or None when it is neither."""
    t = text.lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def parse_ipv4(text):
    """Dotted-quad IPv4 as written (no leading zeros: some tools read them as octal) or None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for p in parts:
        if not _is_digits(p) or len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return None
    return text


def _ipv4_int(text):
    n = 0
    for p in text.split("."):
        n = (n << 8) | int(p)
    return n


def _mask_to_prefix(text):
    """255.255.255.0 -> 24; None when not a contiguous netmask."""
    if parse_ipv4(text) is None:
        return None
    n = _ipv4_int(text)
    bits = 0
    while bits < 32 and n & (0x80000000 >> bits):
        bits += 1
    if (n << bits) & 0xFFFFFFFF:
        return None
    return bits


def _ms(v):
    """1500 -> '1500 ms (1.5 s)': users should see what their intervals mean."""
    if v % 1000 == 0:
        return "%d ms (%d s)" % (v, v // 1000)
    s = "%d.%03d" % (v // 1000, v % 1000)
    while s.endswith("0"):
        s = s[:-1]
    return "%d ms (%s s)" % (v, s)


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        prev = cur
    return prev[len(b)]


def _split_lines(text):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


# ---------------------------------------------------------------------------------------------
# ha.cf directive table

_TIME, _BOOL, _INT, _CHOICE, _WORD, _ABSPATH, _LINE, _SPECIAL = range(8)

# name -> (kind, Config attribute or None (kept in Config.extra), argument for the kind)
_DIRECTIVES = {
    "keepalive": (_TIME, "keepalive_ms", None),
    "deadtime": (_TIME, "deadtime_ms", None),
    "warntime": (_TIME, "warntime_ms", None),
    "initdead": (_TIME, "initdead_ms", None),
    "deadping": (_TIME, None, None),
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
    "ping_group": (_LINE, None, None),
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
    "state_dir": (_ABSPATH, "state_dir", None),
    "control_socket": (_ABSPATH, "control_socket", None),
    "resource_dir": (_SPECIAL, None, None),
    "resource_timeout": (_TIME, "resource_timeout_ms", None),
}

_NOT_USED_LAN = ("hanode's LAN path is UDP unicast ('ucast <interface> <peer address>'); "
                 "%s media are read but not used")
_NO_PING = "ping nodes feed Heartbeat's ipfail, which hanode does not run; the %s line is ignored"
_NO_STONITH = ("hanode has no STONITH: the watchdog is its self-fence (a hung node reboots before the "
               "peer takes over; set 'watchdog /dev/watchdog'); the %s line is ignored")
# Directives Heartbeat acts on but hanode cannot: accepted, with a warning saying so.
_WHY_IGNORED = {
    "bcast": _NOT_USED_LAN % "bcast",
    "mcast": _NOT_USED_LAN % "mcast",
    "mcast6": _NOT_USED_LAN % "mcast6",
    "ucast6": _NOT_USED_LAN % "IPv6 ucast6",
    "ping": _NO_PING % "ping",
    "ping_group": _NO_PING % "ping_group",
    "hbaping": _NO_PING % "hbaping",
    "stonith": _NO_STONITH % "stonith",
    "stonith_host": _NO_STONITH % "stonith_host",
    "failfast": ("hanode does not start failfast children (they need Heartbeat's client API); "
                 "the failfast line is ignored"),
}
_MEDIA = ("serial", "bcast", "ucast", "mcast", "mcast6", "ucast6")


class _Parser:
    """Parses the three texts into one Config, collecting problems instead of stopping."""

    def __init__(self, paths, me, config_dir):
        self.paths = paths
        self.cfg = Config()
        self.cfg.paths = tuple(paths)
        self.cfg.config_dir = config_dir
        self.me = me.lower() if me else None
        self._problems = []  # (file index, line, sequence, Problem): sorted at the end
        self.first = {}  # directive -> first line, for duplicate checks
        self.seen = {}  # directive -> line of the value in effect, for messages about it
        self.media_lines = []  # (line, medium) in file order
        self.node_lines = {}
        self.resource_dirs_given = False

    # -- problems
    def add(self, f, line, message, level="error"):
        self._problems.append((f, line, len(self._problems), Problem(self.paths[f], line, message, level)))

    def err(self, line, message, f=0):
        self.add(f, line, message, "error")

    def warn(self, line, message, f=0):
        self.add(f, line, message, "warning")

    def problems(self):
        items = list(self._problems)
        items.sort(key=lambda t: (t[0], t[1], t[2]))
        return [t[3] for t in items]

    # -- ha.cf
    def ha_cf(self, text):
        for n, raw in enumerate(_split_lines(text)):
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
        best, dist = None, 3
        lowered = name.lower()
        for known in sorted(_DIRECTIVES):  # sorted: the same suggestion on both interpreters
            if abs(len(known) - len(lowered)) >= dist:
                continue   # the distance is at least the length difference: cannot win
            d = _edit_distance(lowered, known)
            if d < dist:
                best, dist = known, d
        hint = " - did you mean [%s]?" % best if best else ""
        self.warn(line, "unknown directive [%s]: hanode ignores this line (Heartbeat would refuse to "
                        "start: Illegal directive)%s" % (name, hint))

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
            if not _is_digits(value) or int(value) < lo or int(value) > hi:
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
            if not _is_digits(a) or not 1 <= int(a) <= 65535:
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
            if not _is_digits(a) or int(a) not in BAUD_RATES:
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
        if not _is_digits(port) or not 1 <= int(port) <= 65535:
            self.err(line, "mcast port [%s] must be a number from 1 to 65535" % port)
            ok = False
        if not _is_digits(ttl) or not 1 <= int(ttl) <= 255:
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
        if prog in _HEARTBEAT_API_CLIENTS:
            self.warn(line, "respawn of %s: it talks to Heartbeat's client API, which hanode does not "
                            "provide, so it cannot work under hanode" % prog)
        self.cfg.respawn.append((args[0], list(args[1:])))

    def _d_ping(self, line, name, args):
        for a in args:
            self.cfg.ping.append(a)

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
        if c.resource_dirs is None:
            c.resource_dirs = [self._join(c.config_dir, "resource.d"), "/etc/init.d"]
        for attr, name in (("probe_interval_ms", "probe_interval"), ("garp_interval_ms", "garp_interval"),
                           ("resource_timeout_ms", "resource_timeout")):
            if getattr(c, attr) <= 0:
                self.err(self._line_of(name), "%s must be more than 0" % name)
        if c.serial and keep_ok:
            self._line_load()

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

    @staticmethod
    def _join(d, name):
        if not d:
            return name
        return d + name if d.endswith("/") else d + "/" + name

    # -- authkeys
    def authkeys(self, text):
        c = self.cfg
        bad = []  # indexes whose line had an error: "auth N not found" would only repeat it
        auth_line = 0
        key_lines = {}
        for n, raw in enumerate(_split_lines(text)):
            line = n + 1
            toks = raw.split()
            if not toks or toks[0].startswith("#"):
                continue
            first = toks[0]
            if first.lower() == "auth":
                if len(toks) < 2 or not _is_digits(toks[1]) or int(toks[1]) > MAX_AUTH_INDEX:
                    self.err(line, "Invalid auth line [%s]; write 'auth N' with N the index (0-%d) of the "
                                   "key to sign with" % (raw.strip(), MAX_AUTH_INDEX), 1)
                    continue
                if auth_line:
                    self.warn(line, "auth given again (first on line %d); the last one is used" % auth_line, 1)
                if len(toks) > 2:
                    self.warn(line, "text after 'auth %s' is ignored" % toks[1], 1)
                auth_line = line
                c.auth_index = int(toks[1])
                continue
            if not _is_digits(first):
                # never echo the line: it may hold a key
                self.err(line, "Invalid authnum [%s]; lines are 'auth N' or 'N method [key]', e.g. "
                               "'1 hmac-sha256 <long random secret>'" % first, 1)
                continue
            index = int(first)
            if index > MAX_AUTH_INDEX:
                self.err(line, "Invalid authnum [%d]; key indexes are 0 to %d" % (index, MAX_AUTH_INDEX), 1)
                continue
            if len(toks) < 2:
                self.err(line, "key %d has no method; write '%d hmac-sha256 <secret>' (or crc, md5, sha1)"
                         % (index, index), 1)
                bad.append(index)
                continue
            method = toks[1].lower()
            key = toks[2] if len(toks) > 2 else None
            if method not in AUTH_METHODS:
                self.err(line, "Invalid authtype [%s]; use one of %s" % (toks[1], ", ".join(AUTH_METHODS)), 1)
                bad.append(index)
                continue
            if len(toks) > 3:
                self.warn(line, "the key ends at the first blank: the %d words after it are ignored, as in "
                                "Heartbeat; a key cannot contain blanks" % (len(toks) - 3), 1)
            if method == "crc":
                if key is not None:
                    self.err(line, "Auth method [crc] doesn't use a key; write '%d crc' or, better, a keyed "
                                   "method: '%d hmac-sha256 <secret>'" % (index, index), 1)
                    bad.append(index)
                    continue
                self.warn(line, "auth method crc authenticates nothing: anyone on the serial line or LAN can "
                                "forge frames; use '%d hmac-sha256 <long random secret>'" % index, 1)
                key_bytes = None
            else:
                if key is None:
                    self.err(line, "Auth method [%s] requires a key: '%d %s <secret>'" % (method, index, method), 1)
                    bad.append(index)
                    continue
                key_bytes = key.encode()
                if len(key_bytes) < MIN_KEY_BYTES:
                    self.warn(line, "the %s key for index %d is only %d bytes; use at least %d random bytes "
                                    "(e.g. from 'openssl rand -hex 32')"
                              % (method, index, len(key_bytes), MIN_KEY_BYTES), 1)
            if index in key_lines:
                self.warn(line, "key index %d defined again (first on line %d); the later line is used"
                          % (index, key_lines[index]), 1)
            key_lines[index] = line
            c.auth_keys[index] = AuthKey(index, method, key_bytes)
        if c.auth_index is None:
            self.err(0, "Missing auth directive in keyfile [%s]; add a line 'auth N' naming the key to sign "
                        "with" % self.paths[1], 1)
        elif c.auth_index not in c.auth_keys and c.auth_index not in bad:
            self.err(auth_line, "Auth Key [%d] not found in keyfile [%s]; add a line '%d hmac-sha256 "
                                "<secret>' or change 'auth %d' to one of the listed keys"
                     % (c.auth_index, self.paths[1], c.auth_index, c.auth_index), 1)

    # -- haresources
    def haresources(self, text, nodes_known):
        logical = []
        pending, pending_line = None, 0
        for n, raw in enumerate(_split_lines(text)):
            line = n + 1
            hash_at = raw.find("#")
            body = raw if hash_at < 0 else raw[:hash_at]
            if pending is not None:
                if pending and body and not pending[-1].isspace() and not body[0].isspace():
                    self.warn(line, "line %d continues on line %d without a blank in between: they are "
                                    "joined into one word, as Heartbeat does; indent the continued line if "
                                    "the fields are separate" % (pending_line, line), 2)
                body = pending + body
                start = pending_line
            else:
                start = line
            if body.endswith("\\"):
                pending, pending_line = body[:-1], start
                continue
            if body.rstrip().endswith("\\"):
                self.warn(line, "blanks after the final '\\' mean the line is not continued (as in "
                                "Heartbeat); remove them to continue the line", 2)
            pending = None
            if body.strip():
                logical.append((start, body))
        if pending is not None and pending.strip():
            logical.append((pending_line, pending))

        keys = {}
        vips = {}
        too_many = False
        for (line, body) in logical:
            toks = body.split()
            node = toks[0].lower()
            if len(toks) < 2:
                self.err(line, "the group for [%s] lists no resources; write '<preferred node> <resource> "
                               "[<resource> ...]', e.g. 'node1 192.0.2.100 httpd'" % toks[0], 2)
                continue
            if nodes_known and node not in self.cfg.nodes:
                self.err(line, "preferred node [%s] is not a node in ha.cf (nodes: %s); the first field of "
                               "each line is the node the group prefers" % (node, ", ".join(self.cfg.nodes)), 2)
            key = toks[1]
            if key in keys:
                self.err(line, "group key [%s] is already used by the group on line %d; the first resource "
                               "of each line must be unique (groups are known by it)" % (key, keys[key]), 2)
            else:
                keys[key] = line
            resources = []
            for tok in toks[1:]:
                r = self._resource(line, tok)
                if r is None:
                    continue
                if r.is_ip and r.ip:
                    if r.ip in vips:
                        self.warn(line, "address %s is also managed by the group on line %d" % (r.ip, vips[r.ip]), 2)
                    else:
                        vips[r.ip] = line
                resources.append(r)
            if len(self.cfg.groups) >= MAX_GROUPS:
                if not too_many:
                    too_many = True
                    self.err(line, "more than %d resource groups: hanode's frame has one bit per group for "
                                   "%d groups; merge lines (a group may hold many resources)"
                             % (MAX_GROUPS, MAX_GROUPS), 2)
                continue
            self.cfg.groups.append(ResourceGroup(node, key, resources, line))
        if not logical:
            self.warn(0, "no resource groups: hanode will only exchange heartbeats; add a line such as "
                         "'node1 192.0.2.100 httpd'", 2)

    def _resource(self, line, tok):
        if _looks_like_ip(tok):
            script, args = "IPaddr", [tok]  # Heartbeat's canonname
        else:
            parts = tok.split("::")
            script = parts[0]
            # the shell splits the args on blanks later, so empty ones vanish
            args = [a for a in parts[1:] if a]
        if not script or "/" in script:
            self.err(line, "resource [%s]: the script name must be a plain file name, looked up in %s"
                     % (tok, " then ".join(self.cfg.resource_dirs or ["resource.d", "/etc/init.d"])), 2)
            return None
        r = Resource(tok, script, args)
        if script in ("IPaddr", "IPaddr2"):
            r.is_ip = True
            if len(args) != 1:
                self.err(line, "resource [%s]: %s takes one argument, "
                               "ip[/bits[/interface[:label]][/broadcast]], e.g. %s::192.0.2.100/24/eth0"
                         % (tok, script, script), 2)
                return None
            if not self._ip_arg(line, tok, args[0], r):
                return None
        return r

    def _ip_arg(self, line, tok, arg, r):
        comps = arg.split("/")
        ok = True
        if parse_ipv4(comps[0]) is None:
            self.err(line, "resource [%s]: [%s] is not an IPv4 address; write four numbers 0-255, e.g. "
                           "192.0.2.100" % (tok, comps[0]), 2)
            ok = False
        elif comps[0].startswith("0.") or comps[0].startswith("127.") or int(comps[0].split(".")[0]) >= 224:
            self.err(line, "resource [%s]: %s cannot be a service address (it is a 0/8, loopback, multicast "
                           "or reserved address)" % (tok, comps[0]), 2)
            ok = False
        r.ip = comps[0]
        if len(comps) > 1 and comps[1]:
            p = comps[1]
            if _is_digits(p) and int(p) <= 32:
                r.prefixlen = int(p)
            elif _mask_to_prefix(p) is not None:
                r.prefixlen = _mask_to_prefix(p)
            else:
                self.err(line, "resource [%s]: prefix [%s] must be a number of bits from 0 to 32 (or a "
                               "netmask such as 255.255.255.0)" % (tok, p), 2)
                ok = False
        bcast = None
        rest = comps[2:]
        if rest and rest[0] and rest[0][0] in _DIGITS:
            bcast = rest[0]  # a digit in the 3rd place means broadcast, no interface
            extra = rest[1:]
        else:
            if rest and rest[0]:
                dev, label = rest[0], None
                colon = dev.find(":")
                if colon >= 0:
                    dev, label = dev[:colon], dev
                if not dev or len(dev) > 15 or (label is not None and (label.endswith(":") or len(label) > 15)):
                    self.err(line, "resource [%s]: [%s] is not a valid interface[:label]; interface names "
                                   "and labels have at most 15 characters, e.g. eth0 or eth0:1" % (tok, rest[0]), 2)
                    ok = False
                else:
                    r.dev, r.label = dev, label
            bcast = rest[1] if len(rest) > 1 and rest[1] else None
            extra = rest[2:]
        if bcast is not None:
            if parse_ipv4(bcast) is None:
                self.err(line, "resource [%s]: broadcast [%s] is not an IPv4 address" % (tok, bcast), 2)
                ok = False
            else:
                r.broadcast = bcast
        if extra:
            self.err(line, "resource [%s]: too many '/' parts; the syntax is "
                           "ip[/bits[/interface[:label]][/broadcast]]" % tok, 2)
            ok = False
        return ok


def _looks_like_ip(tok):
    """Heartbeat's ``isip`` glob ``[0-9]*.[0-9]*.[0-9]*.[0-9]*``."""
    if not tok or tok[0] not in _DIGITS:
        return False
    pos = 0
    for _ in range(3):
        found = False
        while True:
            dot = tok.find(".", pos)
            if dot < 0:
                return False
            pos = dot + 1
            if pos < len(tok) and tok[pos] in _DIGITS:
                found = True
                break
        if not found:
            return False
    return True


_EXAMPLES = {
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
    "state_dir": "e.g. /var/lib/hanode",
    "control_socket": "e.g. /run/hanode/control.sock",
    "resource_dir": "e.g. 'resource_dir /etc/ha.d/resource.d'",
}


def _dirname(path):
    slash = path.rfind("/")
    if slash < 0:
        return ""
    return path[:slash] or "/"


def check(ha_cf_text, authkeys_text, haresources_text, me=None, paths=DEFAULT_PATHS, config_dir=None):
    """Parse without raising: ``(config or None, problems)``; config is None when any problem is an error.

    A text of None means the caller could not read that file (and reported it):
    its checks, and the cross-checks that need it, are skipped so the user does
    not get a cascade of follow-on errors.  ``config_dir`` (default: the directory
    of ``paths[0]``) is where the default ``resource.d`` is looked for.
    """
    if config_dir is None:
        config_dir = _dirname(paths[0])
    p = _Parser(paths, me, config_dir)
    if ha_cf_text is not None:
        p.ha_cf(ha_cf_text)
    else:
        p.cfg.resource_dirs = [_Parser._join(config_dir, "resource.d"), "/etc/init.d"]
    if authkeys_text is not None:
        p.authkeys(authkeys_text)
    if haresources_text is not None:
        p.haresources(haresources_text, ha_cf_text is not None and bool(p.cfg.nodes))
    problems = p.problems()
    for q in problems:
        if q.level == "error":
            return None, problems
    p.cfg.warnings = problems
    return p.cfg, problems


def parse(ha_cf_text, authkeys_text, haresources_text, me=None, paths=DEFAULT_PATHS, config_dir=None):
    """The three texts -> Config; raises ConfigError listing every problem if any is an error."""
    cfg, problems = check(ha_cf_text, authkeys_text, haresources_text, me, paths, config_dir)
    if cfg is None:
        raise ConfigError(problems)
    return cfg
