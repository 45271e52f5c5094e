"""The appliance image, proved in QEMU: it is laid out as flashed, it boots, its watchdog resets
a hung box, and two boxes joined by a 19200-baud null-modem and a LAN fail over and back.

Every box boots disk.img through its own bootloader (syslinux), copy-on-write, under TCG with
256 MB; the identity is typed at the boot prompt.  Nothing is mocked: the guest runs the real
hanode on the real kernel drivers (i6300esb, virtio-net, virtio-blk, 8250 UART), the VIP is a real address that
the other box reaches over the emulated LAN, the web service is BusyBox httpd.
"""

import os
import re
import struct
import subprocess
import time
from typing import Dict

import pytest

from hanode.core.config.authkeys import EXAMPLE_KEYS
from imagelab import (BOOT_TIMEOUT, READY_TIMEOUT, VIP, Pair, alone_holding, boot_chart, fetch_vip, generation,
                      holds_vip, note, pair_key, record, settled, status, wait_for, web_running)
from qemuvm import Box

pytestmark = pytest.mark.image

# -- the image as built --------------------------------------------------------------------------

def test_disk_image_layout(image_dir: str) -> None:
    """disk.img is flashable as built: syslinux MBR, active FAT boot partition, ext4 data."""
    disk = os.path.join(image_dir, "disk.img")
    with open(disk, "rb") as f:
        mbr = f.read(512)
    assert mbr[510:512] == b"\x55\xaa", "disk.img has no MBR signature"
    with open("/usr/lib/syslinux/mbr/mbr.bin", "rb") as f:
        code = f.read()
    assert mbr[:len(code)] == code, "disk.img's boot code is not syslinux's mbr.bin"
    parts = []
    for i in range(4):
        e = mbr[446 + 16 * i:446 + 16 * (i + 1)]
        boot, ptype, lba, sectors = e[0], e[4], struct.unpack("<I", e[8:12])[0], struct.unpack("<I", e[12:16])[0]
        if ptype:
            parts.append((boot, ptype, lba, sectors))
    assert [(p[0], p[1]) for p in parts] == [(0x80, 0x0C), (0x00, 0x83), (0x00, 0x83)], parts
    # the boot partition: syslinux installed, its config, and the very kernel built - no initrd:
    # the board's kernel mounts the system partition itself
    boot_lba = parts[0][2]
    fat = "%s@@%d" % (disk, boot_lba * 512)
    listing = subprocess.run(["mdir", "-a", "-b", "-i", fat, "::/"], capture_output=True, text=True, check=True).stdout
    for name in ("ldlinux.sys", "ldlinux.c32", "syslinux.cfg", "bzImage"):
        assert "::/" + name in listing, "no %s on the boot partition:\n%s" % (name, listing)
    assert "initrd" not in listing, "the boot partition carries an initrd:\n" + listing
    for name in ("bzImage",):
        on_disk = subprocess.run(["mtype", "-i", fat, "::/" + name], capture_output=True, check=True).stdout
        with open(os.path.join(image_dir, name), "rb") as f:
            assert on_disk == f.read(), "the boot partition's %s is not the one built" % name
    cfg = subprocess.run(["mtype", "-i", fat, "::/syslinux.cfg"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"(?m)^SERIAL 0 115200", cfg) and "console=ttyS0" in cfg, cfg
    assert "root=/dev/vda3 rootfstype=squashfs ro init=/sbin/overlay-init" in cfg and "INITRD" not in cfg, \
        "syslinux.cfg does not boot the system partition:\n" + cfg
    # the kernel is the board's own build (image/build-kernel): its setup header's version string
    with open(os.path.join(image_dir, "bzImage"), "rb") as f:
        kernel = f.read(65536)
    version_at = struct.unpack("<H", kernel[0x20E:0x210])[0] + 0x200
    kernel_version = kernel[version_at:kernel.index(b"\0", version_at)].decode()
    assert re.match(r"6\.1\.\d+-hanode ", kernel_version), "bzImage is not the board's kernel: " + kernel_version
    # the system partition (p3) is rootfs.squashfs byte for byte
    _, _, sys_lba, sys_sectors = parts[2]
    squashfs = os.path.join(image_dir, "rootfs.squashfs")
    with open(disk, "rb") as f, open(squashfs, "rb") as g:
        f.seek(sys_lba * 512)
        built = g.read()
        assert len(built) <= sys_sectors * 512 and f.read(len(built)) == built, \
            "the system partition is not rootfs.squashfs"
    # the data partition: ext4 labelled hanode-data holding the pair's configuration
    _, _, lba, sectors = parts[1]
    data = os.path.join(image_dir, "data-check.ext4")
    try:
        subprocess.run(["dd", "if=" + disk, "of=" + data, "bs=512", "skip=%d" % lba, "count=%d" % sectors,
                        "status=none"], check=True)
        label = subprocess.run(["e2label", data], capture_output=True, text=True, check=True).stdout.strip()
        assert label == "hanode-data"
        ls = subprocess.run(["debugfs", "-R", "ls -l /etc/ha.d", data], capture_output=True, text=True,
                            check=True).stdout
        for name in ("ha.cf", "authkeys", "haresources"):
            assert name in ls, "no /etc/ha.d/%s on the data partition:\n%s" % (name, ls)
        mode = subprocess.run(["debugfs", "-R", "stat /etc/ha.d/authkeys", data], capture_output=True,
                              text=True, check=True).stdout
        assert re.search(r"Mode:\s+0600", mode), "authkeys is not mode 600 on the data partition:\n" + mode
        # the pair key made at build time (image/build --key, see imagelab.pair_key), never a published one
        keys = subprocess.run(["debugfs", "-R", "cat /etc/ha.d/authkeys", data], capture_output=True,
                              text=True, check=True).stdout
        key_lines = [line.split() for line in keys.splitlines() if line.split()[:2] == ["1", "hmac-sha256"]]
        assert key_lines == [["1", "hmac-sha256", pair_key()]], keys
        assert not set(EXAMPLE_KEYS) & set(keys.split()), "the image carries a published key:\n" + keys
        assert "hanode" in subprocess.run(["debugfs", "-R", "ls /var/lib", data], capture_output=True,
                                           text=True, check=True).stdout, "no /var/lib/hanode on the data partition"
    finally:
        if os.path.exists(data):
            os.unlink(data)
    # the system part: kernel + root filesystem, compressed
    system = sum(os.path.getsize(os.path.join(image_dir, n)) for n in ("bzImage", "rootfs.squashfs"))
    record("system size (bzImage + rootfs.squashfs), MiB", system / 1048576.0)
    assert system <= 24 * 1024 * 1024, "compressed system part is %.1f MiB (aim: 24)" % (system / 1048576.0)
    listing = [line[len("squashfs-root/"):] for line in
               subprocess.run(["unsquashfs", "-l", "-no-progress", squashfs], capture_output=True, text=True,
                              check=True).stdout.split("\n") if line.startswith("squashfs-root/")]
    for path in ("usr/sbin/init", "usr/sbin/overlay-init", "media/system", "media/rw", "usr/bin/hanode",
                 "usr/bin/python3.11", "etc/init.d/S45hanode", "etc/init.d/webdemo",
                 "usr/lib/python3/dist-packages/hanode/cli.py", "etc/modules.order"):
        assert path in listing, "rootfs.squashfs lacks /" + path
    assert not any(re.match(r"etc/init.d/S\d\dwebdemo", p) for p in listing), "webdemo must not have an S-link"
    assert not any("/hanode/lab" in p for p in listing), "the appliance must not carry the test bed (hanode/lab)"
    # every driver is built into the kernel: nothing to load at boot
    assert not any(p.startswith("usr/lib/modules/") for p in listing), "rootfs.squashfs carries kernel modules"


# -- one box -------------------------------------------------------------------------------------

def mem_available_kb(box: Box) -> int:
    m = re.search(r"MemAvailable:\s+(\d+) kB", box.sh("cat /proc/meminfo")[1])
    assert m, "%s: no MemAvailable in /proc/meminfo" % box.name
    return int(m.group(1))


def agent_memory(box: Box) -> Dict[str, int]:
    """The running hanode's RSS, PSS, USS and VmLck (kB, from /proc) and the box's MemAvailable and
    MemTotal, read in one shell command so that they belong to the same moment."""
    _, out = box.sh("p=$(cat /run/hanode.pid); cat /proc/$p/smaps_rollup /proc/$p/status /proc/meminfo")
    fields: Dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"(\w+):\s+(\d+) kB", line)
        if m and m.group(1) not in fields:
            fields[m.group(1)] = int(m.group(2))
    fields["Uss"] = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    missing = [k for k in ("Rss", "Pss", "VmLck", "MemAvailable", "MemTotal") if k not in fields]
    assert not missing, "%s: %s not in hanode's /proc files: %r" % (box.name, missing, out[-800:])
    return fields


def test_boot_python_and_watchdog_reset(box: Box) -> None:
    """A box boots from disk.img to a shell, runs hanode's Python, and the i6300esb watchdog
    resets it when the holder of /dev/watchdog stops petting; the data partition persists."""
    box.power_on()
    record("solo: power-on -> shell (bootloader, TCG)", box.wait_shell(BOOT_TIMEOUT))
    boot_chart(box, "solo")
    box.sh("python3 -c 'import hanode, hanode.cli, pyroute2, sdnotify, asyncio, hashlib, termios'", timeout=60)
    assert box.sh("cat /proc/cmdline")[1].find("hanode.node=node1") >= 0
    assert box.sh("hostname")[1].strip() == "node1"
    assert "/data type ext4" in box.sh("mount")[1]
    box.sh("echo before-reset >/data/marker && sync")
    agent = agent_memory(box)   # hanode READY (boot_chart waited for it), alone on the cable
    # hanode (if it runs) is the one holder of /dev/watchdog: let it go with the magic close
    box.sh("/etc/init.d/S45hanode stop >/dev/null 2>&1; true", timeout=60)
    time.sleep(1.0)
    without = mem_available_kb(box)
    note("solo: hanode's memory on the box (READY, holding nothing yet): RSS %.1f / PSS %.1f / USS %.1f MB, "
         "VmLck %.1f MB; MemAvailable %d kB with it, %d kB after stopping it (%.1f MB), MemTotal %d kB"
         % (agent["Rss"] / 1024, agent["Pss"] / 1024, agent["Uss"] / 1024, agent["VmLck"] / 1024,
            agent["MemAvailable"], without, (without - agent["MemAvailable"]) / 1024, agent["MemTotal"]))
    assert agent["Rss"] > 0 and without > agent["MemAvailable"] - 1024, (agent, without)
    assert box.boots == 1
    # arm a 3 s watchdog, pet it once, then stop - like a hung agent
    box.sh("python3 -c \"import fcntl, os, struct, time; fd = os.open('/dev/watchdog', os.O_WRONLY); "
           "fcntl.ioctl(fd, 0xC0045706, struct.pack('i', 3)); os.write(fd, b'1'); os._exit(0)\"", timeout=60)
    t_hang = time.monotonic()
    box.expect_reboot(timeout=30)
    record("solo: watchdog (3 s) stopped petting -> reset", time.monotonic() - t_hang)
    t_reset = time.monotonic()
    box.wait_shell(BOOT_TIMEOUT)
    record("solo: reset -> shell", time.monotonic() - t_reset)
    assert box.boots == 2, "the box did not come back through the bootloader"
    assert box.sh("cat /data/marker")[1].strip() == "before-reset"


# -- the pair ------------------------------------------------------------------------------------

def test_pair_failover_failback_and_watchdog(pair: Pair) -> None:
    """Heartbeat R1's classic pair, as appliances: boot, power loss, return, hang -> reset."""
    box1, box2 = pair.boxes
    t_start = time.monotonic()

    # 1. both boot; node1 (preferred) holds the VIP and the web service; box 2 reaches it
    box1.power_on()
    box2.power_on()
    for b in (box1, box2):
        record("1. %s: power-on -> shell" % b.name, b.wait_shell(BOOT_TIMEOUT))
    wait_for("box 1 to hold the VIP with the web service running",
             lambda: holds_vip(box1) and web_running(box1), READY_TIMEOUT)
    record("1. box1: power-on -> VIP + web service up", time.monotonic() - box1.powered_on_at)
    wait_for("box 1's hanode to see node2 and hold the group", lambda: settled(box1, "node1"), READY_TIMEOUT)
    record("1. box1: power-on -> READY (peer up, group held)", time.monotonic() - box1.powered_on_at)
    wait_for("box 2's hanode to see node1 holding the group", lambda: settled(box2, "node1"), READY_TIMEOUT)
    record("1. box2: power-on -> READY (peer up, node1 holds)", time.monotonic() - box2.powered_on_at)
    assert not holds_vip(box2) and not web_running(box2), "box 2 holds resources while box 1 does"
    assert fetch_vip(box2) == "node1", "box 2 fetching http://%s/ did not reach node1" % VIP
    for b, role in ((box1, "active"), (box2, "standby")):
        m = agent_memory(b)
        note("1. %s: hanode's memory (%s, pair settled): RSS %.1f / PSS %.1f / USS %.1f MB, VmLck %.1f MB; "
             "MemAvailable %d of %d kB" % (b.name, role, m["Rss"] / 1024, m["Pss"] / 1024, m["Uss"] / 1024,
                                          m["VmLck"] / 1024, m["MemAvailable"], m["MemTotal"]))
    gen_before = generation(box1)

    # 2. power loss of box 1: box 2 takes over and now serves the VIP itself
    box1.power_off()
    t_cut = time.monotonic()
    wait_for("box 2 to take over the VIP", lambda: holds_vip(box2) and web_running(box2), 90)
    record("2. box1 power loss -> box2 holds VIP + web", time.monotonic() - t_cut)
    assert fetch_vip(box2) == "node2"
    assert alone_holding(box2), "box 2's hanode does not report node1 dead and itself holding"

    # 3. box 1 powers on again: auto_failback gives the group back
    box1.power_on()
    t_on = time.monotonic()
    box1.wait_shell(BOOT_TIMEOUT)
    wait_for("box 1 to get the VIP back", lambda: holds_vip(box1) and web_running(box1), READY_TIMEOUT)
    record("3. box1 power-on -> failback complete (VIP + web on box1)", time.monotonic() - t_on)
    wait_for("box 2 to release the VIP", lambda: not holds_vip(box2) and not web_running(box2), 60)
    wait_for("box 2 to see node1 holding again", lambda: settled(box2, "node1"), 60)
    assert fetch_vip(box2) == "node1"
    gen_after_failback = generation(box1)
    assert gen_after_failback > gen_before, "box 1's boot generation did not grow across a power cycle"

    # 4. hang: SIGSTOP hanode inside box 1; the watchdog resets box 1, box 2 holds meanwhile
    assert box1.boots == 1
    pid = box1.sh("cat /run/hanode.pid")[1].strip()
    assert pid.isdigit(), "no hanode pid on box 1: %r" % pid
    box1.sh("kill -STOP %s" % pid)
    t_hang = time.monotonic()
    box1.expect_reboot(timeout=60)
    record("4. hanode SIGSTOP on box1 -> watchdog reset", time.monotonic() - t_hang)
    wait_for("box 2 to hold the VIP while box 1 reboots", lambda: holds_vip(box2) and web_running(box2), 60)
    record("4. hanode SIGSTOP on box1 -> box2 holds VIP + web", time.monotonic() - t_hang)
    assert fetch_vip(box2) == "node2"
    box1.wait_shell(BOOT_TIMEOUT)
    assert box1.boots == 2, "box 1 did not reboot through its bootloader"
    wait_for("box 1 to get the VIP back after the reset",
             lambda: holds_vip(box1) and web_running(box1), READY_TIMEOUT)
    wait_for("the pair to be whole again", lambda: settled(box2, "node1") and settled(box1, "node1"), 60)
    record("4. watchdog reset -> pair whole again", time.monotonic() - t_hang)
    assert not holds_vip(box2)
    assert fetch_vip(box2) == "node1"

    # 5. persistent state: the boot generation survived the reset and grew
    gen_after_reset = generation(box1)
    assert gen_after_reset > gen_after_failback, (gen_after_failback, gen_after_reset)
    st = status(box1)
    assert st and st.get("generation") == gen_after_reset, st
    note("5. box1 boot generation: %d at first boot, %d after the power cycle, %d after the watchdog reset"
         % (gen_before, gen_after_failback, gen_after_reset))
    record("whole pair test", time.monotonic() - t_start)
