"""The agent's ticker on CPython: a loop timer re-armed at the core's next deadline.

A stub node stands in for the core (its deadlines are set by the test); the loop, its timers
and the agent are the real ones.  Checked: one tick per deadline and none in between, an input
that brings the deadline forward ticks at once (and that tick is not counted late), and no tick
after the agent has stopped.
"""
import asyncio

from hanode import aio
from hanode.agent import Agent


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


def run_agent(story, period_ms=40):
    node = StubNode(period_ms)
    hooks = Hooks()
    agent = Agent(node, [], runner=object(), log=lambda level, text: None, hooks=hooks)

    async def main():
        run = asyncio.create_task(agent.run())
        await story(agent, node)
        agent.shutdown()
        await asyncio.wait_for(run, 2)
        stopped_at = len(node.ticks)
        await asyncio.sleep(3 * period_ms / 1000)
        assert len(node.ticks) == stopped_at, "ticked after the agent stopped"
        assert agent.timer is None and agent.wake_at is None

    asyncio.run(main())
    return node, hooks


def test_an_idle_agent_ticks_once_per_deadline():
    async def idle(agent, node):
        await asyncio.sleep(0.5)

    node, _ = run_agent(idle)
    # 0.5 s at 40 ms: 13 deadlines (the first at once); a loaded machine may lose one or two
    assert 11 <= len(node.ticks) <= 14, node.ticks
    gaps = [b - a for a, b in zip(node.ticks, node.ticks[1:])]
    assert min(gaps) >= 40, gaps   # never before the deadline


def test_an_input_that_brings_the_deadline_forward_ticks_at_once_and_not_late():
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

    node, hooks = run_agent(answer)
    index = hooks.lateness.index(0, 2)   # the early tick says 0 ms late (woken on purpose)
    assert index >= 2


def test_an_input_that_moves_the_deadline_later_moves_the_ticker_and_counts_as_its_round():
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

    run_agent(later)


def test_a_deadline_in_the_past_ticks_after_one_ms_not_in_a_busy_loop():
    async def stuck(agent, node):
        node.period_ms = -5   # a core whose next deadline is already past (must not spin)
        await asyncio.sleep(0.2)

    node, _ = run_agent(stuck)
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

    def write(self, data, keep=False):
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
