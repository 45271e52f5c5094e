"""``hanode demo``: the classic two-node story, for real, on this machine.

Theory of operation
-------------------
Builds a ``hanode.lab.bed.Lab`` (three network namespaces on a private bridge,
a 19200-baud null-modem between two PTYs, per-node /etc/ha.d, a web service
init script), starts ``hanode run`` on both nodes and an HTTP client that
GETs the VIP every 100 ms, then tells the story: cold start (node1 serves),
power loss of node1 (its processes killed, its LAN port dark: node2 serves),
node1 powers back (auto_failback on: it serves again).  ``--story lan`` tells
issue 14's instead: node1's LAN link goes down with hanode running (node2
serves), comes back (node1 serves again once the link has been stable for the
gain settle time), then both links go down (nothing moves: status says why).
It prints a timeline
with milliseconds and the client's outage windows; ``--json`` prints the
measured summary.  Everything is torn down on success, failure and Ctrl-C.
"""
import argparse
import json
import subprocess
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from hanode.lab.bed import Lab, LabError, NODES, VIP, sigterm_interrupts

INTERESTING = ("is dead", "acquired", "released", "Heartbeat restart", "Not taking", "READY",
               "returning after partition", "Received shutdown notice", "stalled", "LAN health")
STORIES = ("power", "lan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classic", action="store_true",
                        help="Heartbeat's classic timing (keepalive 1 s, deadtime 15 s) instead of the tight one "
                             "(keepalive 100 ms, deadtime 500 ms)")
    parser.add_argument("--story", choices=STORIES, default="power",
                        help="power: node1 loses power and comes back (default); lan: node1's LAN link goes "
                             "down and up with hanode running, then both links go down")
    parser.add_argument("--json", action="store_true", help="print the measured summary as JSON at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, cable log)")
    parser.add_argument("--hold", type=float, default=2.0, metavar="SECONDS",
                        help="how long to watch each steady state (default %(default)s)")


class Story:
    def __init__(self, lab: Lab, quiet: bool) -> None:
        self.lab = lab
        self.quiet = quiet
        self.t0 = time.time()

    def say(self, text: str) -> None:
        if not self.quiet:
            print("%8.3f s  %s" % (time.time() - self.t0, text), flush=True)

    def wait_serving(self, who: str, timeout: float, since: float) -> Optional[float]:
        def served() -> bool:
            return any(e["ok"] and e["body"] == who and e["t"] >= since for e in self.lab.client_events())
        if self.lab.wait_for(served, timeout) is None:
            return None
        first = min(e["t"] for e in self.lab.client_events() if e["ok"] and e["body"] == who and e["t"] >= since)
        return first

    def outage_after(self, since: float) -> float:
        windows = [w for w in self.lab.outages(since) if w[1] >= since]
        return sum((end - max(start, since)) for start, end, _, _ in windows) * 1000


def _log_events(lab: Lab) -> List[Tuple[float, str]]:
    events = []
    for node in NODES:
        for stamp, _level, text in lab.log_lines(node):
            if any(word in text for word in INTERESTING):
                events.append((stamp, "%s: %s" % (node, text)))
    return events


def timeline(lab: Lab, t0: float, until: float) -> List[str]:
    events: List[Tuple[float, str]] = list(lab.marks)
    events += _log_events(lab)
    for node in NODES:
        for start, end in lab.vip_intervals(node):
            events.append((start, "%s: VIP %s configured" % (node, VIP)))
            if end < time.time() - 0.01:
                events.append((end, "%s: VIP %s removed" % (node, VIP)))
    for start, end, before, after in lab.outages(t0):
        if start > until:
            continue
        events.append((start, "client: no answer from %s (last served by %s)" % (VIP, before or "nobody")))
        if after:
            events.append((end, "client: served by %s again after %.0f ms" % (after, (end - start) * 1000)))
    events.sort()
    return ["%9.3f  %s" % (t - t0, text) for t, text in events if t0 - 1 <= t <= until]


def run(args: argparse.Namespace) -> int:
    summary: Dict[str, Any] = {}
    quiet = args.json
    timing = "classic" if args.classic else "tight"
    try:
        lab = Lab(timing=timing, keep_workdir=args.keep)
    except LabError as e:
        print("hanode demo: %s" % e, file=sys.stderr)
        return 1
    try:
        with sigterm_interrupts(), lab:
            story = Story(lab, quiet)
            t = lab.timing
            story.say("lab ready: namespaces %s-{node1,node2,client,lan}, null-modem %s <-> %s at 19200 baud"
                      % (lab.prefix, *lab.cable.paths))
            story.say("timing: keepalive %s, deadtime %s, auto_failback on; VIP %s + webapp on node1"
                      % (t["keepalive"], t["deadtime"], VIP))
            lab.start_client(0.1)
            t0 = time.time()
            for node in NODES:
                lab.start(node)
            story.say("cold start: both boxes powered on")
            first = story.wait_serving("node1", 30, t0)
            if first is None:
                raise LabError("node1 never served the page; see %s" % lab.workdir)
            summary["cold_start_ms"] = round((first - t0) * 1000)
            story.say("client served by node1 (%d ms after power-on)" % summary["cold_start_ms"])
            time.sleep(args.hold)

            t1 = time.time()
            if getattr(args, "story", "power") == "lan":
                _lan_story(lab, story, args, summary)
            else:
                _power_story(lab, story, args, summary, t1)

            statuses = {n: lab.status(n) for n in NODES}
            summary["double_holder_ms"] = round(lab.double_holder_ms(), 1)
            frames = lab.cable_frames()
            summary["heartbeat_frame_bytes"] = frames["bytes_per_frame"]
            summary["frames_on_cable"] = frames["frames"]
            # frames the cable damaged (bytes dropped, corrupted or lost while cut: 0 on a clean
            # cable), and frames the nodes rejected (this also counts the partial frame a node
            # reads when it opens the port mid-frame)
            damaged = 0
            for counts in lab.cable.counters().values():
                damaged += sum(counts.get(k, 0) for k in ("dropped", "corrupted", "lost_cut", "overrun"))
            summary["frames_lost"] = damaged
            rejected = 0
            for st in statuses.values():
                if st:
                    rejected += sum(v for k, v in st["counters"]["dropped"].items() if k not in ("duplicate", "own"))
            summary["frames_rejected"] = rejected
            summary["timing"] = timing
            detect = [t for t, text in _log_events(lab) if "node2" in text and "is dead" in text and t > t1]
            if summary.get("story") == "lan":
                detect = [t for t, text in _log_events(lab) if "node1" in text and "LAN health 0" in text and t > t1]
            if detect:
                summary["detection_ms"] = round((detect[0] - t1) * 1000)
            t_end = time.time()
            for node in NODES:
                lab.signal(node, signal.SIGTERM)
            lab.wait_for(lambda: all(p.poll() is not None for p in lab.procs.values()), 30)
            summary["clean_exit"] = all(p.returncode == 0 for p in lab.procs.values())
            if not quiet:
                print()
                print("timeline (s since cold start):")
                for line in timeline(lab, t0, t_end):
                    print(line)
                print()
                print("summary:")
                for k, v in summary.items():
                    print("  %-22s %s" % (k, v))
                if args.keep:
                    print("  work directory: %s" % lab.workdir)
    except LabError as e:
        print("hanode demo failed: %s" % e, file=sys.stderr)
        if not args.keep:
            print("(run with --keep to look at the logs)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhanode demo: interrupted; everything torn down", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0 if summary.get("double_holder_ms", 1) == 0 and not summary.get("both_down_moves") else 1


def _power_story(lab: Lab, story: Story, args: argparse.Namespace, summary: Dict[str, Any], t1: float) -> None:
    """node1 loses power, node2 serves; node1 comes back and gets its group back."""
    lab.power_off("node1")
    story.say("POWER LOSS on node1: processes killed, LAN port down")
    served = story.wait_serving("node2", 60 if args.classic else 15, t1)
    if served is None:
        raise LabError("node2 never took over; see %s" % lab.workdir)
    time.sleep(0.3)
    summary["failover_outage_ms"] = round(story.outage_after(t1))
    story.say("client served by node2: outage %d ms" % summary["failover_outage_ms"])
    time.sleep(args.hold)

    t2 = time.time()
    lab.power_on("node1")
    story.say("node1 powered on again")
    back = story.wait_serving("node1", 60, t2)
    if back is None:
        raise LabError("node1 never got its group back; see %s" % lab.workdir)
    time.sleep(args.hold)
    summary["failback_outage_ms"] = round(story.outage_after(t2))
    story.say("failed back: client served by node1 again; outage %d ms" % summary["failback_outage_ms"])


def _link(lab: Lab, node: str, state: str) -> None:
    subprocess.run(["ip", "-n", lab.ns(node), "link", "set", "eth0", state], check=True)


def _lan_story(lab: Lab, story: Story, args: argparse.Namespace, summary: Dict[str, Any]) -> None:
    """Issue 14: node1's LAN link down with hanode running, back, then both links down."""
    summary["story"] = "lan"
    t1 = time.time()
    _link(lab, "node1", "down")
    story.say("LAN LINK DOWN on node1 (ip link set eth0 down; hanode keeps running, the cable is fine)")
    if story.wait_serving("node2", 15, t1) is None:
        raise LabError("node2 never took over from node1's dead LAN; see %s" % lab.workdir)
    time.sleep(0.3)
    summary["lan_loss_outage_ms"] = round(story.outage_after(t1))
    story.say("client served by node2: outage %d ms" % summary["lan_loss_outage_ms"])
    st = lab.status("node1")
    if st and st.get("lan"):
        story.say("node1 status: %s" % st["lan"]["why"])
    time.sleep(args.hold)

    t2 = time.time()
    _link(lab, "node1", "up")
    story.say("node1's LAN link up again: it counts once stable for the gain settle time")
    back = story.wait_serving("node1", 60, t2)
    if back is None:
        raise LabError("node1 never got its group back; see %s" % lab.workdir)
    summary["lan_back_to_served_ms"] = round((back - t2) * 1000)
    time.sleep(0.3)
    summary["lan_failback_outage_ms"] = round(story.outage_after(t2))
    story.say("failed back: client served by node1 %d ms after its link came up; outage %d ms"
              % (summary["lan_back_to_served_ms"], summary["lan_failback_outage_ms"]))
    time.sleep(args.hold)

    t3 = time.time()
    _link(lab, "node1", "down")
    _link(lab, "node2", "down")
    story.say("BOTH LAN LINKS DOWN (the switch died)")
    time.sleep(max(args.hold, 3.0))
    moved = [w for w in lab.vip_intervals("node2") if w[0] >= t3]
    summary["both_down_moves"] = len(moved)
    st = lab.status("node2")
    if st and st.get("lan"):
        story.say("node2 status: %s" % st["lan"]["why"])
    story.say("nothing moved: node1 still holds the VIP" if not moved else "the VIP MOVED (a bug)")
    _link(lab, "node1", "up")
    _link(lab, "node2", "up")
    story.say("both links up again")
    time.sleep(args.hold)
