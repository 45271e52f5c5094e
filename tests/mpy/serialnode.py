"""One hanode node on the MicroPython unix port, on a real serial device.

Theory of operation
-------------------
The half of a mixed-runtime pair that runs on MicroPython: the real core
(``Node``) and agent loop (``Agent``), the real serial link
(``hanode.links.SerialLink``) on ``hanode.uart``'s MicroPython backend, which
opens the device (a PTY of the paced null-modem simulator), sets it raw 8N1
through the port's ``termios``, and hands MicroPython's asyncio the tty's
file - a native stream its ``select.poll`` can wait on.  The other half is a
CPython ``hanode run``.

What the unix port has no adapter for is replaced by files: the resource
runner records each start and stop as a line in the EVENTS file
(``<epoch s> <node> start|stop <group>``, the same lines the CPython node's
resource script writes), the probe answers "not in use" (there is no VIP
here to probe), and the test asks for a clean shutdown by creating
``DIR/stop``.

``micropython tests/mpy/serialnode.py DIR NODE GENERATION EVENTS`` with
``MICROPYPATH=<repo>:.frozen``; DIR holds ha.cf, authkeys and haresources.
Log lines go to stdout (``<ms> <level> <text>``).  Exits 0 after a clean
shutdown.
"""

import os
import sys
import time

from hanode import aio
from hanode.agent import Agent
from hanode.core.config import parse
from hanode.core.node import Node
from hanode.links import SerialLink
from hanode.uart import Serial

ACTION_MS = 3
STOP_POLL_MS = 100


def read(path):
    with open(path) as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FileRunner:
    """Resources as lines in a shared events file (CPython's resource script writes the same)."""

    def __init__(self, events, me):
        self.events = events
        self.me = me

    def _note(self, what, key):
        with open(self.events, "a") as f:
            f.write("%.6f %s %s %s\n" % (time.time(), self.me, what, key))

    async def acquire(self, key):
        self._note("start", key)
        await aio.sleep_ms(ACTION_MS)
        return True, ""

    async def release(self, key):
        await aio.sleep_ms(ACTION_MS)
        self._note("stop", key)
        return True, ""

    async def probe(self, key):
        return False, "no address to probe on the unix port"


def log(level, text):
    print("%d %s %s" % (aio.ticks_ms(), level, text))


async def watch_stop(agent, path):
    while not agent.is_stopped:
        if exists(path):
            agent.shutdown()
            return
        await aio.sleep_ms(STOP_POLL_MS)


async def main(directory, me, generation, events):
    cfg = parse(read(directory + "/ha.cf"), read(directory + "/authkeys"), read(directory + "/haresources"),
                me=me)
    port = cfg.serial[0]
    link = SerialLink(Serial(port, cfg.baud), log=log, reopen=lambda: Serial(port, cfg.baud))
    node = Node(cfg, me=me, generation=generation, links=[link.name])
    agent = Agent(node, [link], FileRunner(events, me), log)
    log("info", "READY: generation %d on %s (%s)" % (generation, port, sys.implementation.name))
    watcher = aio.create_task(watch_stop(agent, directory + "/stop"))
    try:
        await agent.run()
    finally:
        watcher.cancel()
        link.close()
    log("info", "stopped")


if __name__ == "__main__":
    aio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
