"""The heartbeat's own loop (hanode.pulse): a real thread, a real epoll, real pipes and clocks.

Checked: timers run in order and not before their time; a timer set from another thread wakes a
loop asleep on a far one; a cancelled timer - also one cancelled by an earlier call of the same
pass - never runs; readers are called while their fd is readable and not after removal;
call_soon_threadsafe works from any thread, the loop's own included; every call holds the guard;
a call that raises is reported and the loop goes on; the thread takes the policy of the thread
that starts it (a SCHED_FIFO agent's heartbeat must not run ordinary); stop() frees the fds.
"""
import os
import threading
import time

import pytest

from hanode.pulse import PulseLoop


@pytest.fixture
def loop():
    errors = []
    pulse = PulseLoop(on_error=errors.append)
    pulse.start()
    pulse.reported = errors
    yield pulse
    pulse.stop()


def wait_until(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_timers_run_in_order_and_never_early(loop):
    ran = []
    start = loop.time()
    for delay in (0.06, 0.02, 0.04):
        loop.call_later(delay, lambda d=delay: ran.append((d, loop.time() - start)))
    assert wait_until(lambda: len(ran) == 3)
    assert [d for d, _ in ran] == [0.02, 0.04, 0.06]
    assert all(at >= d for d, at in ran), ran
    assert loop.reported == []


def test_a_timer_set_from_another_thread_wakes_a_loop_asleep_on_a_far_one(loop):
    ran = threading.Event()
    loop.call_later(30, lambda: None)   # the loop sleeps on this one
    time.sleep(0.05)
    t0 = time.monotonic()
    loop.call_later(0.01, ran.set)
    assert ran.wait(2)
    assert time.monotonic() - t0 < 0.5


def test_a_cancelled_timer_never_runs_even_when_cancelled_in_the_same_pass(loop):
    ran = []
    gate = threading.Event()
    when = loop.time() + 0.05
    second = loop.call_at(when + 0.000001, lambda: ran.append("second"))
    loop.call_at(when, lambda: (ran.append("first"), second.cancel()))
    third = loop.call_later(0.02, lambda: ran.append("third"))
    third.cancel()
    loop.call_later(0.1, gate.set)
    assert gate.wait(2)
    assert ran == ["first"] and loop.reported == []


def test_a_moved_timer_does_not_wake_the_loop_at_its_old_time(loop):
    """The agent moves its ticker (cancel, set again) at most frames; the loop must not wake
    for the cancelled one: the loop thread's voluntary context switches while it should sleep."""
    tid = {}
    moved = threading.Event()

    def move():
        tid["id"] = threading.get_native_id()
        first.cancel()
        loop.call_later(0.3, lambda: None)
        moved.set()
    first = loop.call_later(0.1, lambda: None)
    loop.call_soon_threadsafe(move)
    assert moved.wait(2)

    def switches():
        with open("/proc/self/task/%d/status" % tid["id"]) as f:
            return int(next(line for line in f if line.startswith("voluntary_ctxt_switches")).split()[1])
    time.sleep(0.03)
    before = switches()
    time.sleep(0.2)   # past the cancelled timer's time, before the live one's
    assert switches() == before


def test_readers_are_called_while_readable_and_not_after_removal(loop):
    r, w = os.pipe()
    os.set_blocking(r, False)
    got = []
    try:
        loop.add_reader(r, lambda: got.append(os.read(r, 100)))
        os.write(w, b"one")
        assert wait_until(lambda: got == [b"one"])
        assert loop.remove_reader(r) is True
        assert loop.remove_reader(r) is False
        os.write(w, b"two")
        time.sleep(0.05)
        assert got == [b"one"]
    finally:
        os.close(r)
        os.close(w)


def test_call_soon_threadsafe_from_another_thread_and_from_the_loop_itself(loop):
    ran = []
    done = threading.Event()

    def from_the_loop():
        ran.append("outside")
        loop.call_soon_threadsafe(lambda: (ran.append("inside"), done.set()))
    loop.call_soon_threadsafe(from_the_loop)
    assert done.wait(2)
    assert ran == ["outside", "inside"]


def test_every_call_holds_the_guard(loop):
    inside = threading.Event()
    release = threading.Event()

    def long_call():
        inside.set()
        release.wait(2)
    loop.call_soon_threadsafe(long_call)
    assert inside.wait(2)
    assert loop.guard.acquire(timeout=0.05) is False   # the heartbeat's call is in the node
    release.set()
    assert loop.guard.acquire(timeout=2) is True
    loop.guard.release()


def test_a_call_that_raises_is_reported_and_the_loop_goes_on(loop):
    ran = threading.Event()
    loop.call_soon_threadsafe(lambda: 1 / 0)
    loop.call_later(0.01, ran.set)
    assert ran.wait(2)
    assert loop.errors == 1 and "ZeroDivisionError" in loop.reported[0]


def test_the_loop_runs_at_the_policy_of_the_thread_that_starts_it():
    if os.geteuid() != 0:
        pytest.skip("SCHED_FIFO needs root")
    seen = {}

    def agent_thread():
        # as go_realtime does: FIFO, and children (threads included) start ordinary
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(3))
        pulse = PulseLoop()
        pulse.start()
        done = threading.Event()

        def look():
            seen["policy"] = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
            seen["priority"] = os.sched_getparam(0).sched_priority
            done.set()
        pulse.call_soon_threadsafe(look)
        done.wait(2)
        pulse.stop()
    t = threading.Thread(target=agent_thread)
    t.start()
    t.join(5)
    assert seen == {"policy": os.SCHED_FIFO, "priority": 3}


def test_stop_ends_the_thread_and_frees_its_fds():
    before = set(os.listdir("/proc/self/fd"))
    pulse = PulseLoop()
    pulse.start()
    pulse.call_later(10, lambda: None)
    thread = pulse._thread
    pulse.stop()
    assert not thread.is_alive()
    assert set(os.listdir("/proc/self/fd")) <= before
