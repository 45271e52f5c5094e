"""The floor under the idle-CPU figure: what an event loop that does nothing but wake costs.

``python3 -S tools/bench/wake_floor.py KEEPALIVE_MS SECONDS`` runs, one after the other,
two loops that wake once a keepalive as an idle agent in step does (hanode.links: the active
node reads the peer's answer and sends its frame in one wake-up, the other reads the active's
frame by a timer at its end and answers) and move 24 bytes through a pipe at each wake-up - the
last one's read, the next one written - with nothing else: first a bare ``select.epoll`` loop, then an asyncio
loop driven by ``call_at`` (the agent's loop).  It prints one JSON object: the CPU of each
(``/proc/self/schedstat``, % of one core) and its wake-ups per keepalive.  The bench runs it
with the agent's interpreter while the pair is up, so both see the same machine.
"""
import asyncio
import json
import os
import select
import sys
import time

FRAME = b"\x03" * 23 + b"\x00"
WAKES_PER_KEEPALIVE = 1


def _beat(r: int, w: int) -> None:
    """One wake-up's I/O: the frame in the pipe read (none at the first), one written."""
    try:
        os.read(r, 256)
    except BlockingIOError:
        pass
    os.write(w, FRAME)


def _cpu_ns() -> int:
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[0])


def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def epoll_loop(period_s: float, seconds: float) -> dict:
    r, w = _pipe()
    ep = select.epoll()
    start, cpu0, n = time.monotonic(), _cpu_ns(), 0
    while True:
        n += 1
        due = start + n * period_s
        wait = due - time.monotonic()
        if wait > 0:
            ep.poll(wait)
        _beat(r, w)
        if due - start >= seconds:
            break
    return _result(cpu0, start, n, period_s)


def asyncio_loop(period_s: float, seconds: float) -> dict:
    r, w = _pipe()
    out = {}

    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        start, cpu0 = loop.time(), _cpu_ns()
        count = [0]

        def wake():
            count[0] += 1
            _beat(r, w)
            due = start + (count[0] + 1) * period_s
            if due - start > seconds:
                out.update(_result(cpu0, start, count[0], period_s))
                done.set_result(None)
            else:
                loop.call_at(due, wake)
        loop.call_at(start + period_s, wake)
        await done
    asyncio.run(main())
    return out


def _result(cpu0: int, start: float, wakes: int, period_s: float) -> dict:
    span = time.monotonic() - start
    return {"cpu_pct": round((_cpu_ns() - cpu0) / 1e9 / span * 100, 3),
            "wakeups_per_keepalive": round(wakes / span * period_s * WAKES_PER_KEEPALIVE, 2)}


def main() -> None:
    keepalive_ms, seconds = float(sys.argv[1]), float(sys.argv[2])
    period_s = keepalive_ms / 1000.0 / WAKES_PER_KEEPALIVE
    print(json.dumps({"keepalive_ms": keepalive_ms, "seconds": seconds,
                      "epoll": epoll_loop(period_s, seconds), "asyncio": asyncio_loop(period_s, seconds)}))


if __name__ == "__main__":
    main()
