"""hanode's C-layout code in a real 32-bit process: the armhf image's own CPython (ILP32: 4-byte
long and pointer) under qemu-user, in a network namespace of this test's.

`vip.configured_ipv4()` reads SIOCGIFCONF's array of `struct ifreq`, 40 bytes on LP64 and 32 on
ILP32; the daemon uses it at start to adopt a VIP a crash left behind.  The old code hard-coded
40: on armhf it died with 3 addresses (`packed IP wrong length`) and read zeros with 5, so a
left-over VIP went unseen.  Both tests run that old code too, to show the bed tells them apart.
The watchdog's ioctl numbers are checked against <linux/watchdog.h> as the ARM kernel computes
them.  (docs/portability.md has the whole audit.)
"""

import itertools
import os
import subprocess
from typing import List

import pytest

from imagelab import TOP

pytestmark = pytest.mark.image

_ns_serial = itertools.count()

# vip.configured_ipv4() before the fix, verbatim: the regression this file guards against
OLD_CONFIGURED_IPV4 = '''
import array, fcntl, socket, struct
def old_configured_ipv4():
    siocgifconf = 0x8912
    entry = 40                      # struct ifreq on 64-bit Linux
    size = 64
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while True:
            buf = array.array("B", b"\\0" * (entry * size))
            addr, _ = buf.buffer_info()
            used = struct.unpack("iL", fcntl.ioctl(s.fileno(), siocgifconf,
                                                   struct.pack("iL", entry * size, addr)))[0]
            if used < entry * size:
                break
            size *= 2
    raw = buf.tobytes()[:used]
    return [socket.inet_ntoa(raw[i + 20:i + 24]) for i in range(0, used, entry)]
'''

PROBE = OLD_CONFIGURED_IPV4 + '''
import json, platform, struct, sys
from hanode.vip import configured_ipv4, ifreq_size
try:
    old = old_configured_ipv4()
except Exception as e:
    old = repr(e)
print(json.dumps({"machine": platform.machine(), "long": struct.calcsize("l"), "ptr": struct.calcsize("P"),
                  "ifreq": ifreq_size(), "new": configured_ipv4(), "old": old}))
'''


def armhf_python(sysroot: str, code: str, netns: str = "") -> str:
    """Run CODE in the armhf image's python3.11 (qemu-arm-static, -L the image's root), with this
    checkout's hanode first on the path; returns stdout."""
    argv = ["qemu-arm-static", "-L", sysroot, os.path.join(sysroot, "usr/bin/python3.11"), "-c", code]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    env = dict(os.environ, PYTHONPATH=TOP, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, "armhf python failed (%d):\n%s" % (r.returncode, r.stderr[-3000:])
    return r.stdout


@pytest.fixture
def sysroot(armhf_image_dir: str) -> str:
    return os.path.join(armhf_image_dir, "target")


@pytest.mark.parametrize("count", [3, 5])
def test_configured_ipv4_in_32bit_process(sysroot: str, count: int) -> None:
    import json
    ns = "h5ilp%d-%d" % (os.getpid(), next(_ns_serial))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lan0", "up"], check=True)
        want: List[str] = ["127.0.0.1"]
        for i in range(count):
            addr = "192.0.2.%d" % (11 + i)
            # secondaries and a labelled one, as a VIP is added (eth0:1 style labels included)
            extra = ["label", "lan0:%d" % i] if i == count - 1 else []
            subprocess.run(["ip", "-n", ns, "addr", "add", addr + "/24", "dev", "lan0"] + extra, check=True)
            want.append(addr)
        got = json.loads(armhf_python(sysroot, PROBE, netns=ns))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert got["machine"].startswith("armv7"), got
    assert (got["long"], got["ptr"], got["ifreq"]) == (4, 4, 32), "not an ILP32 process: %r" % got
    assert sorted(got["new"]) == sorted(want), got
    # the bed tells the old layout from the right one: it crashed (3) or read zeros (5) here
    assert got["old"] != got["new"], "the hard-coded 40-byte ifreq was not caught: %r" % got


def test_watchdog_ioctl_numbers_in_32bit_process(sysroot: str) -> None:
    """The WDIOC_* numbers hanode computes on armhf are the kernel's (<linux/watchdog.h>,
    asm-generic ioctl encoding), and the structures it passes have the kernel's sizes."""
    import json
    code = ("import json, struct\nfrom hanode import watchdog as w\n"
            "print(json.dumps({n: getattr(w, n) for n in w.__all__ if n.startswith('WDIOC_')} | "
            "{'info': w._WATCHDOG_INFO.size, 'int': w._INT, 'ucred': struct.calcsize('3i')}))")
    got = json.loads(armhf_python(sysroot, code))
    assert got == {
        "WDIOC_GETSUPPORT": 0x80285700, "WDIOC_GETSTATUS": 0x80045701, "WDIOC_GETBOOTSTATUS": 0x80045702,
        "WDIOC_SETOPTIONS": 0x80045704, "WDIOC_KEEPALIVE": 0x80045705, "WDIOC_SETTIMEOUT": 0xC0045706,
        "WDIOC_GETTIMEOUT": 0x80045707, "WDIOC_GETTIMELEFT": 0x8004570A,
        "info": 40, "int": 4, "ucred": 12,
    }, got
