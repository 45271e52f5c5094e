"""Shared pieces of the appliance image tests: where the image is, the measured times, and a
pair of boxes on one LAN and one null-modem cable.

(A module of its own rather than conftest.py, so that tests import it by a unique name.)
"""

import os
import shutil
import sys
import tempfile
from typing import List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if TOP not in sys.path:
    sys.path.insert(0, TOP)

from qemuvm import Box  # noqa: E402

BOARD = "qemu-x86_64"
IMAGE_DIR = os.path.join(TOP, "output", BOARD)

# step name -> seconds, in the order measured (printed by conftest's pytest_terminal_summary)
TIMES: List[Tuple[str, float]] = []
NOTES: List[str] = []


def record(step: str, seconds: float) -> None:
    TIMES.append((step, seconds))
    sys.stderr.write("[image] %-55s %6.1f s\n" % (step, seconds))


def note(text: str) -> None:
    NOTES.append(text)
    sys.stderr.write("[image] %s\n" % text)


class Pair:
    """Two boxes on one LAN and one null-modem cable."""

    def __init__(self, image: str, boot: str = "disk") -> None:
        from hanode.lab.cable import NullModem, UnixSocketEndpoint

        self.dir = tempfile.mkdtemp(prefix="hnimg%d-" % os.getpid())
        lan1 = os.path.join(self.dir, "lan1.sock")
        lan2 = os.path.join(self.dir, "lan2.sock")
        self.box1 = Box("box1", self.dir, image, "node1", "192.0.2.11/24", lan1, lan2,
                        "52:54:00:c0:00:11", boot=boot)
        self.box2 = Box("box2", self.dir, image, "node2", "192.0.2.12/24", lan2, lan1,
                        "52:54:00:c0:00:12", boot=boot)
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
