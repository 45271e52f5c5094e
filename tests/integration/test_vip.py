"""hanode.vip against real netlink inside throw-away namespaces.

Every body runs in a forked child that entered the node's namespace (helpers.in_netns),
so pyroute2 talks to that namespace's kernel tables; `ip` output is read back with
ns_run as an independent witness of what the kernel really holds.
"""
import json
import os
import time

import pytest

from helpers import Lan, namespaces_alive, ns_run

pytestmark = pytest.mark.integration


def kernel_addrs(ns, dev="eth0"):
    """[(address, prefixlen, label, broadcast)] as `ip -j addr` reports them."""
    out = json.loads(ns_run(ns, ["ip", "-4", "-j", "addr", "show", "dev", dev]).stdout)
    return [(a["local"], a["prefixlen"], a.get("label"), a.get("broadcast")) for i in out for a in i["addr_info"]]


def test_add_remove_are_idempotent(netns1):
    ns = netns1.nodes[0]

    def body():
        from hanode.vip import Vip
        v = Vip("192.0.2.100")
        return [v.present(), v.add(), v.present(), v.add(), str(v), v.where()]

    assert netns1.call(0, body) == [False, True, True, False, "192.0.2.100/24/eth0", ["eth0"]]
    assert ("192.0.2.100", 24, "eth0", "192.0.2.255") in kernel_addrs(ns)

    def remove():
        from hanode.vip import Vip
        v = Vip("192.0.2.100")
        return [v.remove(), v.remove(), v.present(), v.where()]

    assert netns1.call(0, remove) == [True, False, False, []]
    assert [a[0] for a in kernel_addrs(ns)] == ["192.0.2.1"]  # the node's own address untouched


def test_resolve_picks_the_interface_whose_subnet_contains_the_vip(netns_lan):
    lan = netns_lan(1)
    lan.add_segment("198.51.100", "eth1", prefixlen=24)
    # a more specific subnet on a third interface wins over the /24
    lan.add_segment("198.51.100", "eth2", prefixlen=25, first_host=129)

    def body():
        from hanode.vip import Vip
        out = {}
        for ip in ("192.0.2.50", "198.51.100.20", "198.51.100.200"):
            v = Vip(ip).resolve()
            out[ip] = (v.dev, v.prefixlen)
        v = Vip("198.51.100.200", dev="eth1").resolve()   # dev given: prefix from that interface
        out["given dev"] = (v.dev, v.prefixlen)
        v = Vip("198.51.100.200", prefixlen=28).resolve()  # prefix given: kept
        out["given prefix"] = (v.dev, v.prefixlen)
        return out

    assert lan.call(0, body) == {
        "192.0.2.50": ("eth0", 24),
        "198.51.100.20": ("eth1", 24),
        "198.51.100.200": ("eth2", 25),
        "given dev": ("eth1", 24),
        "given prefix": ("eth2", 28),
    }


def test_resolution_errors_say_how_to_fix_the_config(netns1):
    def body():
        from hanode.vip import Vip, VipError
        out = []
        for kwargs in ({"ip": "198.51.100.7"}, {"ip": "198.51.100.7", "prefixlen": 28},
                       {"ip": "198.51.100.7", "dev": "eth0"}, {"ip": "192.0.2.7", "dev": "eth9"},
                       {"ip": "192.0.2.7", "prefixlen": 24, "dev": "eth9"}):
            try:
                Vip(**kwargs).add()
                out.append("added?!")
            except VipError as e:
                out.append(str(e))
        return out

    assert netns1.call(0, body) == [
        "no interface has a subnet containing 198.51.100.7; give one: 198.51.100.7/24/eth0",
        "no interface has a subnet containing 198.51.100.7; give one: 198.51.100.7/28/eth0",
        "no address on eth0 has a subnet containing 198.51.100.7; give the prefix length: 198.51.100.7/24/eth0",
        "no interface eth9 (for VIP 192.0.2.7)",
        "no interface eth9 (for VIP 192.0.2.7)",
    ]


def test_explicit_prefix_dev_label_and_broadcast(netns1):
    ns = netns1.nodes[0]

    def body():
        from hanode.vip import Vip
        a = Vip("192.0.2.100", 24, "eth0", "eth0:0")
        b = Vip("192.0.2.101", 26, "eth0:web")        # Heartbeat's dev:label form
        c = Vip("192.0.2.102", 24, "eth0", "1")         # bare alias -> eth0:1
        d = Vip("192.0.2.103", 24, "eth0", None, "192.0.2.127")
        return [a.add(), b.add(), c.add(), d.add(), str(b), str(c)]

    assert netns1.call(0, body) == [True, True, True, True, "192.0.2.101/26/eth0:web", "192.0.2.102/24/eth0:1"]
    addrs = kernel_addrs(ns)
    assert ("192.0.2.100", 24, "eth0:0", "192.0.2.255") in addrs
    assert ("192.0.2.101", 26, "eth0:web", "192.0.2.127") in addrs
    assert ("192.0.2.102", 24, "eth0:1", "192.0.2.255") in addrs
    assert ("192.0.2.103", 24, "eth0", "192.0.2.127") in addrs

    def cleanup():
        from hanode.vip import Vip
        return [Vip(ip).remove() for ip in ("192.0.2.100", "192.0.2.101", "192.0.2.102", "192.0.2.103")]
    assert netns1.call(0, cleanup) == [True] * 4
    assert [a[0] for a in kernel_addrs(ns)] == ["192.0.2.1"]


def test_bad_values_are_refused_before_touching_the_kernel():
    from hanode.vip import Vip, VipError
    cases = [
        (("192.0.2.300",), "is not an IPv4 address"),
        (("192.0.2.1", 33), "prefix length 33 is not between 1 and 32"),
        (("192.0.2.1", 24, "eth0", "eth0:abcdefghijk"), "label 'eth0:abcdefghijk' is 16 characters"),
        (("192.0.2.1", 24, "eth0", "eth1:0"), "label 'eth1:0' must be eth0 or start with eth0:"),
        (("192.0.2.1", 24, "averyveryverylongname"), "interface name 'averyveryverylongname' is 21 characters"),
        (("192.0.2.1", 24, "eth0", None, "192.0.2"), "broadcast '192.0.2' is not an IPv4 address"),
    ]
    for args, message in cases:
        with pytest.raises(VipError, match=message.replace("(", r"\(")):
            Vip(*args)


def test_from_resource_and_link_info(netns1):
    class Resource:  # the attributes docs/internals.md promises
        ip, prefixlen, dev, label, broadcast = "192.0.2.100", None, None, "eth0:9", None

    def body():
        from hanode.vip import Vip, link_info, VipError
        v = Vip.from_resource(Resource())
        added = v.add()
        try:
            link_info("eth7")
            missing = "found?!"
        except VipError as e:
            missing = str(e)
        return added, str(v), v.link(), link_info("lo")[1], missing

    added, text, (ifindex, mac), lo_mac, missing = netns1.call(0, body)
    assert added and text == "192.0.2.100/24/eth0:9"
    assert mac == netns1.mac(0)
    idx = json.loads(ns_run(netns1.nodes[0], ["ip", "-j", "link", "show", "eth0"]).stdout)[0]["ifindex"]
    assert ifindex == idx
    assert lo_mac == "00:00:00:00:00:00"
    assert missing == "no interface eth7"


def test_works_inside_a_running_event_loop(netns1):
    # pyroute2 >= 0.9 cannot nest its private loop inside ours: vip.py must cope.
    async def body():
        import asyncio
        from hanode.vip import Vip
        v = Vip("192.0.2.100")
        ticks = []

        async def ticker():
            for _ in range(3):
                ticks.append(1)
                await asyncio.sleep(0)
        t = asyncio.ensure_future(ticker())
        result = [v.add(), v.present(), v.remove(), v.present()]
        await t
        return result, len(ticks)

    assert netns1.call(0, body) == ([True, True, True, False], 3)


def test_remove_finds_the_vip_when_its_subnet_is_gone(netns1):
    # A /32 VIP on an interface whose own address was removed: no subnet resolves it any more.
    ns = netns1.nodes[0]
    ns_run(ns, "ip addr add 192.0.2.100/32 dev eth0")
    ns_run(ns, "ip addr del 192.0.2.1/24 dev eth0")

    def body():
        from hanode.vip import Vip
        return Vip("192.0.2.100").remove(), Vip("192.0.2.100").where()

    assert netns1.call(0, body) == (True, [])
    assert kernel_addrs(ns) == []


def test_a_resolved_vip_is_added_by_the_interfaces_current_index(netns1):
    """Resolved once (the warm-up does it before a failover), the add is one netlink request that
    finds the interface by name: an interface deleted and made again (a new index) still gets
    the address, and a second add is "already there" (the kernel's EEXIST)."""
    ns = netns1.nodes[0]

    def body():
        import subprocess
        from hanode.vip import Vip
        v = Vip("192.0.2.100").resolve()
        resolved = v.resolved()
        subprocess.run("ip link add dummyx type veth peer name dummyy && ip link del eth0 && "
                       "ip link set dummyx name eth0 && ip link set eth0 up && ip addr add 192.0.2.1/24 dev eth0",
                       shell=True, check=True)
        return [resolved, v.add(), v.add(), v.present()]

    assert netns1.call(0, body) == [True, True, False, True]
    assert ("192.0.2.100", 24, "eth0", "192.0.2.255") in kernel_addrs(ns)


def test_vip_on_a_downed_interface_is_still_added(netns1):
    ns = netns1.nodes[0]
    ns_run(ns, "ip link set eth0 down")

    def body():
        from hanode.vip import Vip
        v = Vip("192.0.2.100", 24, "eth0")
        return v.add(), v.present()

    assert netns1.call(0, body) == (True, True)


def test_lan_fixture_tears_everything_down():
    lan = Lan(3)
    names = list(lan.nodes) + list(lan.switches)
    try:
        assert namespaces_alive(names) == names
        assert lan.run(0, ["ping", "-c", "1", "-W", "2", lan.addr(2)]).returncode == 0
        task = lan.spawn(1, time.sleep, 60)  # a child still running at teardown
        pid = task.pid
    finally:
        lan.close()
    assert namespaces_alive(names) == []
    assert not os.path.exists("/proc/%d" % pid)  # killed and reaped


def test_only_iproute_is_imported_and_the_whole_package_still_on_demand():
    """iproute_class() imports pyroute2.iproute.linux without the package's __init__ (NDB,
    sqlite3, IPDB ...), and a later ``from pyroute2 import NDB`` in the same process still works."""
    import subprocess
    import sys
    script = (
        "import sys, json\n"
        "import hanode.vip\n"
        "C = hanode.vip.iproute_class()\n"
        "narrow = sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'sqlite3'))\n"
        "with C() as ipr: links = len(ipr.get_links())\n"
        "from pyroute2 import NDB, IPRoute\n"
        "import pyroute2\n"
        "print(json.dumps([C.__module__, narrow, links, IPRoute is C, NDB.__name__, pyroute2.__version__,\n"
        "                  'sqlite3' in sys.modules]))\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    module, narrow, links, same, ndb, version, sqlite_after = json.loads(out.stdout)
    assert module == "pyroute2.iproute.linux"
    assert "pyroute2.ndb.main" not in narrow and "pyroute2.ipdb" not in narrow and "sqlite3" not in narrow
    assert "pyroute2.iproute.linux" in narrow
    assert links >= 1 and same and ndb == "NDB" and version and sqlite_after
