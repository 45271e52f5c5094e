"""hanode/rtnl.py: the agent's netlink requests on a real kernel, in a network namespace of their
own (``unshare -n``: a veth pair, addresses in 192.0.2.0/24), in a fresh ``python3 -S`` as the
appliance runs the agent - what it imports is process-wide, and is checked too: pyroute2's
message classes, not IPRoute with rtnl's whole marshal (1.5 MB on the appliance)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from hanode.lab.bed import agent_env

CHILD = r'''
import errno, json, socket, sys
from hanode.noopenssl import keep_openssl_out
keep_openssl_out()
from hanode.rtnl import RTMGRP_LINK, Rtnl
out = {}
idx = socket.if_nametoindex("eth0")
with Rtnl() as rtnl:
    out["links"] = sorted(link.get_attr("IFLA_IFNAME") for link in rtnl.get_links())
    out["mac"] = rtnl.get_link(idx).get_attr("IFLA_ADDRESS")
    rtnl.addr("add", index=idx, address="192.0.2.100", prefixlen=24, broadcast="192.0.2.255", label="eth0:1")
    try:
        rtnl.addr("add", index=idx, address="192.0.2.100", prefixlen=24)
    except Exception as e:
        out["add_again"] = [type(e).__name__, e.code == errno.EEXIST]
    out["addrs"] = sorted([a["index"] == idx, a.get_attr("IFA_LOCAL"), a["prefixlen"], a.get_attr("IFA_LABEL"),
                           a.get_attr("IFA_BROADCAST")] for a in rtnl.get_addr())
    rtnl.addr("del", index=idx, address="192.0.2.100", prefixlen=24)
    try:
        rtnl.addr("del", index=idx, address="192.0.2.100", prefixlen=24)
    except Exception as e:
        out["del_again"] = e.code == errno.EADDRNOTAVAIL
with Rtnl(groups=RTMGRP_LINK) as watch:
    watch.request_links()
    out["dump"] = sorted(msg.get_attr("IFLA_IFNAME") for event, msg in watch.dump_events())
    import subprocess
    subprocess.run(["ip", "link", "set", "eth1", "down"], check=True)
    out["event"] = [[event, msg.get_attr("IFLA_IFNAME")] for event, msg in watch.link_events()][:1]
out["iproute"] = "pyroute2.iproute.linux" in sys.modules or "pyroute2.netlink.rtnl.marshal" in sys.modules
out["multiprocessing"] = "multiprocessing" in sys.modules
print(json.dumps(out))
'''


def test_requests_and_events_on_a_real_kernel():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip (a network namespace of its own)")
    setup = ("ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up && "
             "ip addr add 192.0.2.1/24 dev eth0 && exec \"$0\" -S -c \"$1\"")
    r = subprocess.run(["unshare", "-n", "sh", "-c", setup, sys.executable, CHILD], capture_output=True, text=True,
                       env=agent_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["links"] == ["eth0", "eth1", "lo"]
    assert len(out["mac"]) == 17
    assert out["add_again"] == ["NetlinkError", True]
    assert out["addrs"] == [[True, "192.0.2.1", 24, "eth0", None], [True, "192.0.2.100", 24, "eth0:1", "192.0.2.255"]]
    assert out["del_again"] is True
    assert out["dump"] == ["eth0", "eth1", "lo"]
    assert out["event"] == [["RTM_NEWLINK", "eth1"]]
    assert out["iproute"] is False and out["multiprocessing"] is False
