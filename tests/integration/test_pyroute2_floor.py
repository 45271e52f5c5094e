"""The netlink side under the oldest pyroute2 that setup.cfg accepts.

setup.cfg asks for ``pyroute2>=0.7``, and a box built from a distribution's
package runs an older one than the 0.9 the rest of the suite uses (Debian 12
ships 0.7).  hanode.rtnl builds its requests from pyroute2's message classes
and hanode.vip imports IPRoute past pyroute2's package init, so both lean on
the library's layout.  This test installs the oldest release of the accepted
series into a virtual environment of its own (the system's packages visible
beside it) and runs the tests that touch netlink under it, in namespaces as
always: addresses, the VIP, the LAN watch, ARP, conflicts, the import.
"""
import configparser
import os
import subprocess
import venv

import pytest

from helpers import REPO_ROOT, have_netns_privileges   # (tests/support, on the path by conftest)

# The oldest release that setup.cfg's pyroute2>=0.7 admits (PyPI has no 0.7.0).
OLDEST_RELEASE = "0.7.1"
NETLINK_TESTS = ("tests/adapters/test_rtnl.py", "tests/integration/test_vip.py",
                 "tests/integration/test_lan_watch.py", "tests/integration/test_arp.py",
                 "tests/adapters/test_conflict_watch.py", "tests/adapters/test_pyroute2_import.py",
                 "tests/adapters/test_noopenssl.py")


def _floor_in_setup_cfg() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO_ROOT, "setup.cfg"))
    for line in cfg["options"]["install_requires"].split("\n"):
        name, _, floor = line.strip().partition(">=")
        if name == "pyroute2":
            return floor
    raise AssertionError("setup.cfg names no pyroute2>=... requirement")


def test_the_oldest_release_is_the_one_setup_cfg_admits():
    assert OLDEST_RELEASE.startswith(_floor_in_setup_cfg() + ".")


@pytest.mark.integration
@pytest.mark.slow
def test_netlink_tests_pass_under_the_oldest_pyroute2(tmp_path):
    if not have_netns_privileges():   # (the tests it runs would skip: nothing tested)
        pytest.skip("needs root and iproute2 to create network namespaces")
    env_dir = str(tmp_path / "venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = os.path.join(env_dir, "bin", "python")
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "pyroute2==" + OLDEST_RELEASE], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, "pip could not install pyroute2 %s:\n%s" % (OLDEST_RELEASE, pip.stderr)
    version = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('pyroute2'))"],
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == OLDEST_RELEASE, version
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                         + list(NETLINK_TESTS), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    tail = run.stdout[-4000:]
    assert run.returncode == 0, "under pyroute2 %s:\n%s\n%s" % (OLDEST_RELEASE, tail, run.stderr[-2000:])
    assert " passed" in tail and " skipped" not in tail, tail
