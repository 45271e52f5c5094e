"""The parsed configuration: ``Config`` and its parts, plain objects, no parsing here.

The limits the wire format and Heartbeat fix (baud rates, auth methods and key
index, groups, frame bytes) are defined once in ``hanode/core/limits.py``, shared
with the codec and the UART; the file parsers import them from here.
"""

from hanode.core.config.values import join_path
from hanode.core.limits import (AUTH_METHODS, BAUD_RATES, DEFAULT_BAUD, FRAME_WIRE_BYTES,  # noqa: F401
                                FRAME_WIRE_BYTES_CRC, MAX_AUTH_INDEX, MAX_GROUPS, DEFAULT_RESTART_GRACE_MS)

MIN_KEY_BYTES = 16
# The media hanode actually sends on; the others are read (Heartbeat counts them) but unused.
USABLE_MEDIA = ("serial", "ucast")
DEFAULT_PATHS = ("/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/ha.d/haresources")
# ha.cf stop_failure: what a stop that still fails after its retries leads to (issue 13 finding 3).
STOP_FAILURE_FENCE = "fence"     # stop petting the watchdog: the box resets (default with a watchdog)
STOP_FAILURE_BLOCK = "block"     # stay put, alarmed, peer barred (default without: Pacemaker's block)
STOP_FAILURE_REBOOT = "reboot"   # run reboot_command (Heartbeat's ResourceManager: reboot -nf)
STOP_FAILURE_ACTIONS = (STOP_FAILURE_FENCE, STOP_FAILURE_BLOCK, STOP_FAILURE_REBOOT)
DEFAULT_REBOOT_COMMAND = ("/sbin/reboot", "-nf")
# Resource monitoring (ha.cf monitor_*; hanode/core/monitor.py).  A status check gets Pacemaker's
# default operation timeout; 3 restarts in place within 10 minutes, then the group moves.
DEFAULT_MONITOR_TIMEOUT_MS = 20000
DEFAULT_MONITOR_FAILURES = 3
DEFAULT_MONITOR_WINDOW_MS = 600000


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
        self.baud = DEFAULT_BAUD
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
        self.ping = []          # ping node addresses: each one counts in the LAN health (health.py)
        self.ping_groups = []   # (name, [addresses]): one ping node, up while any member answers
        self.deadping_ms = None # a ping node is lost after this long without an answer; None: deadtime
                                # (deadping() resolves it)
        self.realtime = True
        self.rtprio = None
        self.crm = False
        # hanode extensions
        self.vip_probe = True
        self.probe_count = 3
        self.probe_interval_ms = 5
        # after the last probe: a holder's kernel answers from softirq in < 2 ms even on a busy box
        # (arp.py's docstring), and an answer later than this still reaches the conflict watch
        self.probe_wait_ms = 10
        self.garp_count = 5
        self.garp_interval_ms = 200
        self.watchdog_timeout_s = None
        self.watchdog_required = False  # on: a watchdog that cannot be opened stops the start
        self.stop_failure = None        # fence | block | reboot; None until parsed: fence with a watchdog
        self.reboot_command = list(DEFAULT_REBOOT_COMMAND)
        self.state_dir = "/var/lib/hanode"
        self.control_socket = "/run/hanode/control.sock"
        self.resource_dirs = None
        self.resource_timeout_ms = 30000
        self.restart_grace_ms = DEFAULT_RESTART_GRACE_MS   # how long the peer waits for our restarted agent
        # resource monitoring (issue 14): off unless monitor_interval is given (Heartbeat never
        # called a script's status after its start; a migrated ha.cf behaves as it did)
        self.monitor_interval_ms = 0
        self.monitor_timeout_ms = DEFAULT_MONITOR_TIMEOUT_MS
        self.monitor_failures = DEFAULT_MONITOR_FAILURES
        self.monitor_window_ms = DEFAULT_MONITOR_WINDOW_MS
        # auth
        self.auth_index = None
        self.auth_keys = {}
        # resources
        self.groups = []
        # bookkeeping
        self.extra = []  # (directive, value) accepted for Heartbeat's sake, file order
        self.lines = {}  # (directive, value) -> its ha.cf line, for checks made later (check-config's I/O)
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

    def deadping(self):
        """How long a ping node may stay silent before it is lost (ha.cf deadping; default deadtime)."""
        return self.deadping_ms if self.deadping_ms is not None else self.deadtime_ms

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
            "stop_failure": self.stop_failure,
            "reboot_command": list(self.reboot_command),
            "logfile": self.logfile,
            "debugfile": self.debugfile,
            "logfacility": self.logfacility,
            "use_logd": self.use_logd,
            "debug": self.debug,
            "respawn": [[u, list(argv)] for (u, argv) in self.respawn],
            "ping": list(self.ping),
            "ping_groups": [[name, list(addrs)] for (name, addrs) in self.ping_groups],
            "deadping_ms": self.deadping_ms,
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
            "restart_grace_ms": self.restart_grace_ms,
            "monitor_interval_ms": self.monitor_interval_ms,
            "monitor_timeout_ms": self.monitor_timeout_ms,
            "monitor_failures": self.monitor_failures,
            "monitor_window_ms": self.monitor_window_ms,
            "auth": {"index": self.auth_index, "method": self.auth_method(), "methods": methods},
            "groups": [g.to_dict() for g in self.groups],
            "extra": [[n, v] for (n, v) in self.extra],
            "paths": list(self.paths),
            "config_dir": self.config_dir,
        }


def default_resource_dirs(config_dir):
    """Where resource scripts are looked up without a resource_dir line, as Heartbeat does."""
    return [join_path(config_dir, "resource.d"), "/etc/init.d"]
