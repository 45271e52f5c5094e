"""``hanode export pacemaker``: the pair as a Pacemaker + Corosync cluster.

Theory of operation
-------------------
The configuration is read exactly as ``hanode run`` reads it (``hanode.configdir``),
so only a usable /etc/ha.d is exported.  ``translate`` turns the ``Config`` into an
``Export``: plain data (groups of primitives, cluster properties, the location
score and stickiness, corosync's timings and links, fencing) plus the list of
things that have no Pacemaker equivalent, each with file:line and the reason.
Writers then render that one model as a CIB (XML), a crm shell script, a pcs
script, corosync.conf, corosync's authkey and SBD's settings, so the formats
cannot disagree with each other.

The mapping, and why:

- each haresources line -> one ``group`` (Pacemaker starts a group's members
  left to right and stops them right to left, as hanode does);
- an address (bare, ``IPaddr::`` or ``IPaddr2::``) -> ``ocf:heartbeat:IPaddr2``
  with ``ip``, ``cidr_netmask``, ``nic``, ``iflabel``, ``broadcast`` from the
  ``ip/bits/iface:label/broadcast`` form, and hanode's gratuitous-ARP settings as
  ``arp_count``/``arp_interval``;
- a Heartbeat ``resource.d`` wrapper with ``::`` arguments (Filesystem, apache,
  portblock, ...) -> the OCF agent it wraps, each positional argument set as the
  OCF parameter the wrapper exports (read from heartbeat 3.0.6's resource.d and
  haresources2cib.py); any other script -> ``lsb:<name>`` (an init script), with
  a note when it has arguments (LSB scripts take none);
- the preferred node -> a location constraint of score ``LOCATION_SCORE``;
  ``auto_failback on`` (and legacy) -> resource-stickiness 0 (the group goes
  back), ``off`` -> ``STICKY`` (finite, far above the location score: the group
  stays; INFINITY would also defeat an explicit ``crm resource move``, whose
  constraint is INFINITY too);
- ``resource_timeout`` -> start/stop/monitor timeouts; monitors every
  ``deadtime`` (at least ``MIN_MONITOR_MS``): Pacemaker notices a dead service in
  the time hanode noticed a dead node;
- resource monitoring (``monitor_interval`` set): the monitor runs every
  ``monitor_interval`` with ``monitor_timeout``; hanode restarts a failed member
  and those after it in place, as Pacemaker restarts a group, at most
  ``monitor_failures`` times within ``monitor_window``, and hands the group over
  at the next failure: ``migration-threshold`` = monitor_failures + 1 (Pacemaker
  moves a resource at the failure that reaches the threshold) and
  ``failure-timeout`` = monitor_window;
- corosync: ``token`` = deadtime, ``consensus`` = 1.2 x token (corosync's own
  rule), per knet link ``knet_ping_interval`` = keepalive and
  ``knet_ping_timeout`` = warntime; links from the ``ucast`` addresses or
  ``--address``; ``two_node: 1``;
- authkeys -> ``crypto_cipher aes256``/``crypto_hash sha256`` and a 256-byte
  authkey derived from the signing key by HKDF-SHA256 (RFC 5869), so both boxes
  derive the same key and the corosync key is not hanode's key itself; ``crc``
  has no secret: a random key is written and the note says to copy it;
- ``watchdog`` -> SBD in watchdog-only mode (``stonith-watchdog-timeout`` = 2 x
  the watchdog timeout, SBD's documented rule); without it stonith is disabled
  (hanode had no fencing either) and the note says to add a fencing device.
"""
import argparse
import hashlib
import hmac
import os
import sys
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hanode.configdir import DEFAULT_DIR, check_dir, default_node_name
from hanode.core.config import Config, Problem, Resource, check

FORMATS = ("cib", "crm", "pcs")
CLUSTER_NAME = "hanode"
LOCATION_SCORE = 100  # haresources2cib.py's score for the preferred node
STICKY = 1000  # auto_failback off: well above LOCATION_SCORE, still below an explicit move
MIN_MONITOR_MS = 10000  # a monitor forks the agent; more often costs CPU for no gain
CONSENSUS_NUM, CONSENSUS_DEN = 12, 10  # corosync: consensus must be at least 1.2 x token
AUTHKEY_BYTES = 256  # what corosync-keygen writes (2048 bits; corosync needs 1024 to 4096)
HKDF_SALT = b"hanode export pacemaker"
HKDF_INFO = b"corosync authkey"
INIT_DIR = "/etc/init.d"  # where Pacemaker's lsb: class looks for scripts
UNTRANSLATED = "untranslated"
NOTE = "note"

# Heartbeat 3.0.6's resource.d wrappers: script -> (OCF agent, the parameter each positional
# '::' argument sets, the fewest arguments the wrapper accepts).  IPaddr/IPaddr2, SendArp,
# IPv6addr, AudibleAlarm and WAS split or join their arguments and are handled in _wrapper().
HEARTBEAT_WRAPPERS: Dict[str, Tuple[str, Tuple[str, ...], int]] = {
    "Filesystem": ("Filesystem", ("device", "directory", "fstype", "options"), 2),
    "IPsrcaddr": ("IPsrcaddr", ("ipaddress",), 1),
    "Delay": ("Delay", ("startdelay", "stopdelay"), 0),
    "MailTo": ("MailTo", ("email", "subject"), 1),
    "LVM": ("LVM", ("volgrpname",), 1),
    "Raid1": ("Raid1", ("raidconf", "raiddev"), 2),
    "apache": ("apache", ("configfile",), 0),
    "db2": ("db2", ("instance",), 1),
    "portblock": ("portblock", ("protocol", "portno", "action"), 3),
    "Xinetd": ("Xinetd", ("service",), 1),
    "WinPopup": ("WinPopup", ("hostfile",), 0),
    "ICP": ("ICP", ("driveid", "device"), 2),
    "LinuxSCSI": ("LinuxSCSI", ("scsi",), 1),
    "ServeRAID": ("ServeRAID", ("serveraid", "mergegroup"), 2),
    "ids": ("ids", ("informixdir", "informixserver", "onconfig"), 0),
    "SendArp": ("SendArp", ("ip", "nic"), 1),
    "IPv6addr": ("IPv6addr", ("ipv6addr", "cidr_netmask", "nic"), 1),
    "AudibleAlarm": ("AudibleAlarm", ("nodelist",), 0),
    "WAS": ("WAS", ("config",), 0),
}

# ha.cf directives with no Pacemaker/Corosync counterpart in the export, and why.
_HA_CF_UNTRANSLATED = {
    "serial": "a serial link cannot carry Corosync (knet needs IP over UDP or SCTP); replace the "
              "null-modem by a direct Ethernet cable between the boxes and give its addresses as a "
              "second knet link (--address NODE=LANIP,CABLEIP), so membership still has two paths",
    "baud": "goes with the serial link, which Corosync cannot use",
    "bcast": "knet sends unicast to each node's ringN_addr; the broadcast path becomes a knet link: "
             "give the addresses with --address",
    "mcast": "knet sends unicast to each node's ringN_addr; the multicast path becomes a knet link: "
             "give the addresses with --address",
    "respawn": "Pacemaker does not respawn helper programs: run it as a systemd service (Restart=always) "
               "or, if it must follow the resources, as a resource (ocf:pacemaker:... or lsb:) in the group",
    "ping": "ping nodes become an ocf:pacemaker:ping clone plus a location rule on the pingd attribute; "
            "not generated",
    "ping_group": "ping groups become an ocf:pacemaker:ping clone plus a location rule; not generated",
    "stonith": "Heartbeat STONITH plugin: define the matching fence device (pcs stonith create / crm "
               "configure primitive stonith:...) and set stonith-enabled=true",
    "stonith_host": "Heartbeat STONITH plugin: define the matching fence device (pcs stonith create / crm "
                    "configure primitive stonith:...) and set stonith-enabled=true",
    "vip_probe": "Pacemaker has no ARP probe before IPaddr2 starts: fencing (or a quorum device) is what "
                 "keeps a frozen node's address from being taken twice",
    "initdead": "corosync's two_node implies wait_for_all: at the first start each node waits for the "
                "other without a time limit (hanode waited initdead); set "
                "'wait_for_all: 0' in the quorum section if one box must be able to start alone",
}


class Primitive:
    """One Pacemaker primitive translated from one haresources token."""

    def __init__(self, rid: str, cls: str, provider: Optional[str], agent: str,
                 params: List[Tuple[str, str]], token: str) -> None:
        self.id = rid
        self.cls = cls
        self.provider = provider
        self.agent = agent
        self.params = params
        self.token = token

    @property
    def spec(self) -> str:
        """class:provider:type as crm and pcs write it."""
        return ":".join([p for p in (self.cls, self.provider, self.agent) if p])


class Group:
    def __init__(self, gid: str, key: str, preferred: str, line: int, primitives: List[Primitive]) -> None:
        self.id = gid
        self.key = key
        self.preferred = preferred
        self.line = line
        self.primitives = primitives


class Export:
    """Everything the writers render; one model for every format."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cluster_name = CLUSTER_NAME
        self.nodes: List[str] = list(cfg.nodes)
        self.groups: List[Group] = []
        self.properties: List[Tuple[str, str]] = []
        self.cib_properties: List[Tuple[str, str]] = []  # only in the CIB: the cluster maintains them
        self.stickiness = 0
        self.rsc_defaults: List[Tuple[str, str]] = []   # resource-stickiness, the failure policy
        self.op_timeout = _duration(cfg.resource_timeout_ms)
        self.monitor_interval = _duration(max(cfg.deadtime_ms, MIN_MONITOR_MS))
        self.monitor_timeout = self.op_timeout
        self.token_ms = cfg.deadtime_ms
        self.consensus_ms = (cfg.deadtime_ms * CONSENSUS_NUM + CONSENSUS_DEN - 1) // CONSENSUS_DEN
        self.ping_interval_ms = cfg.keepalive_ms
        self.ping_timeout_ms = max(cfg.warntime_ms, 2 * cfg.keepalive_ms)
        self.links: Dict[str, List[str]] = {}  # node -> ring0_addr, ring1_addr, ...
        self.crypto = ("aes256", "sha256")
        self.authkey = b""
        self.sbd: Optional[str] = None
        self.problems: List[Problem] = []

    def note(self, path: str, line: int, message: str, level: str = UNTRANSLATED) -> None:
        self.problems.append(Problem(path, line, message, level))


def _duration(ms: int) -> str:
    """Pacemaker's interval syntax: whole seconds as '15s', otherwise '500ms'."""
    return "%ds" % (ms // 1000) if ms % 1000 == 0 else "%dms" % ms


def _xml_id(text: str) -> str:
    """A CIB id (an XML ID: letters, digits, '_', '-', '.', not starting with a digit or '-')."""
    out = "".join(c if c.isalnum() and c.isascii() or c in "_-" else "_" for c in text)
    return out if out and (out[0].isalpha() or out[0] == "_") else "r_" + out


def hkdf_sha256(secret: bytes, length: int, salt: bytes = HKDF_SALT, info: bytes = HKDF_INFO) -> bytes:
    """RFC 5869 HKDF with SHA-256: extract with the salt, then expand to ``length`` bytes."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def directive_lines(path: str) -> Dict[str, List[int]]:
    """ha.cf directive (lower case) -> the lines it is on, so notes can point at them."""
    lines: Dict[str, List[int]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, raw in enumerate(f, 1):
                words = raw.split("#", 1)[0].split()
                if words:
                    lines.setdefault(words[0].lower(), []).append(n)
    except OSError:
        pass
    return lines


# ----------------------------------------------------------------------------- translation

def translate(cfg: Config, addresses: Optional[Dict[str, List[str]]] = None,
              random_bytes: Callable[[int], bytes] = os.urandom) -> Export:
    """Config (+ node addresses given by the user) -> Export with notes for what does not map."""
    ex = Export(cfg)
    ha_cf, authkeys, haresources = cfg.paths
    where = directive_lines(ha_cf)

    def first_line(name: str) -> int:
        return where.get(name, [0])[0]

    used_ids: Dict[str, int] = {}

    def unique(rid: str) -> str:
        rid = _xml_id(rid)
        n = used_ids.get(rid, 0)
        used_ids[rid] = n + 1
        return rid if n == 0 else "%s_%d" % (rid, n + 1)

    for g in cfg.groups:
        prims = [_primitive(ex, cfg, r, haresources, g.line, unique) for r in g.resources]
        gid = unique("grp_" + prims[0].id if prims else "grp_%d" % g.line)
        ex.groups.append(Group(gid, g.key, g.preferred, g.line, prims))

    ex.stickiness = STICKY if cfg.auto_failback == "off" else 0
    if cfg.auto_failback == "legacy":
        ex.note(ha_cf, 0, "no auto_failback line (Heartbeat's legacy): exported as auto_failback on "
                          "(resource-stickiness 0), as hanode runs it", NOTE)
    ex.rsc_defaults = [("resource-stickiness", str(ex.stickiness))]
    if cfg.monitor_interval_ms:
        _monitoring(ex, cfg, ha_cf, first_line("monitor_failures") or first_line("monitor_interval"))

    _fencing(ex, cfg, ha_cf, first_line("watchdog"))
    _links(ex, cfg, addresses or {}, ha_cf, where)
    _crypto(ex, cfg, authkeys, random_bytes)
    if ex.token_ms < 1000:
        ex.note(ha_cf, first_line("deadtime"),
                "deadtime %d ms becomes corosync's token timeout; below 1 s a loaded box or a busy LAN can "
                "lose membership for nothing (corosync's default is 3 s): raise 'token' if nodes flap"
                % ex.token_ms, NOTE)
    for name, why in sorted(_HA_CF_UNTRANSLATED.items()):
        if name == "vip_probe":
            if cfg.vip_probe:
                ex.note(ha_cf, first_line(name), "vip_probe on: " + why)
            continue
        for line in where.get(name, []):
            ex.note(ha_cf, line, "%s: %s" % (name, why))
    ex.problems.sort(key=lambda p: (p.path, p.line))
    return ex


def _primitive(ex: Export, cfg: Config, r: Resource, path: str, line: int,
               unique: Callable[[str], str]) -> Primitive:
    if r.is_ip:
        params = [("ip", r.ip)]
        if r.prefixlen is not None:
            params.append(("cidr_netmask", str(r.prefixlen)))
        if r.dev:
            params.append(("nic", r.dev))
        if r.label:
            params.append(("iflabel", r.label.split(":", 1)[1]))
        if r.broadcast:
            params.append(("broadcast", r.broadcast))
        params += [("arp_count", str(cfg.garp_count)), ("arp_interval", str(cfg.garp_interval_ms))]
        if r.prefixlen is None or not r.dev:
            ex.note(path, line, "%s: no %s given: IPaddr2 finds it from the routes of the node, as hanode "
                                "did" % (r.token, "prefix" if r.prefixlen is None else "interface"), NOTE)
        return Primitive(unique("ip_" + r.ip), "ocf", "heartbeat", "IPaddr2", params, r.token)
    wrapper = HEARTBEAT_WRAPPERS.get(r.script)
    if wrapper is not None:
        agent, names, fewest = wrapper
        values = _wrapper_args(r.script, list(r.args))
        if fewest <= len(values) <= len(names):
            params = [(n, v) for n, v in zip(names, values)]
            if r.script == "WAS" and values and values[0].isdigit():
                params = [("port", values[0])]
            if r.script == "LVM":
                ex.note(path, line, "%s: ocf:heartbeat:LVM is deprecated in resource-agents; consider "
                                    "ocf:heartbeat:LVM-activate (vgname=%s, vg_access_mode=...)"
                        % (r.token, values[0]), NOTE)
            prim = Primitive(unique("%s_%s" % (agent, values[0].strip("/")) if values else agent), "ocf",
                             "heartbeat", agent, params, r.token)
            if r.script == "Filesystem" and len(values) < 3:
                ex.note(path, line, "%s: no file system type: primitive %s has no fstype, which "
                                    "resource-agents' Filesystem declares required (crm and pcs refuse it "
                                    "without --force) although the agent then lets mount find the type; "
                                    "add fstype=<type>" % (r.token, prim.id))
            return prim
        ex.note(path, line, "%s: Heartbeat's %s wrapper takes %d to %d arguments (%s), this has %d: exported "
                            "as lsb:%s without arguments; fix the line or the primitive"
                % (r.token, r.script, fewest, len(names), " ".join(names), len(values), r.script))
        return Primitive(unique(r.script), "lsb", None, r.script, [], r.token)
    if r.args:
        ex.note(path, line, "%s: %s is not one of Heartbeat's resource.d wrappers and LSB init scripts take no "
                            "arguments: exported as lsb:%s without [%s]; write an init script that needs none "
                            "(or an OCF agent with parameters)" % (r.token, r.script, r.script, " ".join(r.args)))
    elif _only_in_resource_dir(cfg, r.script):
        ex.note(path, line, "%s: found in %s, but Pacemaker's lsb: class looks in %s only: copy it there"
                % (r.token, " or ".join(d for d in cfg.resource_dirs if d != INIT_DIR), INIT_DIR), NOTE)
    return Primitive(unique(r.script), "lsb", None, r.script, [], r.token)


def _wrapper_args(script: str, args: List[str]) -> List[str]:
    """Split or join arguments the way the wrapper script does before it calls the OCF agent."""
    if script == "SendArp" and len(args) == 1 and "/" in args[0]:
        return args[0].split("/", 1)  # ip/interface
    if script == "IPv6addr" and len(args) == 1:
        return args[0].split("/")[:3]  # addr/prefix/nic
    if script == "AudibleAlarm":
        return [" ".join(args)] if args else []
    return args


def _only_in_resource_dir(cfg: Config, script: str) -> bool:
    if os.path.exists(os.path.join(INIT_DIR, script)):
        return False
    return any(os.path.exists(os.path.join(d, script)) for d in cfg.resource_dirs if d != INIT_DIR)


def _fencing(ex: Export, cfg: Config, ha_cf: str, watchdog_line: int) -> None:
    if cfg.watchdog:
        # sbd(8): stonith-watchdog-timeout should be twice SBD_WATCHDOG_TIMEOUT
        ex.properties += [("stonith-enabled", "true"),
                          ("stonith-watchdog-timeout", "%ds" % (2 * cfg.watchdog_timeout_s))]
        # What the controller sets when it finds SBD running (and overwrites with what it finds):
        # written so the CIB checks offline as the cluster will run it; pcs and crm refuse to set it.
        ex.cib_properties.append(("have-watchdog", "true"))
        ex.sbd = ("# SBD settings (/etc/default/sbd on Debian, /etc/sysconfig/sbd elsewhere), written by\n"
                  "# 'hanode export pacemaker' from %s: watchdog-only SBD (no shared disk)\n"
                  "SBD_PACEMAKER=yes\nSBD_STARTMODE=always\nSBD_DELAY_START=no\n"
                  "SBD_WATCHDOG_DEV=%s\nSBD_WATCHDOG_TIMEOUT=%d\n" % (ha_cf, cfg.watchdog, cfg.watchdog_timeout_s))
        ex.note(ha_cf, watchdog_line,
                "watchdog %s: exported as SBD watchdog-only fencing (stonith-watchdog-timeout %ds). In a "
                "two-node cluster that is NOT enough: with two_node each node keeps quorum alone, so after a "
                "split neither self-fences and both run the groups. Add a quorum device (corosync-qdevice "
                "with a qnetd on a third machine, then drop two_node) or a fencing device (e.g. "
                "fence_ipmilan) before going live" % (cfg.watchdog, 2 * cfg.watchdog_timeout_s))
    else:
        ex.properties.append(("stonith-enabled", "false"))
        ex.note(ha_cf, 0, "no watchdog line: the cluster is exported with stonith-enabled=false (hanode had "
                          "no fencing either); Pacemaker is only safe with fencing: add a fence device "
                          "(pcs stonith create / crm configure primitive stonith:...) or SBD and set "
                          "stonith-enabled=true")


def _links(ex: Export, cfg: Config, given: Dict[str, List[str]], ha_cf: str,
           where: Dict[str, List[int]]) -> None:
    """Each node's knet link addresses: --address first, else the ucast lines."""
    by_dev: List[Tuple[str, List[str]]] = []
    for dev, ip in cfg.ucast:
        for d, ips in by_dev:
            if d == dev:
                ips.append(ip)
                break
        else:
            by_dev.append((dev, [ip]))
    ucast_line = where.get("ucast", [0])[0]
    links: Dict[str, List[Optional[str]]] = {n: [] for n in ex.nodes}
    for dev, ips in by_dev:
        if len(ips) == 2:
            # one ha.cf for both boxes lists both addresses; which is whose is not written down
            for node, ip in zip(ex.nodes, ips):
                links[node].append(ip)
            ex.note(ha_cf, ucast_line, "ucast %s: %s taken as %s's and %s as %s's (ha.cf node order); if that "
                                       "is wrong, give --address" % (dev, ips[0], ex.nodes[0], ips[1], ex.nodes[1]),
                    NOTE)
        elif len(ips) == 1 and cfg.me in ex.nodes and cfg.peer:
            links[cfg.peer].append(ips[0])  # Heartbeat's ucast names the peer
            links[cfg.me].append(None)
        else:
            for node in ex.nodes:
                links[node].append(None)
    for node, ips in given.items():
        links[node] = list(ips)
    count = max([len(v) for v in links.values()] + [0])
    if count == 0:
        ex.links = {n: [n] for n in ex.nodes}
        ex.note(ha_cf, where.get("serial", [0])[0],
                "no LAN heartbeat (ucast) in ha.cf and no --address: corosync needs IP addresses, so ring0_addr "
                "is each node's name (resolved by corosync at start, e.g. from /etc/hosts); give --address "
                "NODE=IP for both nodes")
        return
    for n in ex.nodes:
        links[n] += [None] * (count - len(links[n]))
    missing = [n for n in ex.nodes if links[n][0] is None]
    if missing:
        for n in missing:
            links[n][0] = n
        ex.note(ha_cf, ucast_line, "the address of %s on link 0 is not known: ring0_addr is the node name, "
                                   "which corosync resolves at start (/etc/hosts); better give --address %s=IP"
                % (" and ".join(missing), missing[0]))
    keep = [i for i in range(count) if all(links[n][i] is not None for n in ex.nodes)]
    if len(keep) < count:
        ex.note(ha_cf, ucast_line, "%d link(s) with an address for only one node left out (corosync needs every "
                                   "node on every link); give --address with every address of both nodes"
                % (count - len(keep)))
    ex.links = {n: [links[n][i] for i in keep] for n in ex.nodes}


def _crypto(ex: Export, cfg: Config, authkeys: str, random_bytes: Callable[[int], bytes]) -> None:
    key = cfg.auth_keys[cfg.auth_index]
    if key.key:
        ex.authkey = hkdf_sha256(key.key, AUTHKEY_BYTES)
        ex.note(authkeys, 0, "authkey: %d bytes derived from key %d (%s) with HKDF-SHA256 (salt %r, info %r): "
                             "the same on both boxes; install it as /etc/corosync/authkey, mode 0400"
                % (AUTHKEY_BYTES, key.index, key.method, HKDF_SALT.decode(), HKDF_INFO.decode()), NOTE)
    else:
        ex.authkey = random_bytes(AUTHKEY_BYTES)
        ex.note(authkeys, 0, "auth method crc has no secret to derive corosync's key from: a random authkey was "
                             "written; copy this one file to both nodes (or run corosync-keygen on one and copy it)")


# ----------------------------------------------------------------------------- writers

def _nvpairs(parent: ET.Element, prefix: str, pairs: Sequence[Tuple[str, str]]) -> None:
    for name, value in pairs:
        ET.SubElement(parent, "nvpair", id="%s-%s" % (prefix, _xml_id(name)), name=name, value=value)


def _ops(ex: Export) -> List[Tuple[str, str, str]]:
    """(name, interval, timeout) of every primitive's operations."""
    return [("start", "0s", ex.op_timeout), ("stop", "0s", ex.op_timeout),
            ("monitor", ex.monitor_interval, ex.monitor_timeout)]


def cib_xml(ex: Export) -> str:
    cib = ET.Element("cib", {"validate-with": "pacemaker-3.0", "admin_epoch": "0", "epoch": "1",
                             "num_updates": "0"})
    conf = ET.SubElement(cib, "configuration")
    props = ET.SubElement(ET.SubElement(conf, "crm_config"), "cluster_property_set", id="cib-bootstrap-options")
    _nvpairs(props, "cib-bootstrap-options", ex.properties + ex.cib_properties)  # cluster-name comes from corosync.conf
    nodes = ET.SubElement(conf, "nodes")
    for n in ex.nodes:
        ET.SubElement(nodes, "node", id=str(ex.cfg.node_index(n) + 1), uname=n)
    resources = ET.SubElement(conf, "resources")
    constraints = ET.SubElement(conf, "constraints")
    for g in ex.groups:
        group = ET.SubElement(resources, "group", id=g.id)
        for p in g.primitives:
            attrs = {"id": p.id, "class": p.cls, "type": p.agent}
            if p.provider:
                attrs["provider"] = p.provider
            prim = ET.SubElement(group, "primitive", attrs)
            if p.params:
                _nvpairs(ET.SubElement(prim, "instance_attributes", id=p.id + "-instance_attributes"),
                         p.id + "-instance_attributes", p.params)
            ops = ET.SubElement(prim, "operations")
            for name, interval, timeout in _ops(ex):
                ET.SubElement(ops, "op", id="%s-%s-interval-%s" % (p.id, name, interval), name=name,
                              interval=interval, timeout=timeout)
        ET.SubElement(constraints, "rsc_location", id="location-%s-%s" % (g.id, _xml_id(g.preferred)),
                      rsc=g.id, node=g.preferred, score=str(LOCATION_SCORE))
    meta = ET.SubElement(ET.SubElement(conf, "rsc_defaults"), "meta_attributes", id="rsc-options")
    _nvpairs(meta, "rsc-options", ex.rsc_defaults)
    ET.SubElement(cib, "status")
    ET.indent(cib)
    return ET.tostring(cib, encoding="unicode") + "\n"


def _quote(value: str) -> str:
    """A value for crm's and pcs's name=value words, quoted for the shell/crm lexer when needed."""
    if value and all(c.isalnum() or c in "._-/:,@+%" for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def _header(ex: Export, what: str) -> List[str]:
    return ["# %s written by 'hanode export pacemaker' from %s" % (what, ex.cfg.config_dir),
            "# read the notes (NOTES.txt or the command's stderr) before loading it"]


def _monitoring(ex: Export, cfg: Config, ha_cf: str, line: int) -> None:
    """ha.cf's monitor_* -> the monitor operation and the failure policy (see the module docstring)."""
    ex.monitor_interval = _duration(cfg.monitor_interval_ms)
    ex.monitor_timeout = _duration(cfg.monitor_timeout_ms)
    ex.rsc_defaults += [("migration-threshold", str(cfg.monitor_failures + 1)),
                        ("failure-timeout", _duration(cfg.monitor_window_ms))]
    ex.note(ha_cf, line, "when the peer cannot take a failing group either, hanode goes on restarting it in "
                         "place with back-off (at most 60 s) and raises an alarm; Pacemaker stops it on a node "
                         "whose fail count reached migration-threshold until failure-timeout has passed", NOTE)


def crm_script(ex: Export) -> str:
    """``crm configure load update <file>`` input."""
    out = _header(ex, "crm shell configuration")
    props = " ".join("%s=%s" % (n, _quote(v)) for n, v in ex.properties)
    out += ["node %d: %s" % (ex.cfg.node_index(n) + 1, n) for n in ex.nodes]
    out.append("property cib-bootstrap-options: %s" % props)
    out.append("rsc_defaults rsc-options: %s" % " ".join("%s=%s" % (n, _quote(v)) for n, v in ex.rsc_defaults))
    for g in ex.groups:
        for p in g.primitives:
            words = ["primitive", p.id, p.spec]
            if p.params:
                words.append("params")
                words += ["%s=%s" % (n, _quote(v)) for n, v in p.params]
            for name, interval, timeout in _ops(ex):
                words += ["op", name, "interval=%s" % interval, "timeout=%s" % timeout]
            out.append(" ".join(words))
        out.append("group %s %s" % (g.id, " ".join(p.id for p in g.primitives)))
        out.append("location location-%s-%s %s %d: %s" % (g.id, _xml_id(g.preferred), g.id, LOCATION_SCORE,
                                                          g.preferred))
    return "\n".join(out) + "\n"


def pcs_script(ex: Export) -> str:
    """A shell script of pcs commands: on a running cluster, or on a CIB file given as $1."""
    out = ["#!/bin/sh"] + _header(ex, "pcs commands") + [
        "# sh pcs.sh           edit a copy of the running cluster's CIB, then push it",
        "# sh pcs.sh FILE      edit FILE only (offline; e.g. 'cibadmin --empty > FILE')",
        "set -e",
        'if [ -n "${1:-}" ]; then cib=$1; push=no; else cib=$(mktemp); pcs cluster cib "$cib"; push=yes; fi',
    ]
    later = [(n, v) for n, v in ex.properties if n == "stonith-watchdog-timeout"]
    props = " ".join("%s=%s" % (n, _quote(v)) for n, v in ex.properties if (n, v) not in later)
    out.append('pcs -f "$cib" property set %s' % props)
    for n, v in later:
        # pcs refuses this property unless SBD is enabled on the machine running pcs
        out += ["if systemctl is-enabled sbd >/dev/null 2>&1; then",
                '    pcs -f "$cib" property set %s=%s' % (n, v),
                "else",
                "    echo \"hanode export: SBD is not enabled here; after 'pcs stonith sbd enable --watchdog=%s "
                "SBD_WATCHDOG_TIMEOUT=%d' run: pcs property set %s=%s\" >&2" % (ex.cfg.watchdog,
                                                                               ex.cfg.watchdog_timeout_s, n, v),
                "fi"]
    out.append('pcs -f "$cib" resource defaults update %s'
               % " ".join("%s=%s" % (n, _quote(v)) for n, v in ex.rsc_defaults))
    for g in ex.groups:
        for p in g.primitives:
            words = ['pcs -f "$cib" resource create', p.id, p.spec]
            words += ["%s=%s" % (n, _quote(v)) for n, v in p.params]
            for name, interval, timeout in _ops(ex):
                words += ["op", name, "interval=%s" % interval, "timeout=%s" % timeout]
            words += ["--group", g.id, "--no-default-ops", "--force"]
            out.append(" ".join(words))
        out.append('pcs -f "$cib" constraint location %s prefers %s=%d' % (g.id, g.preferred, LOCATION_SCORE))
    out.append('if [ $push = yes ]; then pcs cluster cib-push "$cib" --config; rm -f "$cib"; fi')
    return "\n".join(out) + "\n"


def corosync_conf(ex: Export) -> str:
    cfg = ex.cfg
    link_count = len(ex.links[ex.nodes[0]]) if ex.nodes else 0
    out = ["# corosync.conf written by 'hanode export pacemaker' from %s" % cfg.paths[0],
           "totem {", "    version: 2", "    cluster_name: %s" % ex.cluster_name, "    transport: knet",
           "    # deadtime %d ms: membership is lost after this much silence" % cfg.deadtime_ms,
           "    token: %d" % ex.token_ms,
           "    consensus: %d" % ex.consensus_ms,
           "    crypto_cipher: %s" % ex.crypto[0], "    crypto_hash: %s" % ex.crypto[1]]
    for i in range(link_count):
        out += ["    interface {", "        linknumber: %d" % i,
                "        # keepalive %d ms, warntime %d ms" % (cfg.keepalive_ms, cfg.warntime_ms),
                "        knet_ping_interval: %d" % ex.ping_interval_ms,
                "        knet_ping_timeout: %d" % ex.ping_timeout_ms, "    }"]
    out += ["}", "", "nodelist {"]
    for n in ex.nodes:
        out += ["    node {", "        name: %s" % n, "        nodeid: %d" % (cfg.node_index(n) + 1)]
        out += ["        ring%d_addr: %s" % (i, a) for i, a in enumerate(ex.links[n])]
        out.append("    }")
    out += ["}", "", "quorum {", "    provider: corosync_votequorum",
            "    # two nodes: each keeps quorum alone (implies wait_for_all); a quorum device is safer",
            "    two_node: 1", "}", "", "logging {", "    to_syslog: yes",
            "    syslog_facility: %s" % (cfg.logfacility if cfg.logfacility not in (None, "none") else "daemon"),
            "    to_stderr: no", "    timestamp: on", "}"]
    return "\n".join(out) + "\n"


def notes_text(ex: Export) -> str:
    if not ex.problems:
        return "everything in the configuration was translated\n"
    return "".join(str(p) + "\n" for p in ex.problems)


RENDER = {"cib": cib_xml, "crm": crm_script, "pcs": pcs_script}
FILES = {"cib": "cib.xml", "crm": "crm.txt", "pcs": "pcs.sh"}


def write_dir(ex: Export, out_dir: str) -> List[str]:
    """Every format plus corosync.conf, authkey (0400), sbd and NOTES.txt into out_dir; the paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    texts = [(FILES[f], RENDER[f](ex), 0o755 if f == "pcs" else 0o644) for f in FORMATS]
    texts += [("corosync.conf", corosync_conf(ex), 0o644), ("NOTES.txt", notes_text(ex), 0o644)]
    if ex.sbd:
        texts.append(("sbd", ex.sbd, 0o644))
    for name, text, mode in texts:
        path = os.path.join(out_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        written.append(path)
    key_path = os.path.join(out_dir, "authkey")
    if os.path.lexists(key_path):
        os.unlink(key_path)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(ex.authkey)
    os.chmod(key_path, 0o400)  # whatever the umask
    written.append(key_path)
    return written


# ----------------------------------------------------------------------------- command line

def _address(text: str) -> Tuple[str, List[str]]:
    node, sep, ips = text.partition("=")
    if not sep or not node or not ips:
        raise argparse.ArgumentTypeError("write NODE=IP[,IP...] (one address per corosync link), e.g. "
                                         "node1=192.0.2.11")
    return node.lower(), [ip for ip in ips.split(",") if ip]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Write the pair's configuration as a Pacemaker + Corosync cluster: the CIB (or the "
                          "same as crm or pcs commands), corosync.conf, corosync's authkey and, with a "
                          "watchdog, SBD's settings. Whatever has no equivalent is listed with file:line.")
    parser.add_argument("target", choices=["pacemaker"], help="what to export to (only pacemaker)")
    parser.add_argument("--config-dir", default=DEFAULT_DIR, metavar="DIR",
                        help="directory with ha.cf, authkeys and haresources (default: %(default)s)")
    parser.add_argument("--node", metavar="NAME", default=None,
                        help="read the files as this node (default: uname -n if it is a node in ha.cf, "
                             "else the first node)")
    parser.add_argument("--format", choices=FORMATS, default="cib",
                        help="what to print when there is no --output: the CIB XML, a crm shell script "
                             "(crm configure load update FILE) or a pcs script (default: %(default)s)")
    parser.add_argument("--output", metavar="DIR", default=None,
                        help="write every format, corosync.conf, authkey (mode 0400), sbd and NOTES.txt "
                             "into DIR instead of printing one format")
    parser.add_argument("--address", metavar="NODE=IP[,IP]", type=_address, action="append", default=[],
                        help="the node's address on each corosync link (repeat per node); default: from "
                             "the ucast lines")
    parser.add_argument("--cluster-name", default=CLUSTER_NAME, metavar="NAME",
                        help="corosync's and Pacemaker's cluster name (default: %(default)s)")


def load_for_export(config_dir: str, node: Optional[str]) -> Tuple[Optional[Config], List[Problem]]:
    """Read the directory as ``node``; when none is given and this machine is not a node, as the first one."""
    cfg, problems = check_dir(config_dir, node or default_node_name())
    errors = [p for p in problems if p.level == "error"]
    if cfg is None and node is None and errors and all(p.message.startswith("Current node [") for p in errors):
        try:
            with open(os.path.join(config_dir, "ha.cf"), encoding="utf-8", errors="replace") as f:
                nodes_only, _ = check(f.read(), None, None)
        except OSError:
            return cfg, problems
        if nodes_only is not None and nodes_only.nodes:
            return check_dir(config_dir, nodes_only.nodes[0])
    return cfg, problems


def run(args: argparse.Namespace) -> int:
    cfg, problems = load_for_export(args.config_dir, args.node.lower() if args.node else None)
    if cfg is None:
        for p in problems:
            print(p, file=sys.stderr)
        print("%s: not usable, nothing exported (fix the errors above; 'hanode check-config' explains them)"
              % args.config_dir, file=sys.stderr)
        return 1
    addresses = dict(args.address)
    unknown = [n for n in addresses if n not in cfg.nodes]
    if unknown:
        print("--address: %s is not a node in ha.cf (nodes: %s)" % (", ".join(unknown), ", ".join(cfg.nodes)),
              file=sys.stderr)
        return 2
    ex = translate(cfg, addresses)
    ex.cluster_name = args.cluster_name
    if args.output:
        for path in write_dir(ex, args.output):
            print(path)
    else:
        sys.stdout.write(RENDER[args.format](ex))
    sys.stderr.write(notes_text(ex))
    if not args.output:
        print("(corosync.conf, authkey and sbd are written only with --output DIR)", file=sys.stderr)
    return 0
