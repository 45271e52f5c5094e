"""The asyncio subset hanode's agent loop uses, on CPython and MicroPython alike.

Theory of operation
-------------------
MicroPython's asyncio (uasyncio) shares a core with CPython's: ``run``,
``create_task``, ``sleep``, ``gather``, ``Event``, ``Lock``, ``wait_for`` and
streams.  The agent loop (``hanode.agent``) uses only what this module exports,
so the same loop runs on a Linux box under CPython and on a MicroPython board.
It is also the one place that reads the clock: ``ticks_ms`` is a millisecond
counter that never wraps on either interpreter (the core compares times as
plain ints), and ``ticks_diff(a, b)`` is ``a - b`` for its values.
"""

import sys
import time

try:
    import asyncio
except ImportError:  # very old MicroPython ports
    import uasyncio as asyncio

MICROPYTHON = sys.implementation.name == "micropython"

run = asyncio.run
create_task = asyncio.create_task
gather = asyncio.gather
Event = asyncio.Event
Lock = asyncio.Lock
CancelledError = asyncio.CancelledError

if MICROPYTHON:
    # time.ticks_ms() wraps (every 2**30 ms, 12.4 days, on 32-bit boards) but the
    # core subtracts and compares times as plain ints: hand it a counter that never
    # wraps, kept up to date through ticks_diff.  Every agent tick reads it, far more
    # often than the half period ticks_diff needs.
    _raw_ms = time.ticks_ms
    _raw_diff = time.ticks_diff
    _tick = [_raw_ms(), 0]   # last raw reading, ms elapsed since import

    def ticks_ms():
        raw = _raw_ms()
        _tick[1] += _raw_diff(raw, _tick[0])
        _tick[0] = raw
        return _tick[1]

    def ticks_diff(a, b):
        return a - b

    async def sleep_ms(ms):
        await asyncio.sleep_ms(ms)
else:
    def ticks_ms():
        return time.monotonic_ns() // 1000000

    def ticks_diff(a, b):
        return a - b

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)


if MICROPYTHON:
    class Alarm:
        """A sleep that another task can cut short: ``await sleep_ms(ms)`` is True when the time
        ran out, False when ``wake()`` was called first (the agent's ticker sleeps on one)."""

        def __init__(self):
            self._event = asyncio.Event()

        async def sleep_ms(self, ms):
            self._event.clear()
            try:
                await asyncio.wait_for_ms(self._event.wait(), ms)
                return False
            except asyncio.TimeoutError:
                return True

        def wake(self):
            self._event.set()
else:
    class Alarm:
        """A sleep that another task can cut short: ``await sleep_ms(ms)`` is True when the time
        ran out, False when ``wake()`` was called first (the agent's ticker sleeps on one).
        One future and one timer a sleep: wait_for would add a task and its cancellation."""

        def __init__(self):
            self._ringing = None

        async def sleep_ms(self, ms):
            loop = asyncio.get_running_loop()
            ringing = self._ringing = loop.create_future()
            timer = loop.call_later(ms / 1000, _set_once, ringing, True)
            try:
                return await ringing
            finally:
                timer.cancel()
                self._ringing = None

        def wake(self):
            if self._ringing is not None:
                _set_once(self._ringing, False)


if MICROPYTHON:
    later_ms = None   # no loop timers: the agent's ticker is a task sleeping on an Alarm
    running_loop = None   # (the pulse loop, which needs it, is CPython's)
else:
    running_loop = asyncio.get_running_loop

    def later_ms(ms, fn):
        """Call ``fn()`` from the running loop ``ms`` ms from now (at once for 0); the handle's
        ``cancel()`` drops the call.  A plain loop timer: no task, no future, so a wake-up costs
        one callback (the agent's ticker on CPython, where an idle agent's CPU is loop overhead)."""
        loop = asyncio.get_running_loop()
        if ms <= 0:
            return loop.call_soon(fn)
        return loop.call_later(ms / 1000, fn)


async def _sleep_then(ms):
    await sleep_ms(ms)


async def wait_for_ms(awaitable, ms):
    """asyncio.wait_for with a timeout in ms; raises asyncio.TimeoutError.
    (MicroPython's sleep is not a coroutine, hence the awaitable is passed as is.)"""
    return await asyncio.wait_for(awaitable, ms / 1000)


TimeoutError = asyncio.TimeoutError


async def readable(stream):
    """Wait until ``stream`` has bytes to read (or has hung up: the read says which).

    ``stream`` is what a link's port hands out as its ``stream``: an fd on
    CPython, and on MicroPython a native stream (``machine.UART``, a tty's
    file, a socket), the only kind its ``select.poll`` takes - a Python object
    with ``fileno()`` will not do there.  The caller reads afterwards, through
    its own port object, so hang-ups and partial frames are handled in one
    place on both interpreters."""
    if MICROPYTHON:
        # Stream.read(0) polls the stream, then reads zero bytes: a pure wait on
        # MicroPython's public asyncio surface
        await asyncio.StreamReader(stream).read(0)
        return
    loop = asyncio.get_event_loop()
    ready = loop.create_future()
    loop.add_reader(stream, _set_once, ready)
    try:
        await ready
    finally:
        loop.remove_reader(stream)


def _set_once(future, value=None):
    if not future.done():
        future.set_result(value)
