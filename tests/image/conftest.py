"""Fixtures for the appliance image tests: the image (built or reused), and a pair of boxes.

Each board's image is built once per session with image/build (incremental: cached debs, ~30 s)
unless HANODE_IMAGE_REUSE=1 and output/<board>/disk.img (sdcard.img for the armhf board) exists.
Each pair gets a private
directory in /tmp (unix socket paths must stay short) for its qcow2 overlays, the two LAN
datagram sockets and the two cable sockets; the null-modem simulator joins the cable sockets at
19200 baud.  Everything is torn down even when a test fails: both QEMUs are killed by PID, the
cable closed, the directory removed (the consoles and hanode's logs are copied next to the image
first, for post-mortems).  The time of every step is printed at the end of the session.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from imagelab import ARM_BOARD, BOARD, IMAGE_DIR, NOTES, TIMES, TOP, Pair, image_dir_of, pair_key, record  # noqa: E402
from qemuvm import DISK_OF_BOARD, QEMU_OF_BOARD, Box  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not TIMES and not NOTES:
        return
    terminalreporter.section("appliance image: measured times")
    for step, seconds in TIMES:
        terminalreporter.write_line("%-60s %7.1f" % (step, seconds))
    for text in NOTES:
        terminalreporter.write_line(text)
    try:
        with open(os.path.join(IMAGE_DIR, "image-test-times.json"), "w") as f:
            json.dump({"times": [{"step": s, "value": round(t, 2)} for s, t in TIMES], "notes": NOTES}, f, indent=1)
    except OSError:
        pass


def _missing_requirements(board: str = BOARD) -> str:
    if os.geteuid() != 0:
        return "the image build needs root (chroot)"
    if not shutil.which(QEMU_OF_BOARD[board]):
        return "%s is not installed (tools/setup --test)" % QEMU_OF_BOARD[board]
    tools = ["genimage", "mkfs.vfat", "mcopy", "syslinux", "mke2fs", "cpio", "qemu-img"]
    if board == ARM_BOARD:
        tools.append("qemu-arm-static")
    for tool in tools:
        if not shutil.which(tool):
            return "%s is not installed (tools/setup --test)" % tool
    if board == ARM_BOARD and "armhf" not in subprocess.run(["dpkg", "--print-foreign-architectures"],
                                                           capture_output=True, text=True).stdout.split():
        return "dpkg has no armhf architecture (tools/setup --test adds it)"
    return ""


def build_image(board: str) -> str:
    """output/<board>/, built by image/build (incremental) or reused with HANODE_IMAGE_REUSE=1."""
    why = _missing_requirements(board)
    if why:
        pytest.skip(why)
    out = image_dir_of(board)
    if os.environ.get("HANODE_IMAGE_REUSE") == "1" and os.path.exists(os.path.join(out, DISK_OF_BOARD[board])):
        return out
    t0 = time.monotonic()
    log = os.path.join(tempfile.gettempdir(), "hanode-image-build-%d.log" % os.getpid())
    with open(log, "w") as f:
        rc = subprocess.run([os.path.join(TOP, "image", "build"), "--board", board, "--key", pair_key()],
                            stdout=f, stderr=subprocess.STDOUT, cwd=TOP).returncode
    with open(log) as f:
        text = f.read()
    os.unlink(log)
    assert rc == 0, "image/build --board %s failed (exit %d):\n%s" % (board, rc, text[-4000:])
    record("image/build --board %s (incremental)" % board, time.monotonic() - t0)
    return out


@pytest.fixture(scope="session")
def image_dir() -> str:
    return build_image(BOARD)


@pytest.fixture(scope="session")
def armhf_image_dir() -> str:
    return build_image(ARM_BOARD)


@pytest.fixture
def pair(image_dir: str) -> Iterator[Pair]:
    p = Pair(image_dir)
    try:
        yield p
    finally:
        p.close(keep_logs_in=image_dir)


@pytest.fixture
def box(image_dir: str) -> Iterator[Box]:
    d = tempfile.mkdtemp(prefix="hnimg%d-" % os.getpid())
    b = Box("solo", d, image_dir, "node1", "192.0.2.11/24", os.path.join(d, "lan-a.sock"),
            os.path.join(d, "lan-b.sock"), "52:54:00:c0:00:21")
    b.create_disk()
    try:
        yield b
    finally:
        b.power_off()
        if os.path.exists(b.log_path):
            shutil.copy(b.log_path, os.path.join(image_dir, "solo-console.log"))
        shutil.rmtree(d, ignore_errors=True)
