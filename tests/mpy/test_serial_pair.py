"""A mixed-runtime pair on a real cable: MicroPython on one end, CPython ``hanode run`` on the other.

Theory of operation
-------------------
The paced null-modem simulator (19200 baud 8N1) joins two real PTYs.  One
node is ``tests/mpy/serialnode.py`` under the MicroPython unix port, in a
560 KB heap: room to compile the core, the agent, the serial link and the
uart backend from source at import (528 KB was the smallest that passed on
2026-11-29, after the LAN health, monitoring and restart notice code of
issues 14 and 15; 512 KB failed with MemoryError at import; a board freezes its modules as bytecode
and needs less) - the
real core and agent loop, the serial link on ``hanode.uart``'s MicroPython
backend (the tty's file polled by MicroPython's own asyncio); the other is
``hanode run`` under CPython.  Both run the same ha.cf timings and one group,
``grp``, preferred by node1, whose starts and stops both nodes append to one
events file (the CPython node through its resource.d script).  The story runs
in both directions (MicroPython as node1, then as node2):

1. cold start: node1 starts the group, node2 nothing, and it stays so;
2. power loss of node1 (SIGKILL; its resources vanish with it): node2
   starts the group within deadtime + FAILOVER_SLACK_S;
3. node1 back with a higher generation: auto_failback moves the group back,
   node2's stop before node1's start;
4. clean shutdown of both, node1 stopping the group.

Never two holders is checked over the whole events file, in time order.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from hanode.lab.cable import NullModem

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_SCRIPT = os.path.join(ROOT, "tests", "mpy", "serialnode.py")
DEADTIME_S = 0.5
SMALL_HEAP = "560K"       # the smallest passing figure (528K) plus one 32 KB step (docstring)
FAILOVER_SLACK_S = 1.5   # the dead peer is noticed at the next tick, then a probe and a script start
HA_CF = """keepalive 100ms
warntime 300ms
deadtime 500ms
initdead 5
baud 19200
serial {tty}
auto_failback on
node node1
node node2
state_dir {dir}/state
control_socket {dir}/control.sock
resource_dir {dir}/resource.d
"""
AUTHKEYS = "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n"
HARESOURCES = "node1 grp\n"
SCRIPT = """#!/bin/sh
case "$1" in
  start) echo "$(date +%s.%N) {node} start grp" >> {events}; touch {dir}/held ;;
  stop) echo "$(date +%s.%N) {node} stop grp" >> {events}; rm -f {dir}/held ;;
  status) if [ -e {dir}/held ]; then echo running; else echo "not running"; exit 3; fi ;;
esac
exit 0
"""


def micropython():
    exe = shutil.which("micropython")
    if exe is None:
        pytest.fail("the `micropython` command is missing: run tools/setup --test")
    return exe


class Box:
    """One node's directory and process, under either runtime."""

    def __init__(self, base, name, runtime, tty, events):
        self.name, self.runtime, self.events = name, runtime, events
        self.dir = os.path.join(base, name)
        os.makedirs(os.path.join(self.dir, "resource.d"))
        os.makedirs(os.path.join(self.dir, "lock"))
        files = {"ha.cf": HA_CF.format(tty=tty, dir=self.dir), "authkeys": AUTHKEYS, "haresources": HARESOURCES,
                 "resource.d/grp": SCRIPT.format(node=name, events=events, dir=self.dir)}
        for rel, text in files.items():
            with open(os.path.join(self.dir, rel), "w") as f:
                f.write(text)
        os.chmod(os.path.join(self.dir, "authkeys"), 0o600)
        os.chmod(os.path.join(self.dir, "resource.d", "grp"), 0o755)
        self.proc = None
        self.generation = 0
        self.boots = 0

    def start(self):
        self.boots += 1
        self.generation += 1
        out = open(os.path.join(self.dir, "out.%d" % self.boots), "wb")
        if self.runtime == "micropython":
            argv = [micropython(), "-X", "heapsize=" + SMALL_HEAP, NODE_SCRIPT, self.dir, self.name,
                    str(self.generation), self.events]
            env = dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen")
        else:
            argv = [sys.executable, "-m", "hanode", "run", "--config-dir", self.dir, "--node", self.name,
                    "--lock-dir", os.path.join(self.dir, "lock"), "--no-realtime"]
            env = dict(os.environ, PYTHONPATH=ROOT)
            env.pop("NOTIFY_SOCKET", None)
        try:
            os.unlink(os.path.join(self.dir, "stop"))
        except FileNotFoundError:
            pass
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        out.close()

    def output(self):
        text = []
        for i in range(1, self.boots + 1):
            with open(os.path.join(self.dir, "out.%d" % i), errors="replace") as f:
                text.append("--- %s %s boot %d ---\n%s" % (self.name, self.runtime, i, f.read()))
        return "\n".join(text)

    def power_off(self):
        """SIGKILL, and its resources vanish with it."""
        self.proc.kill()
        self.proc.wait()
        with open(self.events, "a") as f:
            f.write("%.6f %s poweroff grp\n" % (time.time(), self.name))
        try:
            os.unlink(os.path.join(self.dir, "held"))
        except FileNotFoundError:
            pass

    def stop(self, timeout=20):
        if self.runtime == "micropython":
            open(os.path.join(self.dir, "stop"), "w").close()
        else:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def read_events(path):
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return sorted((float(t), node, what) for t, node, what, _ in lines)


def holders_over_time(events):
    """[(t, set of holders after that event)], and the moments with two holders."""
    held, history, doubles = set(), [], []
    for t, node, what in events:
        if what == "start":
            held.add(node)
        else:
            held.discard(node)
        history.append((t, set(held)))
        if len(held) > 1:
            doubles.append((t, sorted(held)))
    return history, doubles


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def count(events, node, what):
    return len([e for e in events if e[1] == node and e[2] == what])


@pytest.mark.parametrize("micropython_node", ["node1", "node2"])
def test_micropython_and_cpython_nodes_fail_over_and_back_on_a_real_cable(tmp_path, micropython_node):
    micropython()
    base = str(tmp_path)
    events = os.path.join(base, "events")
    with NullModem(realtime=True) as cable:
        boxes = {}
        for name, tty in zip(("node1", "node2"), cable.paths):
            runtime = "micropython" if name == micropython_node else "cpython"
            boxes[name] = Box(base, name, runtime, tty, events)
        node1, node2 = boxes["node1"], boxes["node2"]

        def story():
            return "\n".join([node1.output(), node2.output(), "--- events ---", open(events).read()
                              if os.path.exists(events) else "(none)"])
        try:
            # 1. cold start
            node2.start()
            node1.start()
            t0 = time.time()
            assert wait_for(lambda: count(read_events(events), "node1", "start") == 1, 20), story()
            cold_s = read_events(events)[0][0] - t0
            time.sleep(1.0)   # settled: nothing moves
            ev = read_events(events)
            assert [(n, w) for _, n, w in ev] == [("node1", "start")], story()
            # 2. power loss of node1
            node1.power_off()
            t_off = time.time()
            assert wait_for(lambda: count(read_events(events), "node2", "start") == 1, 10), story()
            failover_s = [t for t, n, w in read_events(events) if n == "node2" and w == "start"][0] - t_off
            assert DEADTIME_S - 0.15 < failover_s < DEADTIME_S + FAILOVER_SLACK_S, (failover_s, story())
            # 3. node1 back: the group moves back, node2 stopping first
            node1.start()
            t_on = time.time()
            assert wait_for(lambda: count(read_events(events), "node1", "start") == 2, 20), story()
            ev = read_events(events)
            stop2 = [t for t, n, w in ev if n == "node2" and w == "stop"]
            start1 = [t for t, n, w in ev if n == "node1" and w == "start"][1]
            assert len(stop2) == 1 and stop2[0] <= start1, story()
            failback_s = start1 - t_on
            time.sleep(1.0)
            # 4. clean shutdown of both
            assert node2.stop() == 0, story()
            assert node1.stop() == 0, story()
            ev = read_events(events)
            assert [(n, w) for _, n, w in ev] == [
                ("node1", "start"), ("node1", "poweroff"), ("node2", "start"), ("node2", "stop"),
                ("node1", "start"), ("node1", "stop")], story()
            _, doubles = holders_over_time(ev)
            assert doubles == [], story()
            mp_out = boxes[micropython_node].output()
            assert "READY: generation" in mp_out and "(micropython)" in mp_out and "Traceback" not in mp_out, story()
            print("%s on MicroPython: cold start %.2f s, failover %.2f s after power loss, failback %.2f s after"
                  " power-on" % (micropython_node, cold_s, failover_s, failback_s))
        finally:
            for box in boxes.values():
                if box.proc is not None and box.proc.poll() is None:
                    box.proc.kill()
                    box.proc.wait()
