"""The agent's ticker on CPython: a loop timer re-armed at the core's next deadline.

A stub node stands in for the core (its deadlines are set by the test); the loop, its timers
and the agent are the real ones - asyncio's, and the daemon's heartbeat loop in a thread of its
own (hanode.pulse), where inputs from the asyncio side move a timer of another thread.
Checked: one tick per deadline and none in between, an input that brings the deadline forward
ticks at once (and that tick is not counted late), and no tick after the agent has stopped.
"""
import asyncio

import pytest

from hanode import aio
from hanode.agent import Agent
from hanode.pulse import PulseLoop

LOOPS = pytest.mark.parametrize("pulse", [False, True], ids=["asyncio", "pulse"])


class StubConfig:
    keepalive_ms = 1000


class StubNode:
    """Ticks on a fixed period unless told otherwise; receive() can ask for a tick at once."""

    def __init__(self, period_ms):
        self.config = StubConfig()
        self.period_ms = period_ms
        self.ticks = []
        self.due = None
        self.stopped = False

    def start(self, now, running=()):
        self.due = now
        return []

    def tick(self, now):
        self.ticks.append(now)
        self.due = now + self.period_ms
        return []

    def next_deadline(self):
        return None if self.stopped else self.due

    def read_patience(self):
        return 0   # READ_PROMPTLY

    def receive(self, data, now, link=None):
        self.due = now   # "answer at once"
        return []

    def shutdown(self, now):
        self.stopped = True
        return [type("Stopped", (), {"kind": "stopped"})()]


class Hooks:
    def __init__(self):
        self.lateness = []

    def on_tick(self, now, lateness):
        self.lateness.append(lateness)


def run_agent(story, period_ms=40, pulse=False):
    node = StubNode(period_ms)
    hooks = Hooks()
    loop = PulseLoop() if pulse else None
    if loop is not None:
        loop.start()
    agent = Agent(node, [], runner=object(), log=lambda level, text: None, hooks=hooks, pulse=loop)

    async def main():
        run = asyncio.create_task(agent.run())
        await story(agent, node)
        agent.shutdown()
        await asyncio.wait_for(run, 2)
        stopped_at = len(node.ticks)
        await asyncio.sleep(3 * period_ms / 1000)
        assert len(node.ticks) == stopped_at, "ticked after the agent stopped"
        assert agent.timer is None and agent.wake_at is None

    try:
        asyncio.run(main())
    finally:
        if loop is not None:
            loop.stop()
            assert loop.errors == 0
    return node, hooks


@LOOPS
def test_an_idle_agent_ticks_once_per_deadline(pulse):
    async def idle(agent, node):
        await asyncio.sleep(0.5)

    node, _ = run_agent(idle, pulse=pulse)
    # 0.5 s at 40 ms: 13 deadlines (the first at once); a loaded machine may lose one or two
    assert 11 <= len(node.ticks) <= 14, node.ticks
    gaps = [b - a for a, b in zip(node.ticks, node.ticks[1:])]
    assert min(gaps) >= 40, gaps   # never before the deadline


@LOOPS
def test_an_input_that_brings_the_deadline_forward_ticks_at_once_and_not_late(pulse):
    async def answer(agent, node):
        await asyncio.sleep(0.1)
        before = len(node.ticks)
        t0 = aio.ticks_ms()
        agent._received("ttyS0", b"x")   # the core wants to answer at once
        assert agent.wake_at is None      # the sleep is cut short, not kept
        await asyncio.sleep(0.005)
        assert len(node.ticks) == before + 1, (before, node.ticks)
        assert node.ticks[-1] - t0 <= 4, (t0, node.ticks[-1])
        # the tick after it keeps the period from there
        await asyncio.sleep(0.06)
        assert node.ticks[before + 1] - node.ticks[before] >= 40

    node, hooks = run_agent(answer, pulse=pulse)
    index = hooks.lateness.index(0, 2)   # the early tick says 0 ms late (woken on purpose)
    assert index >= 2


@LOOPS
def test_an_input_that_moves_the_deadline_later_moves_the_ticker_and_counts_as_its_round(pulse):
    """A frame that went out with the peer's moves the core's next deadline past the ticker's
    wake-up: the ticker is re-armed at the new deadline (no wake-up to find nothing to do), and
    the receive counts as its round for on_tick (the watchdog's health gate, the warm-up)."""
    async def later(agent, node):
        await asyncio.sleep(0.1)
        node.receive = lambda data, now, link=None: (setattr(node, "due", now + 70), [])[1]
        before, rounds = len(node.ticks), len(agent.hooks.lateness)
        t0 = aio.ticks_ms()
        agent._received("ttyS0", b"x")
        assert agent.wake_at == t0 + 70 or agent.wake_at == t0 + 71, (t0, agent.wake_at)
        assert len(agent.hooks.lateness) == rounds + 1 and agent.hooks.lateness[-1] == 0
        await asyncio.sleep(0.06)
        assert len(node.ticks) == before, "the ticker woke before the deadline it was moved to"
        await asyncio.sleep(0.03)
        assert len(node.ticks) == before + 1 and node.ticks[-1] - t0 >= 70, (t0, node.ticks[before:])

    run_agent(later, pulse=pulse)


@LOOPS
def test_a_deadline_in_the_past_ticks_after_one_ms_not_in_a_busy_loop(pulse):
    async def stuck(agent, node):
        node.period_ms = -5   # a core whose next deadline is already past (must not spin)
        await asyncio.sleep(0.2)

    node, _ = run_agent(stuck, pulse=pulse)
    assert len(node.ticks) <= 0.2 * 1000 + 5, len(node.ticks)


def test_a_round_sleeps_until_the_cores_deadline_capped_and_never_less_than_a_ms():
    """Agent._tick on a simulated clock: (when the next round is due, ms until then)."""
    clock = [1000]
    node = StubNode(100)
    hooks = Hooks()
    agent = Agent(node, [], runner=object(), log=lambda level, text: None, max_sleep_ms=250,
                  clock=lambda: clock[0], hooks=hooks)
    assert agent._tick(1000) == (1100, 100) and hooks.lateness == [0]   # the core's next frame
    clock[0] = 1103
    assert agent._tick(1100) == (1203, 100) and hooks.lateness[-1] == 3   # woken 3 ms late: said so
    node.period_ms = 1000
    assert agent._tick(None) == (1103 + 250, 250)   # a far deadline: the cap (the health gate's)
    node.period_ms = -7
    assert agent._tick(None) == (1104, 1)           # a past one: 1 ms, never a busy loop
    assert hooks.lateness[-2:] == [0, 0]            # woken early on purpose: not late
    node.stopped = True
    assert agent._tick(None) == (1103 + 250, 250)   # no deadline at all: the cap


class SummaryAgent(Agent):
    """The real dispatch; the summary is the stub node's text, counted."""
    computed = 0

    def summary(self):
        self.computed += 1
        return self.node.text


class StatusHooks:
    def __init__(self):
        self.statuses = []

    def on_change(self, summary):
        self.statuses.append(summary)


class NullLink:
    name = "ttyS0"

    def write(self, data, keep=False, patience=0):
        pass


def test_heartbeats_alone_refresh_the_status_line_at_most_once_a_second():
    """An idle node's every wake-up dispatches a frame and nothing else: the status summary (a
    line over the whole node) is recomputed only SUMMARY_REFRESH_MS after the last time, while
    any other output (a log line, an action) recomputes it at once."""
    from hanode.agent import SUMMARY_REFRESH_MS
    from hanode.core.outputs import Log, Send
    now = [0]
    node = StubNode(100)
    node.text = "node1: active, holds g; peer node2 up"
    hooks = StatusHooks()
    agent = SummaryAgent(node, [NullLink()], runner=object(), log=lambda level, text: None,
                         clock=lambda: now[0], hooks=hooks)
    agent.dispatch([Send(b"x")])
    assert agent.computed == 1 and hooks.statuses == [node.text]
    node.text = "node1: active, holds g; peer node2 standby"
    for t in range(100, SUMMARY_REFRESH_MS, 100):   # heartbeats sent and received for a second
        now[0] = t
        agent.dispatch([Send(b"x")])
        agent.dispatch([])
    assert agent.computed == 1 and len(hooks.statuses) == 1
    now[0] = SUMMARY_REFRESH_MS
    agent.dispatch([])
    assert agent.computed == 2 and hooks.statuses[-1] == node.text
    node.text = "node1: releasing g; peer node2 standby"
    now[0] += 1
    agent.dispatch([Send(b"x"), Log("info", "giving up g")])
    assert agent.computed == 3 and hooks.statuses[-1] == node.text


def _pulse_agent(node, runner, links=(), log=None):
    pulse = PulseLoop()
    pulse.start()
    agent = Agent(node, list(links), runner=runner, log=log or (lambda level, text: None), pulse=pulse)
    return agent, pulse


def _run_on_the_pulse_loop(agent, pulse, story):
    """Run ``agent`` (its heartbeat on ``pulse``) while ``story()`` runs on asyncio, then shut it
    down and stop the pulse loop; what the story returned."""
    async def main():
        run = asyncio.create_task(agent.run())
        result = await story()
        agent.shutdown()
        await asyncio.wait_for(run, 2)
        return result
    try:
        return asyncio.run(main())
    finally:
        pulse.stop()


def test_with_a_pulse_loop_frames_go_out_on_its_thread_and_the_rest_on_asyncios():
    """The heartbeat's thread writes the frames the core gives it at once; a log line (any output
    but a frame) is handed to the asyncio loop, which does it in its own thread."""
    import threading
    from hanode.core.outputs import Log, Send
    seen = {}

    class Link(NullLink):
        def write(self, data, keep=False, patience=0):
            seen.setdefault("write", threading.get_ident())

    node = StubNode(20)
    real_tick = node.tick
    node.tick = lambda now: real_tick(now) + [Send(b"x"), Log("info", "ticked")]
    agent, pulse = _pulse_agent(node, object(), [Link()],
                                log=lambda level, text: seen.setdefault("log", threading.get_ident()))

    async def story():
        await asyncio.sleep(0.1)
        seen["asyncio"] = threading.get_ident()
        seen["pulse"] = pulse._thread.ident
    _run_on_the_pulse_loop(agent, pulse, story)
    assert seen["write"] == seen["pulse"]
    assert seen["log"] == seen["asyncio"] != seen["write"]


def test_outputs_from_both_threads_keep_the_cores_order():
    """An Acquire the core gives on the heartbeat's thread and a Release it gives after it on the
    asyncio side reach the runner in that order, though the asyncio loop is busy when the
    Acquire is handed over: what was handed over is done before the asyncio side's own outputs.
    (Swapped, the group would run on a node that believes it released it.)"""
    import threading
    from hanode.core.outputs import Acquire, Release
    calls = []

    class Runner:
        async def acquire(self, key):
            calls.append(("acquire", key))
            return True, ""

        async def release(self, key):
            calls.append(("release", key))
            return True, ""

    node = StubNode(1000)
    node.completed = lambda key, ok, now: []
    agent, pulse = _pulse_agent(node, Runner())

    async def story():
        await asyncio.sleep(0.01)
        handed = threading.Event()
        pulse.call_soon_threadsafe(lambda: (agent.dispatch([Acquire("g")]), handed.set()))
        assert handed.wait(2)   # (the asyncio loop is held here: the hand-over's drain waits)
        with agent.lock:
            agent.dispatch([Release("g")])
        await asyncio.sleep(0.05)
    _run_on_the_pulse_loop(agent, pulse, story)
    assert calls == [("acquire", "g"), ("release", "g")]


def test_with_a_pulse_loop_busy_asyncio_work_does_not_hold_the_heartbeat_back():
    """300 ms of work on the asyncio loop (pure Python, holding the interpreter's lock but for its
    switch interval): on one loop no tick would come meanwhile; with the heartbeat's own loop the
    ticks keep their 20 ms period."""
    import time
    node = StubNode(20)
    agent, pulse = _pulse_agent(node, object())
    lateness = []
    agent.hooks = type("Hooks", (), {"on_tick": staticmethod(lambda now, late: lateness.append((now, late)))})()

    async def story():
        await asyncio.sleep(0.1)
        t0 = aio.ticks_ms()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:   # the asyncio loop is busy: nothing else of it runs
            sum(range(1000))
        return [late for now, late in lateness if t0 <= now <= t0 + 300]
    during = _run_on_the_pulse_loop(agent, pulse, story)
    # ~15 rounds of 20 ms in the 300 ms, a few ms late (the switch interval is 5 ms); on one loop
    # none would come and the next would be 300 ms late.  The bounds leave room for a machine
    # whose two cores are busy with other work (a test run beside it): any thread waits there.
    assert len(during) >= 9, during
    assert max(during) <= 40, during


def test_with_a_pulse_loop_bytes_waiting_when_the_agent_starts_are_read(tmp_path, monkeypatch):
    """The peer started first: its frame waits at the port when the agent starts watching it.
    The heartbeat's thread may see the port readable while the asyncio side is still arming the
    watch (an epoll_ctl lets the other thread run); it must wait until the watch is whole, or
    the one-shot event is spent with nobody to read it and the port is never read again (the lab
    pair: one node in two never heard its peer).  A real PTY; the arming's epoll_ctl is made slow
    (a loaded box), so that the heartbeat's thread certainly runs inside that window."""
    import os
    import select
    import threading
    import time
    from hanode.links import SerialLink
    from hanode.uart import Serial
    real_epoll = select.epoll

    class SlowEpoll:
        def __init__(self, *args):
            self.real = real_epoll(*args)

        def register(self, fd, events):
            self.real.register(fd, events)
            time.sleep(0.05)   # (releases the interpreter's lock, as a slow system call would)

        def __getattr__(self, name):
            return getattr(self.real, name)
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    master, slave = os.openpty()
    link = SerialLink(Serial(os.ttyname(slave), lock_dir=str(lock_dir)))
    node = StubNode(1000)
    got = threading.Event()
    node.receive = lambda data, now, link=None: (got.set(), [])[1]
    agent, pulse = _pulse_agent(node, object(), [link])
    os.write(master, b"\x05hello\x00")

    async def story():
        for _ in range(100):
            if got.is_set():
                break
            await asyncio.sleep(0.01)
    monkeypatch.setattr(select, "epoll", SlowEpoll)   # (the pulse loop's own epoll is made already)
    try:
        _run_on_the_pulse_loop(agent, pulse, story)
    finally:
        link.close()
        os.close(master)
        os.close(slave)
    assert got.is_set(), "the frame waiting at the port was never read"
