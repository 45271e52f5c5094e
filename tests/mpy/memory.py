"""What the core costs in RAM on MicroPython: code per module, config and node per box.

Theory of operation
-------------------
``gc.mem_alloc()`` after a ``gc.collect()`` is the live heap.  Its growth over
each import is the module's bytecode and tables (compiled from source on the
unix port; on a board, frozen or ``.mpy`` modules keep bytecode in flash), over
``parse`` the parsed Config, and over building two Nodes that exchange frames
on a simulated clock until node1 holds its group, the live state of both nodes
(decoders, replay guard, liveness, group tables, the peer's last frame).
Output lists are dropped before each reading: they are garbage by the next tick.

Run: ``MICROPYPATH=<repo>:.frozen micropython tests/mpy/memory.py``; under
CPython it only says that it needs MicroPython.  Prints one ``name bytes`` line
per figure and a final ``per_node`` line.
"""

import gc
import sys

if not hasattr(gc, "mem_alloc"):
    print("memory.py measures MicroPython's heap (gc.mem_alloc): run it under micropython")
    sys.exit(0)

try:
    import hanode  # noqa: F401
except ImportError:
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, _here + "/../..")


def used():
    gc.collect()
    return gc.mem_alloc()


figures = []


def note(name, value):
    figures.append((name, value))
    print("%-36s %7d" % (name, value))


base = used()
for modname in ("asyncio", "hanode.core.compat", "hanode.core.limits", "hanode.core.outputs",
                "hanode.core.liveness", "hanode.core.ownership", "hanode.core.auth", "hanode.core.frame",
                "hanode.core.acks", "hanode.core.wants", "hanode.core.status",
                "hanode.core.config", "hanode.core.node", "hanode.aio", "hanode.agent"):
    before = used()
    __import__(modname)
    note("code " + modname, used() - before)
note("code total", used() - base)

from hanode.core.config import parse  # noqa: E402
from hanode.core.node import Node  # noqa: E402

HA_CF = """keepalive 50ms
warntime 150ms
deadtime 250ms
initdead 1
baud 19200
serial /dev/ttyS0
auto_failback on
node node1
node node2
"""
AUTHKEYS = "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n"
HARESOURCES = "node1 192.0.2.100 httpd\n"

before = used()
configs = {}
for name in ("node1", "node2"):
    configs[name] = parse(HA_CF, AUTHKEYS, HARESOURCES, me=name)
note("config (one box)", (used() - before) // 2)

before = used()
nodes = {name: Node(configs[name], me=name, generation=1) for name in configs}
note("node, fresh (one box)", (used() - before) // 2)

# exchange frames on a simulated clock until node1 holds its group (actions complete at once)
pending = {"node1": [], "node2": []}
frames = 0


def handle(name, outputs, now):
    global frames
    other = "node2" if name == "node1" else "node1"
    for o in outputs:
        if o.kind == "send":
            frames += 1
            pending[other].append(o.data)
        elif o.kind in ("acquire", "release"):
            handle(name, nodes[name].completed(o.group, True, now), now)
        elif o.kind == "probe":
            handle(name, nodes[name].probed(o.group, False, now), now)


now = 1000
for name in nodes:
    handle(name, nodes[name].start(now), now)
held_at = None
while now < 4000:
    now += 10
    for name in nodes:
        chunks = pending[name]
        pending[name] = []
        for data in chunks:
            handle(name, nodes[name].receive(data, now), now)
        handle(name, nodes[name].tick(now), now)
    if held_at is None and nodes["node1"].groups[0].state == "running":
        held_at = now
assert held_at is not None, "node1 never took its group in the simulated exchange"
pending = {"node1": [], "node2": []}
after = used()
note("node, started + %d frames (one box)" % frames, (after - before) // 2)
print("per_node %d bytes (config %d + node %d)" % (
    figures[-3][1] + figures[-1][1], figures[-3][1], figures[-1][1]))
