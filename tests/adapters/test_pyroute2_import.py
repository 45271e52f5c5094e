"""hanode.vip.iproute_class: pyroute2's IPRoute without unittest and multiprocessing, in fresh interpreters.

pyroute2 0.9's iprsocket imports ``unittest.mock`` for one ``Mock()``; the agent imports it with
an inert stand-in (1 MB of RSS less).  Its config and process modules import ``multiprocessing``
for child processes hanode never starts: a stand-in that imports it when first called.  Each check
runs in a child ``python3 -S`` as the appliance starts the agent, since what is imported is
process-wide; the netlink calls are real (a dump of the links and an event socket bound to
RTMGRP_LINK, as the LAN watch does).
"""
import json
import subprocess
import sys

from hanode.lab.bed import agent_env

CHILD = r'''
import json, sys
import hanode.vip
IPRoute = hanode.vip.iproute_class()
out = {"unittest_after_import": sorted(m for m in sys.modules if m.split(".")[0] == "unittest")}
with IPRoute() as ipr:
    out["links"] = sorted(l.get_attr("IFLA_IFNAME") for l in ipr.get_links())
from pyroute2.netlink.rtnl import RTMGRP_LINK
from pyroute2.netlink.rtnl.iprsocket import IPRSocket
nl = IPRSocket()
nl.bind(groups=RTMGRP_LINK)
nl.close()
out["multiprocessing_in_use"] = sorted(m for m in sys.modules if m.split(".")[0] == "multiprocessing")
import pyroute2.config                     # what pyroute2 bound: the real thing once called
try:
    import pyroute2.process                # (0.9; 0.7 binds multiprocessing in config alone)
except ImportError:
    pass
reader, writer = pyroute2.config.MpPipe()
writer.send("through a real pipe")
out["pipe"] = reader.recv()
from multiprocessing import shared_memory   # and anyone else gets the real module
import multiprocessing
out["real_multiprocessing"] = multiprocessing.cpu_count() > 0 and shared_memory.__name__
import unittest.mock                         # a later import gets the real module
out["real_mock"] = hasattr(unittest.mock, "patch") and hasattr(unittest.mock.Mock(), "assert_called")
print(json.dumps(out))
'''

# A library that takes more from unittest.mock at import than Mock: imported again with the real one.
GREEDY = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
with open(os.path.join(sys.argv[1], "greedy.py"), "w") as f:
    f.write("from unittest.mock import patch\nPATCH = patch\n")
import hanode.vip
greedy = hanode.vip._import_without_unittest("greedy")
print(json.dumps({"has_real_patch": callable(greedy.PATCH) and greedy.PATCH.__module__ == "unittest.mock",
                  "stand_in_left": sys.modules["unittest.mock"].Mock is hanode.vip._InertMock}))
'''


def _child(code, *args):
    r = subprocess.run([sys.executable, "-S", "-c", code] + list(args), capture_output=True, text=True,
                       env=agent_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_iproute_comes_without_unittest_and_its_sockets_work():
    out = _child(CHILD)
    assert out["unittest_after_import"] == []
    assert "lo" in out["links"]
    assert out["real_mock"] is True
    assert out["multiprocessing_in_use"] == []   # the links dumped and the event socket bound without it
    assert out["pipe"] == "through a real pipe"
    assert out["real_multiprocessing"] == "multiprocessing.shared_memory"


def test_a_library_that_needs_more_of_mock_gets_the_real_one(tmp_path):
    out = _child(GREEDY, str(tmp_path))
    assert out == {"has_real_patch": True, "stand_in_left": False}
