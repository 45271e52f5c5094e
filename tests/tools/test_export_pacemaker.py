"""``hanode export pacemaker`` checked by Pacemaker's and Corosync's own tools.

Every exported CIB goes through ``crm_verify``; placement is decided by
``crm_simulate`` and compared with what hanode's core does in the simulated pair
(tests/support/sim.py) for the same files; ``corosync -t`` parses corosync.conf and
reads the authkey inside a network namespace that owns the node's address (it
insists on finding the local node); the crm and pcs scripts are run against an
empty CIB file offline and must build the same configuration as the CIB.
Missing tools skip with the reason; ``tools/setup --test`` installs them.
"""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from hanode.configdir import load
from hanode.export import pacemaker
from hanode.lab.bed import Lab
from tests.support.sim import Sim

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODES = ("node1", "node2")
ADDRESSES = {"node1": "192.0.2.11", "node2": "192.0.2.12"}
KEY = "1 hmac-sha256 4a1f0c9e7d2b5a8f3e6c1d0b9a7f5e3c"

CRM_EX_CONFIG = 78  # crm_verify's exit status for "Warnings found during check: config may not be valid"
# crm_verify warnings on a CIB without a status section, and why they are expected:
EXPLAINED_WARNINGS = {
    # no node has joined, so there is no membership and no quorum (a running two_node cluster has it)
    "Fencing and resource management disabled due to lack of quorum",
    # nodes never seen are unclean until they join (startup-fencing); with watchdog fencing a node
    # that never joined cannot be fenced through its own watchdog
    "is unclean but cannot be fenced",
    # without a watchdog line the export disables stonith (hanode had no fencing either; the notes
    # say to add a fence device): nodes never seen are then trusted to be down
    "Blind faith: not fencing unseen nodes",
}

HA_CF_BASE = """keepalive 1
warntime 5
deadtime 15
initdead 60
baud 19200
serial /dev/ttyS0
auto_failback {failback}
node node1
node node2
"""

# haresources forms: multiple groups on both nodes, IPaddr/IPaddr2 with mask, interface, label
# and broadcast, Heartbeat's Filesystem/apache/portblock wrappers, init scripts with and without
# arguments.
FORMS = {
    "two-groups": "node1 192.0.2.100 httpd\nnode2 192.0.2.101/24 mysql\n",
    "ipaddr-forms": ("node1 IPaddr::192.0.2.100/24/eth0 IPaddr2::192.0.2.102/24/eth0:web/192.0.2.255 httpd\n"
                     "node2 192.0.2.101/255.255.255.0/eth1\n"),
    "filesystem": ("node2 Filesystem::/dev/sdb1::/srv/data::ext4 Filesystem::/dev/sdc1::/srv/logs 192.0.2.103 "
                   "nfs-kernel-server\n"),
    "wrappers-and-args": ("node1 192.0.2.100 apache::/etc/apache2/apache2.conf portblock::tcp::80,443::unblock "
                          "MailTo::root::failover myapp::--fast::eu\n"
                          "node2 Delay::5::2 IPsrcaddr::192.0.2.104 SendArp::192.0.2.105/eth0\n"),
}


# resource monitoring (issue 14): every 2 s, 5 s per check, 2 restarts in place within 300 s
MONITORED = "monitor_interval 2\nmonitor_timeout 5\nmonitor_failures 2\nmonitor_window 300\n"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed (tools/setup --test installs it)" % name)
    return path


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("corosync -t runs in a network namespace that owns the node's address: needs root")


def _write_dir(path, ha_cf: str, haresources: str, authkeys: str = "auth 1\n%s\n" % KEY) -> str:
    os.makedirs(str(path), exist_ok=True)
    for name, text in (("ha.cf", ha_cf), ("authkeys", authkeys), ("haresources", haresources)):
        with open(os.path.join(str(path), name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(str(path), "authkeys"), 0o600)
    return str(path)


def _copy_example(name: str, dest) -> str:
    d = str(dest)
    shutil.copytree(os.path.join(REPO, "examples", name), d)
    os.chmod(os.path.join(d, "authkeys"), 0o600)  # git keeps no modes; hanode refuses a readable key
    return d


def _seed(dest) -> str:
    """The demo/lab's configuration, written by hanode.lab itself (no namespaces needed for that)."""
    lab = Lab(workdir=str(dest))
    lab.write_config("node1")
    return os.path.join(lab.node_dir("node1"), "ha.d")


def _sources(tmp_path):
    yield "seed", _seed(tmp_path / "seed")
    yield "classic", _copy_example("classic", tmp_path / "classic")
    yield "tight", _copy_example("tight", tmp_path / "tight")
    for name, haresources in sorted(FORMS.items()):
        yield name, _write_dir(tmp_path / name, HA_CF_BASE.format(failback="on"), haresources)
    yield "monitored", _write_dir(tmp_path / "monitored", HA_CF_BASE.format(failback="on") + MONITORED,
                                  FORMS["two-groups"])
    yield "watchdog-ucast-off", _write_dir(
        tmp_path / "wd", HA_CF_BASE.format(failback="off") + "watchdog /dev/watchdog\nucast eth1 192.0.2.11\n"
        "ucast eth1 192.0.2.12\n", FORMS["two-groups"])


def _export(config_dir: str, out_dir: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    argv = [sys.executable, "-m", "hanode", "export", "pacemaker", "--config-dir", config_dir, "--node", "node1",
            "--output", out_dir] + list(extra)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def _addresses_args(config_dir: str):
    cfg = load(config_dir, "node1")
    if cfg.ucast:
        return []
    return ["--address", "node1=%s" % ADDRESSES["node1"], "--address", "node2=%s" % ADDRESSES["node2"]]


def _verify(cib: str):
    result = subprocess.run([_tool("crm_verify"), "--xml-file", cib, "-VV"], capture_output=True, text=True,
                            timeout=60)
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    return result.returncode, lines


# --------------------------------------------------------------------------- crm_verify

def test_crm_verify_accepts_every_export(tmp_path):
    checked = []
    for name, config_dir in _sources(tmp_path):
        out = str(tmp_path / ("out-" + name))
        _export(config_dir, out, *_addresses_args(config_dir))
        cib = os.path.join(out, "cib.xml")
        rc, lines = _verify(cib)
        errors = [ln for ln in lines if "error" in ln.lower() and "warning" not in ln.lower()]
        assert not errors, (name, lines)
        warnings = [ln for ln in lines if "warning:" in ln]
        unexplained = [w for w in warnings if not any(e in w for e in EXPLAINED_WARNINGS)]
        assert not unexplained, (name, lines)
        assert rc == 0 or (rc == CRM_EX_CONFIG and warnings), (name, rc, lines)
        # the same CIB once both nodes have joined (with quorum and, if configured, SBD's watchdog):
        # no error, and no warning but the one about disabled fencing when there is no watchdog
        running = str(tmp_path / ("running-" + name + ".xml"))
        watchdog = _has_watchdog(cib)
        _simulate(cib, running, ["-u", "node1", "-u", "node2"], watchdog)
        rc, lines = _verify(running)
        assert rc == 0 and all(not watchdog and "Blind faith" in ln for ln in lines), (name, lines)
        checked.append(name)
    assert len(checked) == 3 + len(FORMS) + 2   # seed, classic, tight; the forms; monitored, watchdog


def test_crm_verify_catches_a_broken_cib(tmp_path):
    """The check above can fail: a group pointing at a node-less location with a bad score is refused."""
    out = str(tmp_path / "out")
    _export(_copy_example("classic", tmp_path / "classic"), out)
    cib = os.path.join(out, "cib.xml")
    with open(cib) as f:
        text = f.read()
    with open(cib, "w") as f:
        f.write(text.replace('type="IPaddr2"', 'type="IPaddr2" bogus="1"'))
    rc, lines = _verify(cib)
    assert rc != 0 and any("error" in ln.lower() for ln in lines), lines


# --------------------------------------------------------------------------- placement

def _has_watchdog(cib: str) -> bool:
    return any(nv.get("name") == "stonith-watchdog-timeout" for nv in ET.parse(cib).iter("nvpair"))


def _simulate(cib_in: str, cib_out: str, events, watchdog: bool) -> None:
    argv = [_tool("crm_simulate"), "--simulate", "--xml-file", cib_in, "--quorum", "1", "--save-output", cib_out]
    if watchdog:
        argv += ["--watchdog", "1"]  # what the controller sets when SBD runs
    result = subprocess.run(argv + list(events), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _placement(cib: str, groups) -> dict:
    """group id -> the node all its members run on, from the status section crm_simulate wrote."""
    running = {}
    for state in ET.parse(cib).iter("node_state"):
        if state.get("crmd") != "online" or state.get("in_ccm") != "true":  # a member of the cluster
            continue
        for rsc in state.iter("lrm_resource"):
            last = [op for op in rsc.iter("lrm_rsc_op") if op.get("id", "").endswith("_last_0")]
            if last and last[0].get("rc-code") == "0" and last[0].get("operation") in ("start", "monitor"):
                running.setdefault(rsc.get("id"), []).append(state.get("uname"))
    out = {}
    for g in groups:
        nodes = {tuple(running.get(p.id, [])) for p in g.primitives}
        assert len(nodes) == 1, (g.id, running)  # a group runs together
        (where,) = nodes
        out[g.key] = where[0] if len(where) == 1 else (None if not where else where)
    return out


def _rebooted(cib: str, node: str) -> None:
    """A node that lost power comes back with nothing running: its controller erases its resource
    history when it joins.  crm_simulate --node-up keeps the history (fencing would have erased
    it, but without a watchdog the export has no fencing), so erase it here as the join does."""
    tree = ET.parse(cib)
    for state in tree.iter("node_state"):
        if state.get("uname") == node:
            for lrm in list(state):
                state.remove(lrm)
    tree.write(cib)


def _hanode_placements(haresources: str, failback: str) -> list:
    """The same three steps in hanode's core: both up; node1 loses power; node1 back."""
    sim = Sim(failback=failback, haresources=haresources)
    keys = [g.key for g in sim.cfg.groups]

    def settled():
        return all(sim.settled(k) for k in keys)

    def holders():
        return {k: (sim.holders(k)[0] if len(sim.holders(k)) == 1 else None) for k in keys}

    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(settled, 10000) is not None
    sim.run(2000)
    steps = [holders()]
    sim.power_off("node1")
    assert sim.run_until(lambda: all(sim.holders(k) == ["node2"] for k in keys), 10000) is not None
    sim.run(2000)
    steps.append(holders())
    sim.power_on("node1")
    sim.run(5000)
    assert sim.run_until(settled, 10000) is not None
    steps.append(holders())
    assert sim.doubles_ms == 0
    return steps


@pytest.mark.parametrize("failback", ["on", "off"])
@pytest.mark.parametrize("form", ["two-groups", "ipaddr-forms", "filesystem"])
@pytest.mark.parametrize("watchdog", [False, True])
def test_crm_simulate_places_groups_as_hanode_does(tmp_path, failback, form, watchdog):
    haresources = FORMS[form]
    ha_cf = HA_CF_BASE.format(failback=failback) + ("watchdog /dev/watchdog\n" if watchdog else "")
    config_dir = _write_dir(tmp_path / "ha.d", ha_cf, haresources)
    out = str(tmp_path / "out")
    _export(config_dir, out)
    cib = os.path.join(out, "cib.xml")
    groups = pacemaker.translate(load(config_dir, "node1")).groups
    both, failed, back = (str(tmp_path / n) for n in ("both.xml", "failed.xml", "back.xml"))
    _simulate(cib, both, ["--node-up", "node1", "--node-up", "node2"], watchdog)
    _simulate(both, failed, ["--node-fail", "node1"], watchdog)
    _rebooted(failed, "node1")
    _simulate(failed, back, ["--node-up", "node1"], watchdog)
    pacemaker_steps = [_placement(p, groups) for p in (both, failed, back)]
    hanode_steps = _hanode_placements(haresources, failback)
    assert pacemaker_steps == hanode_steps
    # and what that means: preferred nodes first, all on the survivor, back only with failback on
    preferred = {g.key: g.preferred for g in groups}
    assert pacemaker_steps[0] == preferred
    assert set(pacemaker_steps[1].values()) == {"node2"}
    assert pacemaker_steps[2] == (preferred if failback == "on" else pacemaker_steps[1])


def test_monitoring_maps_to_the_monitor_op_and_the_failure_policy(tmp_path):
    config_dir = _write_dir(tmp_path / "ha.d", HA_CF_BASE.format(failback="on") + MONITORED, FORMS["two-groups"])
    out = str(tmp_path / "out")
    notes = _export(config_dir, out).stderr
    tree = ET.parse(os.path.join(out, "cib.xml"))
    monitors = {(op.get("interval"), op.get("timeout")) for op in tree.iter("op") if op.get("name") == "monitor"}
    assert monitors == {("2s", "5s")}
    defaults = {nv.get("name"): nv.get("value") for nv in tree.find(".//rsc_defaults").iter("nvpair")}
    assert defaults == {"resource-stickiness": "0", "migration-threshold": "3", "failure-timeout": "300s"}
    assert re.search(r"ha\.cf:\d+: .*back-off", notes), notes
    # without monitor_interval hanode does not monitor: the export keeps its slower default monitor
    # and Pacemaker's own failure policy (no threshold)
    plain = _write_dir(tmp_path / "plain", HA_CF_BASE.format(failback="on"), FORMS["two-groups"])
    _export(plain, str(tmp_path / "plain-out"))
    tree = ET.parse(os.path.join(str(tmp_path / "plain-out"), "cib.xml"))
    assert {op.get("interval") for op in tree.iter("op") if op.get("name") == "monitor"} == {"15s"}
    assert [nv.get("name") for nv in tree.find(".//rsc_defaults").iter("nvpair")] == ["resource-stickiness"]


# --------------------------------------------------------------------------- corosync

def _corosync_test(conf: str, key: str, address: str, tmp_path) -> subprocess.CompletedProcess:
    """corosync -t on a copy of conf that names the exported key file, in a namespace owning address."""
    corosync = _tool("corosync")
    with open(conf) as f:
        text = f.read()
    copy = str(tmp_path / ("corosync-%s.conf" % address))
    with open(copy, "w") as f:  # the exported file uses corosync's default /etc/corosync/authkey
        text = text.replace("to_stderr: no", "to_stderr: yes")  # its reasons, for the assertions
        f.write(text.replace("totem {\n", "totem {\n    keyfile: %s\n" % key, 1))
    ns = "hnexp%d%s" % (os.getpid(), address.split(".")[-1])
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for args in (["link", "set", "lo", "up"], ["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                     ["addr", "add", address + "/24", "dev", "v0"], ["link", "set", "v0", "up"]):
            subprocess.run(["ip", "-n", ns] + args, check=True)
        return subprocess.run(["ip", "netns", "exec", ns, corosync, "-t", "-c", copy], capture_output=True,
                              text=True, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def test_corosync_accepts_the_exported_conf_and_key(tmp_path):
    _need_root()
    for name, config_dir in _sources(tmp_path):
        out = str(tmp_path / ("out-" + name))
        _export(config_dir, out, *_addresses_args(config_dir))
        conf, key = os.path.join(out, "corosync.conf"), os.path.join(out, "authkey")
        assert os.stat(key).st_mode & 0o777 == 0o400
        for node in NODES:
            result = _corosync_test(conf, key, ADDRESSES[node], tmp_path)
            assert result.returncode == 0, (name, node, result.stdout + result.stderr)


def test_corosync_check_can_fail(tmp_path):
    """A short key and a bad hash are refused: the check above is a real one."""
    _need_root()
    out = str(tmp_path / "out")
    config_dir = _copy_example("tight", tmp_path / "tight")
    _export(config_dir, out, *_addresses_args(config_dir))
    conf, key = os.path.join(out, "corosync.conf"), os.path.join(out, "authkey")
    short = str(tmp_path / "short")
    with open(short, "wb") as f:
        f.write(b"x" * 64)
    result = _corosync_test(conf, short, ADDRESSES["node1"], tmp_path)
    assert result.returncode != 0 and "minimum 1024 bits" in result.stdout + result.stderr
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("crypto_hash: sha256", "crypto_hash: sha257"))
    result = _corosync_test(conf, key, ADDRESSES["node1"], tmp_path)
    assert result.returncode != 0 and "hash" in (result.stdout + result.stderr).lower()


# --------------------------------------------------------------------------- crm and pcs scripts

def _model(cib: str) -> dict:
    """What a CIB configures, independent of ids the tools invent and of the order of attributes."""
    root = ET.parse(cib).getroot()
    groups = {}
    for g in root.iter("group"):
        members = []
        for p in g.iter("primitive"):
            params = tuple(sorted((nv.get("name"), nv.get("value")) for ia in p.iter("instance_attributes")
                                  for nv in ia.iter("nvpair")))
            ops = tuple(sorted((op.get("name"), op.get("interval"), op.get("timeout")) for op in p.iter("op")))
            members.append((p.get("id"), p.get("class"), p.get("provider"), p.get("type"), params, ops))
        groups[g.get("id")] = members
    locations = sorted((c.get("rsc"), c.get("node"), c.get("score")) for c in root.iter("rsc_location"))
    defaults = sorted((nv.get("name"), nv.get("value")) for rd in root.iter("rsc_defaults") for nv in rd.iter("nvpair"))
    props = sorted((nv.get("name"), nv.get("value")) for cp in root.iter("cluster_property_set")
                   for nv in cp.iter("nvpair") if nv.get("name") != "have-watchdog")
    return {"groups": groups, "locations": locations, "defaults": defaults, "properties": props}


def _empty_cib(path: str) -> str:
    with open(path, "w") as f:
        subprocess.run([_tool("cibadmin"), "--empty"], stdout=f, check=True)
    return path


# init scripts of the exported groups do not exist on the test machine: the tools say so
_MISSING_LSB = re.compile(r"lsb:[\w.-]+: (got no meta-data|no such resource agent)|"
                          r"Agent 'lsb:[\w.-]+' is not installed")


_NO_FENCING = re.compile(r"no STONITH resources have been defined|disable STONITH with the stonith-enabled|"
                         r"Clusters with shared data need STONITH|Errors found during check: config not valid")


def _listed_fstype(line: str, notes: str) -> bool:
    """crm's complaint about a Filesystem without fstype, for a primitive the notes list."""
    m = re.search(r"(\S+): required parameter \"fstype\" not defined", line)
    return bool(m) and ("primitive %s has no fstype" % m.group(1).split("m: ")[-1]) in notes


def test_crm_script_builds_the_same_cib_offline(tmp_path):
    crm = _tool("crm")
    for name, config_dir in _sources(tmp_path):
        out = str(tmp_path / ("out-" + name))
        _export(config_dir, out, *_addresses_args(config_dir))
        target = _empty_cib(str(tmp_path / ("crm-%s.xml" % name)))
        env = dict(os.environ, CIB_file=target)
        # -F: commit although the lsb: scripts are not installed here (they are on the nodes)
        result = subprocess.run([crm, "-F", "configure", "load", "update", os.path.join(out, "crm.txt")],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, (name, result.stdout + result.stderr)
        with open(os.path.join(out, "NOTES.txt")) as f:
            notes = f.read()
        # crm verifies before it commits; offline no SBD runs, so the watchdog-only CIB has no fencing
        # there (have-watchdog is what the controller sets where SBD runs; crm cannot set it)
        no_sbd_here = _has_watchdog(os.path.join(out, "cib.xml"))
        errors = [ln for ln in (result.stdout + result.stderr).splitlines()
                  if "ERROR" in ln and not _MISSING_LSB.search(ln) and "lack of quorum" not in ln
                  and not _listed_fstype(ln, notes) and not (no_sbd_here and _NO_FENCING.search(ln))]
        assert not errors, (name, errors)
        assert _model(target) == _model(os.path.join(out, "cib.xml")), name
        rc, lines = _verify(target)
        assert not [ln for ln in lines if not any(e in ln for e in EXPLAINED_WARNINGS)
                    and not (no_sbd_here and _NO_FENCING.search(ln))], (name, lines)


@pytest.mark.slow  # ~60 pcs runs of 1-2 s each (pcs starts a Python interpreter and crm_resource)
def test_pcs_script_builds_the_same_cib_offline(tmp_path):
    _tool("pcs")
    for name, config_dir in _sources(tmp_path):
        out = str(tmp_path / ("out-" + name))
        _export(config_dir, out, *_addresses_args(config_dir))
        target = _empty_cib(str(tmp_path / ("pcs-%s.xml" % name)))
        result = subprocess.run(["sh", os.path.join(out, "pcs.sh"), target], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, (name, result.stdout + result.stderr)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error")]
        assert not errors, (name, errors)
        expected = _model(os.path.join(out, "cib.xml"))
        if _has_watchdog(os.path.join(out, "cib.xml")):
            # pcs sets stonith-watchdog-timeout only where SBD is enabled; the script says what to run
            assert "after 'pcs stonith sbd enable --watchdog=/dev/watchdog" in result.stderr
            expected["properties"] = [p for p in expected["properties"] if p[0] != "stonith-watchdog-timeout"]
        assert _model(target) == expected, name


# --------------------------------------------------------------------------- the translation itself

def test_translation_of_haresources_forms(tmp_path):
    config_dir = _write_dir(tmp_path / "d", HA_CF_BASE.format(failback="off"),
                            FORMS["ipaddr-forms"] + FORMS["filesystem"].replace("node2", "node1", 1)
                            + FORMS["wrappers-and-args"])
    ex = pacemaker.translate(load(config_dir, "node1"))
    prims = {p.token: p for g in ex.groups for p in g.primitives}
    assert prims["IPaddr::192.0.2.100/24/eth0"].spec == "ocf:heartbeat:IPaddr2"
    assert dict(prims["IPaddr::192.0.2.100/24/eth0"].params)["nic"] == "eth0"
    label = dict(prims["IPaddr2::192.0.2.102/24/eth0:web/192.0.2.255"].params)
    assert (label["ip"], label["cidr_netmask"], label["nic"], label["iflabel"], label["broadcast"]) == \
        ("192.0.2.102", "24", "eth0", "web", "192.0.2.255")
    assert dict(prims["192.0.2.101/255.255.255.0/eth1"].params)["cidr_netmask"] == "24"
    fs = prims["Filesystem::/dev/sdb1::/srv/data::ext4"]
    assert fs.spec == "ocf:heartbeat:Filesystem"
    assert fs.params == [("device", "/dev/sdb1"), ("directory", "/srv/data"), ("fstype", "ext4")]
    assert dict(prims["portblock::tcp::80,443::unblock"].params) == {"protocol": "tcp", "portno": "80,443",
                                                                     "action": "unblock"}
    assert dict(prims["SendArp::192.0.2.105/eth0"].params) == {"ip": "192.0.2.105", "nic": "eth0"}
    assert prims["nfs-kernel-server"].spec == "lsb:nfs-kernel-server"
    assert prims["myapp::--fast::eu"].spec == "lsb:myapp"
    assert ex.stickiness == pacemaker.STICKY > pacemaker.LOCATION_SCORE
    # the script with arguments is listed with file:line and the reason
    line = (FORMS["ipaddr-forms"] + FORMS["filesystem"]).count("\n") + 1
    listed = [str(p) for p in ex.problems if p.level == pacemaker.UNTRANSLATED]
    assert any(s.startswith("%s:%d: untranslated: myapp::--fast::eu" % (os.path.join(config_dir, "haresources"), line))
               for s in listed), listed
    assert any(":6: untranslated: serial" in s for s in listed), listed


def test_wrong_wrapper_arguments_are_listed(tmp_path):
    config_dir = _write_dir(tmp_path / "d", HA_CF_BASE.format(failback="on"), "node1 Filesystem::/dev/sdb1\n")
    ex = pacemaker.translate(load(config_dir, "node1"))
    (prim,) = ex.groups[0].primitives
    assert prim.spec == "lsb:Filesystem"
    assert any("takes 2 to 4 arguments" in p.message and p.line == 1 for p in ex.problems)


def test_authkey_is_derived_with_hkdf(tmp_path):
    # RFC 5869 test case 1 checks the derivation itself
    okm = pacemaker.hkdf_sha256(bytes([0x0b] * 22), 42, salt=bytes(range(13)), info=bytes(range(0xf0, 0xfa)))
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    a = _write_dir(tmp_path / "a", HA_CF_BASE.format(failback="on"), "node1 192.0.2.100\n")
    b = _write_dir(tmp_path / "b", HA_CF_BASE.format(failback="on"), "node1 192.0.2.100\n",
                   "auth 2\n2 sha1 another-secret-of-some-length\n")
    key_a = pacemaker.translate(load(a, "node1")).authkey
    assert key_a == pacemaker.translate(load(a, "node2")).authkey  # both boxes derive the same key
    assert len(key_a) == pacemaker.AUTHKEY_BYTES
    assert key_a != pacemaker.translate(load(b, "node1")).authkey
    assert KEY.split()[-1].encode() not in key_a
    crc = _write_dir(tmp_path / "c", HA_CF_BASE.format(failback="on"), "node1 192.0.2.100\n", "auth 1\n1 crc\n")
    ex = pacemaker.translate(load(crc, "node1"), random_bytes=lambda n: b"\x01" * n)
    assert ex.authkey == b"\x01" * pacemaker.AUTHKEY_BYTES
    assert any("crc has no secret" in p.message for p in ex.problems)


def test_corosync_timings_and_links(tmp_path):
    config_dir = _write_dir(tmp_path / "d", HA_CF_BASE.format(failback="on").replace("deadtime 15", "deadtime 10")
                            + "ucast eth1 192.0.2.12\n", "node1 192.0.2.100\n")
    cfg = load(config_dir, "node1")
    conf = pacemaker.corosync_conf(pacemaker.translate(cfg))
    assert "token: 10000\n" in conf and "consensus: 12000\n" in conf
    assert "knet_ping_interval: 1000\n" in conf and "knet_ping_timeout: 5000\n" in conf
    assert "two_node: 1\n" in conf
    # one ucast line names the peer: node2's address is known, node1's is its name until given
    assert "ring0_addr: 192.0.2.12" in conf and "ring0_addr: node1" in conf
    given = pacemaker.corosync_conf(pacemaker.translate(cfg, {"node1": ["192.0.2.11", "198.51.100.11"],
                                                              "node2": ["192.0.2.12", "198.51.100.12"]}))
    assert given.count("linknumber:") == 2 and "ring1_addr: 198.51.100.12" in given


def test_cli_prints_each_format_and_refuses_a_bad_config(tmp_path):
    config_dir = _copy_example("classic", tmp_path / "classic")
    env = dict(os.environ, PYTHONPATH=REPO)
    base = [sys.executable, "-m", "hanode", "export", "pacemaker", "--config-dir", config_dir]
    cib = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert cib.returncode == 0 and cib.stdout.startswith("<cib ")
    assert "untranslated: serial" in cib.stderr  # notes go to stderr, the format to stdout
    crm = subprocess.run(base + ["--format", "crm"], capture_output=True, text=True, env=env, timeout=60)
    assert "\ngroup grp_ip_192_0_2_100 ip_192_0_2_100 httpd\n" in crm.stdout
    pcs = subprocess.run(base + ["--format", "pcs"], capture_output=True, text=True, env=env, timeout=60)
    assert pcs.stdout.startswith("#!/bin/sh") and "resource create" in pcs.stdout
    helped = subprocess.run(base[:5] + ["--help"], capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "--output DIR" in helped.stdout
    os.chmod(os.path.join(config_dir, "authkeys"), 0o644)
    bad = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "authkeys" in bad.stderr and bad.stdout == ""


def _prefer(cib: str, group: str, node: str) -> None:
    """The constraint 'crm resource move GROUP NODE' / 'pcs resource move' adds."""
    tree = ET.parse(cib)
    constraints = tree.getroot().find("configuration/constraints")
    ET.SubElement(constraints, "rsc_location", id="cli-prefer-" + group, rsc=group, node=node, score="INFINITY",
                  role="Started")
    tree.write(cib)


def _set_stickiness(cib: str, value: str) -> None:
    tree = ET.parse(cib)
    for nv in tree.iter("nvpair"):
        if nv.get("name") == "resource-stickiness":
            nv.set("value", value)
    tree.write(cib)


def test_failback_off_stays_but_an_explicit_move_still_works(tmp_path):
    """Why auto_failback off is a finite stickiness: an INFINITY one would defeat 'resource move'."""
    config_dir = _write_dir(tmp_path / "ha.d", HA_CF_BASE.format(failback="off"), FORMS["two-groups"])
    out = str(tmp_path / "out")
    _export(config_dir, out)
    group = pacemaker.translate(load(config_dir, "node1")).groups[0]
    assert group.preferred == "node1"
    both, failed = str(tmp_path / "both.xml"), str(tmp_path / "failed.xml")
    _simulate(os.path.join(out, "cib.xml"), both, ["--node-up", "node1", "--node-up", "node2"], False)
    _simulate(both, failed, ["--node-fail", "node1"], False)
    _rebooted(failed, "node1")
    moved = {}
    for stickiness in ("exported", "INFINITY"):
        before = str(tmp_path / ("before-%s.xml" % stickiness))
        shutil.copy(failed, before)
        if stickiness != "exported":
            _set_stickiness(before, stickiness)
        _prefer(before, group.id, "node1")
        after = str(tmp_path / ("after-%s.xml" % stickiness))
        _simulate(before, after, ["--node-up", "node1"], False)
        moved[stickiness] = _placement(after, [group])[group.key]
    assert moved == {"exported": "node1", "INFINITY": "node2"}


def test_every_parameter_is_one_the_agent_declares(tmp_path):
    """Each OCF parameter written exists in the installed agent's own metadata (resource-agents)."""
    crm_resource = _tool("crm_resource")
    declared = {}
    seen = 0
    for name, config_dir in _sources(tmp_path):
        for g in pacemaker.translate(load(config_dir, "node1")).groups:
            for p in g.primitives:
                if p.cls != "ocf":
                    continue
                if p.spec not in declared:
                    meta = subprocess.run([crm_resource, "--show-metadata", p.spec], capture_output=True,
                                          text=True, timeout=60)
                    if meta.returncode != 0:
                        pytest.skip("%s has no metadata here: resource-agents is not installed (tools/setup "
                                    "--test installs it)" % p.spec)
                    declared[p.spec] = {e.get("name") for e in ET.fromstring(meta.stdout).iter("parameter")}
                unknown = [n for n, _ in p.params if n not in declared[p.spec]]
                assert not unknown, (name, p.id, p.spec, unknown)
                seen += 1
    assert len(declared) >= 8 and seen >= 15, (sorted(declared), seen)


def test_the_wrapper_table_matches_the_installed_agents():
    """Every Heartbeat wrapper maps to an installed OCF agent that declares each parameter it sets."""
    crm_resource = _tool("crm_resource")
    if not os.path.isdir("/usr/lib/ocf/resource.d/heartbeat"):
        pytest.skip("resource-agents is not installed (tools/setup --test installs it)")
    for script, (agent, names, fewest) in sorted(pacemaker.HEARTBEAT_WRAPPERS.items()):
        meta = subprocess.run([crm_resource, "--show-metadata", "ocf:heartbeat:" + agent], capture_output=True,
                              text=True, timeout=60)
        assert meta.returncode == 0, (script, meta.stderr)
        declared = {e.get("name") for e in ET.fromstring(meta.stdout).iter("parameter")}
        extra = {"port"} if script == "WAS" else set()
        assert set(names) | extra <= declared, (script, sorted(set(names) | extra - declared))
        assert 0 <= fewest <= len(names)
