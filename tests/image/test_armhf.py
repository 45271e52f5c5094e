"""The 32-bit ARM board (board/qemu-sabrelite: NXP i.MX6 Quad, Cortex-A9, armhf) in QEMU: the
whole agent on 32-bit CPython, its watchdog on the SoC's real imx2 driver, and a mixed pair
(armhf + x86_64) on one paced 19200-baud cable and one LAN.

Budget (2 cores, TCG), both in the default suite: the solo test - one armhf box boots, hanode
holds the group alone, a hung hanode is reset by the imx2 watchdog and the box comes back with a
higher generation - about 2-3 minutes with the armhf image build; the mixed pair 2.4 min (142 s
at load average 5, the x86_64 image shared with test_image.py).  `-m "not armhf"` leaves both out.
"""

import os
import re
import shutil
import tempfile
import time
from typing import Iterator

import pytest

from imagelab import (ARM_BOARD, BOARD, BOOT_TIMEOUT, READY_TIMEOUT, Pair, alone_holding, fetch_vip, generation,
                      holds_vip, note, record, settled, wait_for, web_running)
from qemuvm import Box

pytestmark = [pytest.mark.image, pytest.mark.armhf]

HANG_RESET_TIMEOUT = 60.0   # SIGSTOP -> the box's firmware again (watchdog 6 s + reboot)


@pytest.fixture
def armhf_box(armhf_image_dir: str) -> Iterator[Box]:
    d = tempfile.mkdtemp(prefix="hnarm%d-" % os.getpid())
    b = Box("armsolo", d, armhf_image_dir, "node1", "192.0.2.11/24", os.path.join(d, "lan-a.sock"),
            os.path.join(d, "lan-b.sock"), "52:54:00:c0:00:31", board=ARM_BOARD)
    b.create_disk()
    try:
        yield b
    finally:
        b.power_off()
        try:
            b.data_files(["/var/log/ha-log", "/var/log/hanode.out"], armhf_image_dir)
        except Exception:  # the post-mortem copy must not hide the test's own failure
            pass
        if os.path.exists(b.log_path):
            shutil.copy(b.log_path, os.path.join(armhf_image_dir, "armsolo-console.log"))
        shutil.rmtree(d, ignore_errors=True)


def hang_and_expect_reset(box: Box, label: str, wait_back: bool = True) -> float:
    """SIGSTOP the box's hanode (the one holder of /dev/watchdog), wait for the reset (the
    kernel's first line) and the shell after it; returns when the hang began."""
    pid = box.sh("cat /run/hanode.pid")[1].strip()
    assert pid.isdigit(), "no hanode pid on %s: %r" % (box.name, pid)
    boots = box.boots
    box.sh("kill -STOP %s" % pid)
    t_hang = time.monotonic()
    box.expect_reboot(timeout=HANG_RESET_TIMEOUT)
    record("%s: hanode SIGSTOP -> watchdog reset (kernel's first line)" % label, time.monotonic() - t_hang)
    if wait_back:
        box.wait_shell(BOOT_TIMEOUT * 2)
        assert box.boots == boots + 1, "%s booted %d times after the hang, not once" % (box.name, box.boots - boots)
    return t_hang


def test_armhf_agent_and_watchdog_reset(armhf_box: Box) -> None:
    """hanode runs on 32-bit ARM, drives the imx2 watchdog through its ioctls, and a hung hanode
    gets the box reset by the SoC's watchdog; the generation on the SD card's data partition grows."""
    box = armhf_box
    box.power_on()
    record("armhf solo: power-on -> shell (-kernel, TCG)", box.wait_shell(BOOT_TIMEOUT))
    _, arch = box.sh("uname -m; python3 -c 'import struct; print(struct.calcsize(\"P\"))'")
    assert arch.split() == ["armv7l", "4"], arch
    assert "/data type ext4" in box.sh("mount")[1], "the SD card's data partition is not mounted"
    assert box.sh("cat /sys/class/watchdog/watchdog0/identity")[1].strip() == "imx2+ watchdog"
    # alone on the cable: after initdead hanode declares node2 dead and takes the group
    wait_for("hanode on the armhf box to hold the group alone", lambda: alone_holding(box), READY_TIMEOUT)
    record("armhf solo: power-on -> READY (alone, group held)", time.monotonic() - box.powered_on_at)
    assert holds_vip(box) and web_running(box)
    # hanode opened the watchdog itself and the driver took its timeout (ioctls on 32-bit)
    _, log = box.sh("cat /data/var/log/ha-log /data/var/log/hanode.out 2>/dev/null | grep -i watchdog", check=False)
    assert re.search(r"imx2\+ watchdog", log) and re.search(r"timeout\D{0,20}6", log), \
        "hanode's log does not show the imx2 watchdog armed with 6 s:\n" + log
    gen_before = generation(box)
    t_hang = hang_and_expect_reset(box, "armhf solo")
    wait_for("hanode to hold the group again after the reset", lambda: alone_holding(box), READY_TIMEOUT)
    record("armhf solo: hanode SIGSTOP -> reset -> READY again", time.monotonic() - t_hang)
    gen_after = generation(box)
    assert gen_after > gen_before, (gen_before, gen_after)
    note("armhf solo: boot generation %d before the watchdog reset, %d after" % (gen_before, gen_after))


@pytest.mark.slow
def test_mixed_pair_armhf_and_x86_64(armhf_image_dir: str, image_dir: str) -> None:
    """node1 on the armhf board (preferred: it holds the group), node2 on the x86_64 board: cold
    start, power loss of the active armhf box, failover to x86_64, failback, and a hung agent on
    the armhf box reset by its watchdog while the x86_64 box takes over - the wire and the whole
    agent across 32-bit ARM and 64-bit x86."""
    pair = Pair(armhf_image_dir, image2=image_dir, board1=ARM_BOARD, board2=BOARD)
    try:
        _mixed_pair_story(pair)
    finally:
        pair.close(keep_logs_in=armhf_image_dir)


def _mixed_pair_story(pair: Pair) -> None:
    arm, x86 = pair.boxes
    t_start = time.monotonic()
    # 1. cold start
    arm.power_on()
    x86.power_on()
    for b in (arm, x86):
        record("mixed 1. %s (%s): power-on -> shell" % (b.name, b.board), b.wait_shell(BOOT_TIMEOUT * 2))
    wait_for("the armhf box to hold the VIP with the web service running",
             lambda: holds_vip(arm) and web_running(arm), READY_TIMEOUT * 2)
    wait_for("the armhf box to hold the group with its peer up", lambda: settled(arm, "node1"), READY_TIMEOUT * 2)
    record("mixed 1. armhf: power-on -> READY (peer up, group held)", time.monotonic() - arm.powered_on_at)
    wait_for("the x86_64 box to see node1 holding", lambda: settled(x86, "node1"), READY_TIMEOUT)
    record("mixed 1. x86_64: power-on -> READY (peer up, node1 holds)", time.monotonic() - x86.powered_on_at)
    assert holds_vip(arm) and not holds_vip(x86)
    assert fetch_vip(x86) == "node1", "the x86_64 box does not reach the armhf box's VIP"
    gen_before = generation(arm)

    # 2. power loss of the active (armhf) box: failover to x86_64
    arm.power_off()
    t_cut = time.monotonic()
    wait_for("the x86_64 box to take over", lambda: holds_vip(x86) and web_running(x86), 90)
    record("mixed 2. armhf power loss -> x86_64 holds VIP + web", time.monotonic() - t_cut)
    assert fetch_vip(x86) == "node2"
    assert alone_holding(x86)

    # 3. failback to the armhf box
    arm.power_on()
    t_on = time.monotonic()
    arm.wait_shell(BOOT_TIMEOUT * 2)
    wait_for("the armhf box to get the group back", lambda: holds_vip(arm) and web_running(arm), READY_TIMEOUT * 2)
    record("mixed 3. armhf power-on -> failback complete", time.monotonic() - t_on)
    wait_for("the x86_64 box to release and agree", lambda: not holds_vip(x86) and settled(x86, "node1"), 60)
    assert fetch_vip(x86) == "node1"
    gen_failback = generation(arm)
    assert gen_failback > gen_before

    # 4. hung agent on the armhf box: its imx2 watchdog resets it, x86_64 holds meanwhile
    boots = arm.boots
    t_hang = hang_and_expect_reset(arm, "mixed 4. armhf", wait_back=False)
    wait_for("the x86_64 box to hold while the armhf box reboots", lambda: holds_vip(x86) and web_running(x86), 60)
    record("mixed 4. armhf hanode SIGSTOP -> x86_64 holds VIP + web", time.monotonic() - t_hang)
    arm.wait_shell(BOOT_TIMEOUT * 2)
    assert arm.boots == boots + 1, "the armhf box booted %d times after the hang, not once" % (arm.boots - boots)
    wait_for("the pair to be whole again", lambda: settled(arm, "node1") and settled(x86, "node1"),
             READY_TIMEOUT * 2)
    record("mixed 4. armhf watchdog reset -> pair whole again", time.monotonic() - t_hang)
    wait_for("the x86_64 box to release the VIP", lambda: not holds_vip(x86) and not web_running(x86), 60)
    assert fetch_vip(x86) == "node1"
    gen_reset = generation(arm)
    assert gen_reset > gen_failback, (gen_failback, gen_reset)
    note("mixed: armhf boot generation %d, %d after power cycle, %d after watchdog reset"
         % (gen_before, gen_failback, gen_reset))
    record("mixed pair test", time.monotonic() - t_start)
