"""The heartbeat's own event loop: a small epoll loop in a thread of its own (CPython).

Theory of operation
-------------------
The heartbeat path - the agent's ticker, the links' reads and writes, the core's ``tick`` and
``receive`` - runs here, on a loop that does nothing else: one epoll, a heap of timers,
callbacks.  The asyncio loop keeps everything that may take time (resource scripts, netlink, the
control socket, the LAN watch) and sleeps while the pair only heartbeats.  What that buys: a
burst of work on the asyncio loop delays a heartbeat by at most the interpreter's switch
interval, not by the whole burst.  It was built for idle CPU too - a bare asyncio loop costs
about twice a bare ``select.epoll`` loop a wake-up (``tools/bench/wake_floor.py``) - but in a
live agent the gain measured ~20 us a wake-up, ~0.04 % of a core at keepalive 100 ms
(docs/performance.md): the wake-up's work, not the loop, is most of it.

The surface is the part of asyncio's loop the heartbeat path uses - ``time()``,
``call_later()``, ``call_at()``, ``add_reader()``, ``remove_reader()`` (handles with
``cancel()``) - plus ``call_soon_threadsafe()``.  Any thread may call them; a call from another
thread wakes the loop through an eventfd, so that a timer it sets earlier is kept.

``guard``: every callback runs holding this lock (re-entrant), and so does whatever another
thread does to the state those callbacks share (the agent takes it for each call of the core):
one thread at a time in the heartbeat path, without a lock in each callback.

The loop's thread takes the scheduling policy of the thread that starts it (the agent's, real
time by default): a thread started by a SCHED_FIFO thread with SCHED_RESET_ON_FORK starts
ordinary, and the heartbeat must not wait behind a busy box.  A callback that raises is
reported through ``on_error`` and the loop goes on, as asyncio's does.
"""
import heapq
import itertools
import os
import select
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from hanode import realtime

STOP_TIMEOUT_S = 5.0   # stop() waits this long for a callback that runs


class Handle:
    """A timer of the loop: ``cancel()`` drops its call (from any thread)."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.when = when
        self.callback: Optional[Callable[..., Any]] = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback, self.args = None, ()


class PulseLoop:
    def __init__(self, name: str = "hanode-pulse", on_error: Optional[Callable[[str], None]] = None) -> None:
        self.name = name
        self.on_error = on_error
        self.guard = threading.RLock()
        self.errors = 0
        self._lock = threading.Lock()   # the timers, readers and the calls from other threads
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._readers: Dict[int, Handle] = {}
        # the heap holds (when, order, handle): compared in C, not by a method of Handle, and in
        # the order they were set when two are due at the same time
        self._timers: List[Tuple[float, int, Handle]] = []
        self._order = itertools.count()
        self._soon: List[Handle] = []
        self._thread: Optional[threading.Thread] = None
        self._ident: Optional[int] = None
        self._stopping = False

    time = staticmethod(time.monotonic)

    # ---------------------------------------------------------------- the surface
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Handle:
        return self.call_at(self.time() + max(0.0, delay), callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Handle:
        handle = Handle(when, callback, args)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._order), handle))
        self._wake_if_elsewhere()
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        handle = Handle(0.0, callback, args)
        with self._lock:
            self._soon.append(handle)
        self._wake_if_elsewhere()
        return handle

    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            old = self._readers.get(fd)
            if old is not None:
                old.cancel()
                self._epoll.modify(fd, select.EPOLLIN)
            else:
                self._epoll.register(fd, select.EPOLLIN)
            self._readers[fd] = Handle(0.0, callback, args)

    def remove_reader(self, fd: int) -> bool:
        with self._lock:
            handle = self._readers.pop(fd, None)
            if handle is None:
                return False
            handle.cancel()   # (not even in this pass of the loop)
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass   # closed already: the kernel dropped it with the file
            return True

    def in_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self._ident

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        scheduling = realtime.scheduling()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(scheduling, ready), name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self) -> None:
        """End the loop (the callback that runs finishes first) and free its fds."""
        self._stopping = True
        if self._thread is not None:
            self._wake()
            if not self.in_thread():
                self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._epoll.close()
        os.close(self._wake_fd)

    def _main(self, scheduling: Optional[Tuple[int, Any]], ready: threading.Event) -> None:
        self._ident = threading.get_ident()
        if scheduling is not None:
            try:
                os.sched_setscheduler(0, scheduling[0], scheduling[1])
            except OSError as e:
                self._report("cannot take the agent's scheduling policy: %s" % e)
        ready.set()
        self._run()

    def _run(self) -> None:
        # one pass a wake-up, written out with locals: at a short keepalive this loop's own code
        # is a good part of an idle agent's CPU (each wake-up finds it cold)
        timers, readers, lock, clock, guard = self._timers, self._readers, self._lock, self.time, self.guard
        poll, wake_fd, heappop = self._epoll.poll, self._wake_fd, heapq.heappop
        while not self._stopping:
            if timers and timers[0][2].cancelled:
                with lock:   # (a moved timer must not wake the loop for nothing)
                    while timers and timers[0][2].cancelled:
                        heappop(timers)
            events = poll(0.0 if self._soon else max(0.0, timers[0][0] - clock()) if timers else -1.0)
            due: List[Handle] = []
            for fd, _mask in events:
                if fd == wake_fd:
                    try:
                        os.eventfd_read(fd)
                    except BlockingIOError:
                        pass
                elif fd in readers:
                    due.append(readers[fd])
            if self._soon:
                with lock:
                    due += self._soon
                    self._soon = []
            if timers:
                now = clock()
                with lock:
                    while timers and timers[0][0] <= now:
                        due.append(heappop(timers)[2])
            for handle in due:
                try:
                    with guard:
                        if not handle.cancelled:   # (an earlier call of this pass may have cancelled it)
                            handle.callback(*handle.args)
                except Exception as e:   # as asyncio's loop: said, and the loop goes on
                    self._report("%s%r raised %r" % (getattr(handle.callback, "__qualname__", handle.callback),
                                                     handle.args, e))

    def _report(self, text: str) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error(text)

    def _wake_if_elsewhere(self) -> None:
        if self._thread is not None and not self.in_thread():
            self._wake()

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except (BlockingIOError, OSError):
            pass   # the counter is full (it is being woken anyway) or the loop has stopped
