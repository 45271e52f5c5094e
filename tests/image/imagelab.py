"""Shared pieces of the appliance image tests: where the image is, the measured times, and a
pair of boxes on one LAN and one null-modem cable.

(A module of its own rather than conftest.py, so that tests import it by a unique name.)
"""

import calendar
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if TOP not in sys.path:
    sys.path.insert(0, TOP)

from qemuvm import Box  # noqa: E402

BOARD = "qemu-x86_64"          # the reference board
ARM_BOARD = "qemu-sabrelite"   # the 32-bit ARM board (i.MX6, armhf)


def pair_key() -> str:
    """The hmac-sha256 key every test image is built with (image/build --key): the boxes of a
    pair, the x86_64 and armhf boards of the mixed pair and images reused across sessions must
    share one.  Random per checkout (output/ is not in git), so no published key is used."""
    path = os.path.join(TOP, "output", "test-pair-key")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    with open(path) as f:
        return f.read().strip()


def image_dir_of(board: str) -> str:
    return os.path.join(TOP, "output", board)


IMAGE_DIR = image_dir_of(BOARD)

# step name -> seconds, in the order measured (printed by conftest's pytest_terminal_summary)
TIMES: List[Tuple[str, float]] = []
NOTES: List[str] = []


def record(step: str, seconds: float) -> None:
    TIMES.append((step, seconds))
    sys.stderr.write("[image] %-55s %6.1f s\n" % (step, seconds))


def note(text: str) -> None:
    NOTES.append(text)
    sys.stderr.write("[image] %s\n" % text)


# -- what the tests ask the boxes ---------------------------------------------------------------

VIP = "192.0.2.100"
BOOT_TIMEOUT = 90.0      # power-on -> shell; ~11 s measured alone, slower with two VMs on 2 cores
READY_TIMEOUT = 120.0    # power-on -> hanode has settled who holds what


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll PROBE until it returns something truthy; fail naming WHAT and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def status(box: Box) -> Optional[Dict[str, Any]]:
    """hanode's own view (`hanode status --json` in the guest), or None if it does not answer."""
    rc, out = box.sh("hanode status --json 2>/dev/null", timeout=60, check=False)
    if rc != 0 or "{" not in out:
        return None
    try:
        doc = json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        return None
    return _find_node_status(doc)


def _find_node_status(doc: Any) -> Optional[Dict[str, Any]]:
    # the control socket may wrap the core's status dict; find the dict that has peer_state
    if isinstance(doc, dict):
        if "peer_state" in doc:
            return doc
        for v in doc.values():
            found = _find_node_status(v)
            if found:
                return found
    return None


def holds_vip(box: Box) -> bool:
    _, out = box.sh("ip -o -4 addr show dev eth0", check=False)
    return (" %s/" % VIP) in out


def web_running(box: Box) -> bool:
    return box.sh("/etc/init.d/webdemo status >/dev/null", check=False)[0] == 0


def fetch_vip(box: Box) -> str:
    """What a client on this box gets from http://VIP/ (the holder's node name), '' if nothing."""
    # busybox 1.35's `wget -T` segfaults (Debian's busybox-static): bound it with timeout instead
    rc, out = box.sh("timeout 5 wget -q -O - http://%s/" % VIP, timeout=30, check=False)
    return out.strip() if rc == 0 else ""


def boot_chart(box: Box, label: str) -> None:
    """Record where a box's first boot since power-on went: the host's clock for the firmware
    part (the kernel's uptime 0 is put on the host clock through S05modules' console line and
    its uptime in /run/boot-times), the guest's uptime after that, up to hanode's READY log line."""
    assert box.powered_on_at is not None
    _, times = box.sh("cat /run/boot-times")
    m = re.search(r"([\d.]+) /etc/init.d/S05modules", times)
    at_modules = box.arrived_at("Loading kernel modules")
    if not m or at_modules is None:
        return
    kernel_t0 = at_modules - float(m.group(1)) - box.powered_on_at
    record("%s: power-on -> kernel start (BIOS, syslinux, the kernel unpacking itself)" % label, kernel_t0)
    record("%s: kernel start -> rcS (kernel init, mounting the system)" % label, float(times.split()[0]))
    ready = wait_for("hanode's READY line", lambda: _ready_uptime(box), 60)
    record("%s: power-on -> hanode READY (its log line)" % label, kernel_t0 + ready)


def _ready_uptime(box: Box) -> Optional[float]:
    """The guest's uptime at hanode's READY log line (the log's wall clock, UTC in the guest, mapped
    through CLOCK_BOOTTIME)."""
    rc, out = box.sh("grep READY: /data/var/log/ha-log | tail -n 1; python3 -S -c 'import time; "
                     "print(\"boot-wall\", time.time() - time.clock_gettime(time.CLOCK_BOOTTIME))'",
                     timeout=60, check=False)
    m = re.search(r"(\d{4}/\d\d/\d\d_\d\d:\d\d:\d\d\.\d+) \S+: INFO: READY:", out)
    w = re.search(r"boot-wall ([\d.]+)", out)
    if not (m and w):
        return None
    wall = calendar.timegm(time.strptime(m.group(1)[:19], "%Y/%m/%d_%H:%M:%S")) + float("0" + m.group(1)[19:])
    return wall - float(w.group(1))


def generation(box: Box) -> int:
    _, out = box.sh("cat /var/lib/hanode/generation")
    m = re.search(r"\d+", out)
    assert m, "%s: /var/lib/hanode/generation holds no number: %r" % (box.name, out)
    return int(m.group())


def settled(box: Box, holder: str) -> Optional[Dict[str, Any]]:
    """The box's hanode sees its peer and agrees that HOLDER holds the (only) group."""
    st = status(box)
    if not st or st.get("peer_state") not in ("up", "active"):
        return None
    groups = st.get("groups") or []
    if not groups or any(g.get("held_by") != holder for g in groups):
        return None
    return st


def alone_holding(box: Box) -> Optional[Dict[str, Any]]:
    st = status(box)
    if not st or st.get("peer_state") != "dead":
        return None
    if any(g.get("held_by") != box.node for g in st.get("groups") or []):
        return None
    return st



class Pair:
    """Two boxes on one LAN and one null-modem cable."""

    def __init__(self, image: str, boot: str = "disk", image2: str = "", board1: str = BOARD,
                 board2: str = BOARD) -> None:
        """Box 1 (node1) from IMAGE of BOARD1, box 2 (node2) from IMAGE2 (default: the same) of
        BOARD2: a mixed pair is two boards on the one cable and LAN."""
        from hanode.lab.cable import NullModem, UnixSocketEndpoint

        self.dir = tempfile.mkdtemp(prefix="hnimg%d-" % os.getpid())
        lan1 = os.path.join(self.dir, "lan1.sock")
        lan2 = os.path.join(self.dir, "lan2.sock")
        self.box1 = Box("box1", self.dir, image, "node1", "192.0.2.11/24", lan1, lan2,
                        "52:54:00:c0:00:11", boot=boot, board=board1)
        self.box2 = Box("box2", self.dir, image2 or image, "node2", "192.0.2.12/24", lan2, lan1,
                        "52:54:00:c0:00:12", boot=boot, board=board2)
        for b in self.boxes:
            b.create_disk()
        self.cable = NullModem(UnixSocketEndpoint(self.box1.cable_socket),
                               UnixSocketEndpoint(self.box2.cable_socket), baud=19200,
                               log=os.path.join(self.dir, "cable.jsonl"))
        self.cable.start()

    @property
    def boxes(self) -> Tuple[Box, Box]:
        return self.box1, self.box2

    def close(self, keep_logs_in: str) -> None:
        for b in self.boxes:
            try:
                b.power_off()
            except Exception:  # a failing teardown must not hide the other box's cleanup
                pass
        # hanode's logs from each box's data partition: why a box did what it did
        for b in self.boxes:
            try:
                b.data_files(["/var/log/ha-log", "/var/log/hanode.out"], keep_logs_in)
            except Exception:
                pass
        try:
            self.cable.close()
        finally:
            for b in self.boxes:
                if os.path.exists(b.log_path):
                    try:
                        shutil.copy(b.log_path, os.path.join(keep_logs_in, os.path.basename(b.log_path)))
                    except OSError:
                        pass
            shutil.rmtree(self.dir, ignore_errors=True)
