"""Benchmarks of hanode: ``python -m tools.bench [--quick] [--json FILE] [--plot FILE.png] [--only NAME,...]``.

Theory of operation
-------------------
Every figure runs real agents (``hanode run``) in network namespaces joined by
the paced 19200-baud null-modem, built with ``hanode.lab.bed.Lab`` and measured
from outside: the cable's byte log, netlink and ARP seen from the LAN, the
client's HTTP requests, the agents' logs, counters and /proc.  One module per
figure, each with ``run(ctx) -> dict`` returning a title, the machine, the
method in words, a table (columns + rows of strings) and the raw numbers:

1. ``failover``  power loss at classic and tight timings: detection, VIP up,
   first gratuitous ARP, client outage; failback outage (auto_failback on)
2. ``safe``      the fastest safe timing: soaks under CPU load and line noise
3. ``wire``      bytes per frame, line utilisation, lost / rejected frames
4. ``jitter``    heartbeat send-interval jitter, idle / loaded, real-time or not
5. ``footprint`` idle CPU and RSS, start-up to READY and first heartbeat, imports
6. ``codec``     encode + decode + verify frames per second (CPython, MicroPython)
7. ``compare``   hanode and Heartbeat 3.0.6 side by side in the same lab (only with
   ``--compare-heartbeat`` or ``--only compare``: ~15 min; ``heartbeat_peer``
   runs Heartbeat in the namespaces)
8. ``memory``    what the agent's memory is made of, import by import, realtime on/off
9. ``monitor``   the web service SIGKILLed on the active box: detection by the status
   check, restart in place, client outage (monitor_interval)
10. ``lan``       the active box's LAN link down (issue 14): detection, hand-over,
    client outage; failback once the link is stable
11. ``image``     the x86_64 appliance image under QEMU (its tests in tests/image):
    boot chart, failover, failback, watchdog reset, the agent's memory on the box
    (only with ``--only image`` or ``--all``)

``common`` holds what they share (``Pair``: a running pair and its measured
windows; statistics; CPU load).  ``__main__`` is the CLI: it prints one table
per figure and the issue's targets next to what was measured, and writes
``--json``, ``--markdown`` and ``--plot`` (``plot``, matplotlib optional).
Distributions are given as p50 / p95 / max (jitter: p50 / p99 / p99.9).
"""
import importlib
from typing import Any, Dict

FIGURES = {
    "failover": "1. Failover after power loss (and failback)",
    "safe": "2. Fastest safe timing (both cores busy, line noise)",
    "wire": "3. Wire: bytes per heartbeat, line utilisation, frame loss",
    "jitter": "4. Timing quality: heartbeat send-interval jitter",
    "footprint": "5. Footprint: idle CPU, RSS, start-up, imports",
    "codec": "6. Codec: frames per second through hanode.core.frame / auth",
    "compare": "7. hanode and Heartbeat 3.0.6 side by side (same lab, same cable, same files)",
    "memory": "8. Memory: what it is made of, import by import, realtime on and off",
    "monitor": "9. Service crash: detection and restart in place (monitor_interval)",
    "lan": "10. LAN loss of the active box: detection, hand-over, client outage",
    "image": "11. The appliance image under QEMU: boot, failover, the agent's memory on the box",
}
ORDER = tuple(FIGURES)
# what a run without --only measures (the Heartbeat comparison is its own mode: --compare-heartbeat;
# the image boots QEMU boxes: --only image, or --all)
DEFAULT = tuple(n for n in ORDER if n not in ("compare", "image"))


def modules() -> Dict[str, Any]:
    """name -> figure module (imported on demand: codec needs nothing of the lab)."""
    return {name: importlib.import_module("tools.bench." + name) for name in ORDER}
