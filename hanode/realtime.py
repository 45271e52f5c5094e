"""Real-time scheduling for the agent: SCHED_FIFO and locked memory (ha.cf ``realtime``, ``rtprio``).

Theory of operation
-------------------
Heartbeat runs its heartbeat processes real-time by default, and so does hanode: a
heartbeat that waits behind a busy box's ordinary processes, or behind a page fault
under memory pressure, looks to the peer like a dead node. ``go_realtime`` moves the
process to SCHED_FIFO (with SCHED_RESET_ON_FORK, so resource scripts and the daemons
they start run at normal priority); ``lock_memory`` calls ``mlockall``. Neither is
fatal: without the privilege the agent runs on, and says what it could not do.

Real time must not cost memory. ``mlockall(MCL_CURRENT | MCL_FUTURE)`` alone faults in
and locks every mapping, touched or not: the interpreter's whole heap reservation, each
thread's 8 MB stack, every malloc arena (186-259 MB locked, 57-66 MB resident). With
``MCL_ONFAULT`` (Linux 4.4) only pages the process touches are locked, as it touches
them: what the heartbeat path uses stays in RAM, nothing else is brought in. Older
kernels refuse the flag (EINVAL) and get the full lock. ``limit_memory`` (run with or
without real time) keeps what there is to lock small: worker threads get
``THREAD_STACK_BYTES`` of stack, glibc at most ``MALLOC_ARENAS`` malloc arenas (each
arena reserves 64 MB of address space on 64-bit).

Start-up leaves free memory behind in the malloc heap (the imports' temporary
objects: ~1 MB on CPython 3.11 with pyroute2). ``trim_memory``, run once the agent
has settled, hands it back with glibc's ``malloc_trim``; locked pages cannot be
given back (madvise refuses them), so under ``MCL_ONFAULT`` it unlocks, trims and
locks again - the resident pages stay resident throughout, so no heartbeat can
fault in between. Under the old kernels' full lock it does nothing.
"""
import ctypes
import errno
import os
import threading
from typing import Any, Optional, Tuple

from hanode.logs import log

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_MCL_ONFAULT = 4          # <linux/mman.h>, since Linux 4.4
_M_ARENA_MAX = -8         # <malloc.h> mallopt parameter
MALLOC_ARENAS = 1         # one heap for all threads: the workers allocate little, and rarely
_onfault_locked = False   # lock_memory locked with MCL_ONFAULT: trim_memory may unlock and relock
THREAD_STACK_BYTES = 256 * 1024   # worker threads run netlink calls and imports, never deep recursion


def _libc() -> Any:
    # the process's own symbols, libc's among them (glibc and musl alike): ctypes.util's
    # find_library would import tempfile, shutil, bz2 and lzma to find the same library
    return ctypes.CDLL(None, use_errno=True)


def go_realtime(priority: Optional[int]) -> None:
    """SCHED_FIFO at ``priority`` (default: the middle of the range, as Heartbeat)."""
    try:
        lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
        prio = priority if priority is not None else (lo + hi) // 2
        # children (resource scripts) must not inherit real-time priority
        os.sched_setscheduler(0, os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(prio))
        log("info", "realtime: SCHED_FIFO priority %d" % prio)
    except (OSError, AttributeError) as e:
        log("warning", "realtime: cannot set SCHED_FIFO (%s); heartbeats may be late under load" % e)


def scheduling() -> Optional[Tuple[int, Any]]:
    """The calling thread's scheduling (policy, param), for a thread that must run at it; None
    where it cannot be read."""
    try:
        return os.sched_getscheduler(0), os.sched_getparam(0)
    except (OSError, AttributeError):
        return None


def limit_memory() -> None:
    """Small worker-thread stacks and few malloc arenas (see the module docstring); call it
    before any thread is started. mallopt is glibc's: elsewhere (musl) it is skipped."""
    threading.stack_size(THREAD_STACK_BYTES)
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def lock_memory() -> None:
    """mlockall, so that a page fault under memory pressure cannot delay a heartbeat: only the
    pages in use (MCL_ONFAULT: a walk over the resident pages, about a millisecond, done here),
    or, on a kernel without it, everything: that takes ~0.3 s, so it runs in a thread of its own
    (ctypes releases the GIL) and the loop goes on meanwhile."""
    global _onfault_locked
    try:
        libc = _libc()
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT) == 0:
            _onfault_locked = True
            log("info", "realtime: memory locked as it is used (mlockall MCL_ONFAULT)")
            return
        if ctypes.get_errno() != errno.EINVAL:   # EINVAL: a kernel older than 4.4
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError, TypeError) as e:
        log("warning", "realtime: cannot lock memory (%s)" % e)
        return
    threading.Thread(target=_lock_everything, args=(libc,), name="hanode-mlockall", daemon=True).start()


def trim_memory() -> None:
    """Give the malloc heap's free pages back (blocking: call it off the loop, once)."""
    try:
        libc = _libc()
        if _onfault_locked:
            libc.munlockall()
        libc.malloc_trim(0)
        if _onfault_locked and libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT) != 0:
            log("warning", "realtime: cannot lock memory again after the trim (%s)" % os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError, TypeError):
        return   # not glibc (musl has no malloc_trim): nothing to give back this way


def _lock_everything(libc: Any) -> None:
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        log("warning", "realtime: cannot lock memory (%s)" % os.strerror(ctypes.get_errno()))
    else:
        log("info", "realtime: memory locked (mlockall; this kernel has no MCL_ONFAULT)")
