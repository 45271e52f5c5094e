"""Real-time scheduling for the agent: SCHED_FIFO and locked memory (ha.cf ``realtime``, ``rtprio``).

Theory of operation
-------------------
Heartbeat runs its heartbeat processes real-time by default, and so does hanode: a
heartbeat that waits behind a busy box's ordinary processes, or behind a page fault
under memory pressure, looks to the peer like a dead node. ``go_realtime`` moves the
process to SCHED_FIFO (with SCHED_RESET_ON_FORK, so resource scripts and the daemons
they start run at normal priority); ``lock_memory`` calls ``mlockall``. Neither is
fatal: without the privilege the agent runs on, and says what it could not do.
"""
import ctypes
import ctypes.util
import os
from typing import Optional

from hanode.logs import log

_MCL_CURRENT = 1
_MCL_FUTURE = 2


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


def lock_memory() -> None:
    """mlockall, so that a page fault under memory pressure cannot delay a heartbeat.  Locking
    a Python process's pages takes ~0.3 s; ctypes releases the GIL, so it runs in a thread."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        log("info", "realtime: memory locked (mlockall)")
    except (OSError, AttributeError, TypeError) as e:
        log("warning", "realtime: cannot lock memory (%s)" % e)
