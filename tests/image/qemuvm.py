"""One appliance box in QEMU, its serial console driven from Python.

Theory of operation
-------------------
A ``Box`` is one QEMU process (TCG, ``-m 256``) booting the appliance's ``disk.img`` through a
copy-on-write qcow2 overlay, so two boxes share one image and each keeps its own data partition
across its reboots.  Its hardware is what the appliance expects: an i6300esb watchdog wired to
``-action watchdog=reset``, a virtio-net NIC on a ``-netdev dgram`` LAN made of two unix datagram
sockets (no host interface, no host network: frames only go to the other box), the first UART on
QEMU's stdio (the console, read by a thread into a transcript) and the second UART on a unix
stream socket that the null-modem simulator joins to the other box's.

The box boots through the image's own bootloader: syslinux's ``boot:`` prompt appears on the
console and the harness types the node's identity there (``hanode hanode.node=node1
hanode.ip=192.0.2.11/24``), exactly as a technician would on a real box.  After a watchdog reset
the prompt comes back and is answered again by the same thread, so a reset box boots as itself.
(``boot="kernel"`` uses QEMU's -kernel/-append with syslinux.cfg's command line instead: no
bootloader.)

``board="qemu-sabrelite"`` is the 32-bit ARM box instead (``qemu-system-arm -M sabrelite``,
512 MB): the cable on UART1, the console on UART2, the imx2 watchdog, the FEC on the same LAN,
the SD card image as an ``sd-card``; it always boots -kernel/-dtb/-initrd (QEMU has no model of
the board's boot flash), and a boot is counted from S05modules' line instead of a prompt.

``expect()`` waits for a regular expression in the console output after a cursor and moves the
cursor past the match; ``sh()`` runs one shell command and returns its output and status, found
between markers that the shell prints but its echo cannot contain (``printf '%s%s'`` splits them).
"""

import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from typing import List, Optional, Pattern, Tuple, Union

QEMU = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
QEMU_OF_BOARD = {"qemu-x86_64": QEMU, "qemu-sabrelite": shutil.which("qemu-system-arm") or "qemu-system-arm"}
# the board's flashable image: the PC's disk, the SABRE Lite's SD card
DISK_OF_BOARD = {"qemu-x86_64": "disk.img", "qemu-sabrelite": "sdcard.img"}
QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
# TCG by default: KVM is present on these machines but does not boot guests. Where it works,
# HANODE_QEMU_ACCEL=kvm makes the boots several times faster.
ACCEL = os.environ.get("HANODE_QEMU_ACCEL", "tcg")
# the first line every boot prints at loglevel=4 (S05modules, early in rcS), bootloader or not
BOOT_LINE = "Loading kernel modules"
# without a bootloader banner, the first sign of a new boot is the kernel's first console line
# (timestamped 0.000000: at loglevel=4 there is one on both boards), else S05modules' line
KERNEL_FIRST_LINE = r"\[\s*0\.000000\]|" + BOOT_LINE


def syslinux_append(board: str) -> str:
    """The kernel command line of the board's syslinux.cfg (its APPEND line)."""
    cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "board", board, "syslinux.cfg")
    with open(cfg) as f:
        m = re.search(r"(?m)^\s*APPEND\s+(.*)$", f.read())
    assert m, "%s has no APPEND line" % cfg
    return m.group(1)


def linux_partition(disk: str) -> Optional[Tuple[int, int]]:
    """(first sector, sectors) of the first type-0x83 partition in DISK's MBR, or None."""
    with open(disk, "rb") as f:
        mbr = f.read(512)
    for i in range(4):
        e = mbr[446 + 16 * i:462 + 16 * i]
        if e[4] == 0x83:
            return struct.unpack("<I", e[8:12])[0], struct.unpack("<I", e[12:16])[0]
    return None


class ConsoleTimeout(AssertionError):
    """An expected console line did not come: the message carries the console's tail."""


class Box:
    def __init__(self, name: str, workdir: str, image_dir: str, node: str, ip: str,
                 lan_local: str, lan_remote: str, mac: str, boot: str = "disk",
                 memory_mb: int = 256, extra_cmdline: str = "", board: str = "qemu-x86_64") -> None:
        self.name = name
        self.board = board
        self.workdir = workdir
        self.image_dir = image_dir
        self.node = node
        self.ip = ip
        self.lan_local = lan_local
        self.lan_remote = lan_remote
        self.mac = mac
        # QEMU models no SABRE Lite boot flash (its U-Boot): that board always boots -kernel
        self.boot = "kernel" if board == "qemu-sabrelite" else boot
        self.memory_mb = memory_mb
        self.extra_cmdline = extra_cmdline
        self.overlay = os.path.join(workdir, name + ".qcow2")
        self.cable_socket = os.path.join(workdir, name + "-ttyS1.sock")
        self.log_path = os.path.join(workdir, name + "-console.log")
        self.proc: Optional[subprocess.Popen] = None
        self._buf = ""
        self._cursor = 0
        self._cond = threading.Condition()
        self._reader: Optional[threading.Thread] = None
        self._marker = 0
        self._prompt_pos = 0  # console position after the last boot prompt answered
        self._arrivals: List[Tuple[float, int]] = []  # (host clock, console length) per chunk read
        self.powered_on_at: Optional[float] = None
        self.boots = 0  # boots seen (1 + resets) since power-on: boot prompts, or S05modules' line

    # -- lifecycle -------------------------------------------------------------------------------

    def create_disk(self) -> None:
        """A fresh copy-on-write disk for this box (its data partition starts as flashed)."""
        if os.path.exists(self.overlay):
            os.unlink(self.overlay)
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.join(self.image_dir, DISK_OF_BOARD[self.board]), self.overlay], check=True)

    @property
    def cmdline_words(self) -> str:
        words = "hanode.node=%s hanode.ip=%s" % (self.node, self.ip)
        return (words + " " + self.extra_cmdline).strip()

    def argv(self) -> List[str]:
        if self.board == "qemu-sabrelite":
            return self._argv_sabrelite()
        args = [QEMU, "-name", self.name, "-M", "pc", "-accel", ACCEL, "-m", str(self.memory_mb),
                "-display", "none", "-monitor", "none", "-no-user-config", "-nodefaults",
                "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
                "-chardev", "socket,id=cable,path=%s,server=on,wait=off" % self.cable_socket,
                "-serial", "chardev:cable",
                # cache=writeback (not unsafe): the guest's flushes reach the host file, so pulling
                # the plug (SIGKILL) loses only what the guest had not flushed, as on a real disk
                "-drive", "file=%s,if=virtio,format=qcow2,cache=writeback" % self.overlay,
                "-device", "i6300esb", "-action", "watchdog=reset",
                "-netdev", "dgram,id=lan,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s"
                % (self.lan_local, self.lan_remote),
                "-device", "virtio-net-pci,netdev=lan,mac=%s" % self.mac]
        if self.boot == "kernel":
            # the kernel and command line as syslinux.cfg boots them (and a stage-1 initrd if the
            # board has one), on the serial console only
            args += ["-kernel", os.path.join(self.image_dir, "bzImage")]
            initrd = os.path.join(self.image_dir, "initrd.gz")
            if os.path.exists(initrd):
                args += ["-initrd", initrd]
            words = [w for w in syslinux_append(self.board).split() if w != "console=tty0"]
            args += ["-append", " ".join(words + [self.cmdline_words])]
        return args

    def _argv_sabrelite(self) -> List[str]:
        """The i.MX6 Quad board: UART1 is the cable, UART2 the console (ttymxc1), the imx2
        watchdog resets the machine, the FEC on the LAN, the SD card holds sdcard.img."""
        o = self.image_dir
        return [QEMU_OF_BOARD[self.board], "-name", self.name, "-M", "sabrelite", "-m", str(max(self.memory_mb, 512)),
                "-display", "none", "-monitor", "none", "-no-user-config", "-nodefaults",
                "-chardev", "socket,id=cable,path=%s,server=on,wait=off" % self.cable_socket,
                "-serial", "chardev:cable",
                "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
                # writethrough: QEMU's SD card model gets no flush from the guest, so with writeback
                # the qcow2 overlay's own metadata would stay in QEMU's memory and a power cut
                # (SIGKILL) would lose every write; a card's writes reach its flash by themselves
                "-drive", "file=%s,if=none,id=sd,format=qcow2,cache=writethrough" % self.overlay,
                "-device", "sd-card,drive=sd", "-action", "watchdog=reset",
                "-netdev", "dgram,id=lan,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s"
                % (self.lan_local, self.lan_remote),
                "-net", "nic,netdev=lan,macaddr=%s" % self.mac,
                "-kernel", os.path.join(o, "zImage"), "-dtb", os.path.join(o, "imx6q-sabrelite.dtb"),
                "-initrd", os.path.join(o, "rootfs.cpio.gz"),
                "-append", "console=ttymxc1,115200 panic=5 loglevel=4 " + self.cmdline_words]

    def power_on(self) -> None:
        assert self.proc is None, "box %s is already on" % self.name
        for path in (self.lan_local, self.cable_socket):
            if os.path.exists(path):
                os.unlink(path)  # a dead QEMU leaves its sockets behind; binding would fail
        self.powered_on_at = time.monotonic()
        self.boots = 0
        with self._cond:
            # nothing the previous life printed (its shell prompt, its boot prompt) counts now
            self._cursor = self._prompt_pos = len(self._buf)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self._reader = threading.Thread(target=self._read, name="console-" + self.name, daemon=True)
        self._reader.start()

    def power_off(self) -> None:
        """Pull the plug: SIGKILL QEMU (no shutdown, no flush beyond what the guest did)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.proc = None
        self._reader = None

    def data_files(self, paths: List[str], dest_dir: str) -> List[str]:
        """Copy files out of this box's data partition (powered off or not: the overlay is read
        as it is on the host, the ext4 journal replayed on a scratch copy).  Returns the copies."""
        raw = os.path.join(self.workdir, self.name + "-disk.raw")
        part = os.path.join(self.workdir, self.name + "-data.ext4")
        copied = []
        try:
            subprocess.run([QEMU_IMG, "convert", "-U", "-O", "raw", self.overlay, raw], check=True,
                           capture_output=True)
            found = linux_partition(raw)
            if not found:
                return copied
            subprocess.run(["dd", "if=" + raw, "of=" + part, "bs=512", "skip=%d" % found[0],
                            "count=%d" % found[1], "status=none"], check=True)
            subprocess.run(["e2fsck", "-fy", part], capture_output=True)  # replays the journal
            for path in paths:
                dest = os.path.join(dest_dir, "%s-%s" % (self.name, os.path.basename(path)))
                r = subprocess.run(["debugfs", "-R", "dump %s %s" % (path, dest), part], capture_output=True)
                if r.returncode == 0 and os.path.exists(dest):
                    copied.append(dest)
        finally:
            for f in (raw, part):
                if os.path.exists(f):
                    os.unlink(f)
        return copied

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- console -----------------------------------------------------------------------------

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        with open(self.log_path, "ab") as log:
            log.write(b"\n===== power on %s =====\n" % time.strftime("%H:%M:%S").encode())
            while True:
                try:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                text = chunk.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
                with self._cond:
                    self._arrivals.append((time.monotonic(), len(self._buf)))
                    self._buf += text
                    self._cond.notify_all()
                    if self.boot == "disk":
                        self._answer_boot_prompt()
                    else:
                        self._count_kernel_boots()

    def _answer_boot_prompt(self) -> None:
        # called with the lock held: every syslinux "boot:" prompt gets this box's identity
        while True:
            i = self._buf.find("boot: ", self._prompt_pos)
            if i < 0:
                return
            self._prompt_pos = i + 6
            self.boots += 1
            self._write("hanode " + self.cmdline_words + "\r")

    def _count_kernel_boots(self) -> None:
        # called with the lock held: without a bootloader, a boot is S05modules' first line
        while True:
            i = self._buf.find(BOOT_LINE, self._prompt_pos)
            if i < 0:
                return
            self._prompt_pos = i + len(BOOT_LINE)
            self.boots += 1

    def _write(self, text: str) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(text.encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def send(self, text: str) -> None:
        self._write(text)

    def mark(self) -> int:
        """The console position now: expect(..., since=mark) looks only at what came after."""
        with self._cond:
            return len(self._buf)

    def expect(self, pattern: Union[str, Pattern], timeout: float, since: Optional[int] = None) -> "re.Match":
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            start = self._cursor if since is None else since
            while True:
                m = rx.search(self._buf, start)
                if m:
                    self._cursor = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and
                                 not self._reader_alive()):
                    raise ConsoleTimeout("%s: no %r on the console within %.0f s; last output:\n%s"
                                         % (self.name, rx.pattern, timeout, self.tail()))
                self._cond.wait(min(left, 0.5))

    def arrived_at(self, pattern: str, since: int = 0) -> Optional[float]:
        """Host clock (time.monotonic) at which the first match of PATTERN after console position
        SINCE was read from the console, or None: a boot chart's host-side stamps."""
        with self._cond:
            m = re.compile(pattern).search(self._buf, since)
            if not m:
                return None
            pos = m.end() - 1
            return next((t for t, start in reversed(self._arrivals) if start <= pos), None)

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def tail(self, n: int = 1500) -> str:
        return self._buf[-n:]

    def sh(self, command: str, timeout: float = 30.0, check: bool = True) -> Tuple[int, str]:
        """Run COMMAND in the console's shell; returns (status, output)."""
        self._marker += 1
        tag = "%s%d" % (self.name.upper(), self._marker)
        since = self.mark()
        # the markers only appear in the output once printf has joined their halves
        self._write("printf '%%s%%s\\n' '<<B' '%s>>'; %s; printf '%%s%%s\\n' '<<E' \"%s $?>>\"\n"
                    % (tag, command, tag))
        try:
            m = self.expect(re.compile(r"<<B%s>>\n(.*?)<<E%s (\d+)>>" % (tag, tag), re.S), timeout, since=since)
        except ConsoleTimeout:
            with self._cond:
                rebooted = re.search(r"SYSLINUX \d|Linux version|" + BOOT_LINE, self._buf[since:])
            if rebooted:
                raise ConsoleTimeout("%s rebooted while running `%s` (a watchdog reset? its hanode log is "
                                     "copied next to the image after the test):\n%s"
                                     % (self.name, command, self.tail())) from None
            raise
        status, out = int(m.group(2)), m.group(1)
        if check and status != 0:
            raise AssertionError("%s: `%s` exited %d:\n%s" % (self.name, command, status, out))
        return status, out

    def expect_reboot(self, timeout: float) -> None:
        """Wait for the box to come back through its firmware: the bootloader's banner (SeaBIOS
        prints nothing on a serial-only machine), or the kernel's first line with -kernel."""
        self.expect(r"SYSLINUX \d" if self.boot == "disk" else KERNEL_FIRST_LINE, timeout)

    def wait_shell(self, timeout: float) -> float:
        """Wait until the console shell answers; returns seconds since power-on."""
        self.expect(r"Please press Enter|# ", timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sh("true", timeout=5)
                break
            except ConsoleTimeout:
                if time.monotonic() > deadline:
                    raise
        assert self.powered_on_at is not None
        return time.monotonic() - self.powered_on_at
