"""Helpers shared by the core's portable tests (CPython and MicroPython alike; no pytest)."""


def raises(exc, fn, *args):
    """True if fn(*args) raises exc (pytest.raises is not available on MicroPython)."""
    try:
        fn(*args)
    except exc:
        return True
    return False


def record(box, kind="send"):
    """(time, output) for every output of ``kind`` a sim Box emits from now on (a tap)."""
    seen = []
    original = box.handle

    def handle(outputs):
        for o in outputs:
            if o.kind == kind:
                seen.append((box.sim.now, o))
        original(outputs)
    box.handle = handle
    return seen


def settled_pair(sim):
    """Power both boxes of ``sim`` on and wait until one holds the group; return sim."""
    sim.power_on("node1")
    sim.power_on("node2")
    assert sim.run_until(lambda: sim.settled(), 5000) is not None
    return sim
