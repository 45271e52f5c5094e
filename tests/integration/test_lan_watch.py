"""hanode/lan.py on a real kernel: netlink link events and ICMP echo inside a namespace.

The watch runs inside node 0's namespace of a two-node ``netns_lan`` (node 1 answers pings) and
the same process changes the links with ``ip``, so every report is timed against the change that
caused it: the VIP interface going down and up, a watched interface deleted and created again
(a new index, the same name), a ping node blackholed and restored, and a ping_group that stays
up while one member answers.
"""
import asyncio
import subprocess
import time

import pytest

from helpers import in_netns

DEADPING_MS = 300
INTERVAL_MS = 50


async def _scenario(peer: str):
    from hanode.lan import LanWatch

    reports = []

    def report(value, detail):
        reports.append((time.monotonic(), value, detail))

    def ip(*args):
        subprocess.run(["ip"] + list(args), check=True, capture_output=True)
        return time.monotonic()

    async def until(value, timeout=3.0):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if reports and reports[-1][1] == value:
                return reports[-1]
            await asyncio.sleep(0.005)
        raise AssertionError("no report of %r within %.1f s: %r" % (value, timeout, reports))

    def add_pair():   # a veth pair inside the namespace: carrier once both ends are up
        ip("link", "add", "w9", "type", "veth", "peer", "name", "w9p")
        ip("link", "set", "w9p", "up")
        return ip("link", "set", "w9", "up")

    add_pair()
    # a fresh bridge port forwards after a moment: wait until the peer answers at all, so that the
    # first report is about the watch, not the lab warming up
    for _ in range(50):
        if subprocess.run(["ping", "-c", "1", "-W", "0.2", peer], capture_output=True).returncode == 0:
            break
    watch = LanWatch(["eth0", "w9"], [peer], [("grp", ["192.0.2.250", peer])], INTERVAL_MS, DEADPING_MS,
                     report, lambda level, text: None)
    steps = {}
    try:
        started = time.monotonic()
        await watch.start()
        first = await until(3)             # carrier on both, the ping node and the group reached
        steps["first_report_s"] = first[0] - started
        steps["reports_before_first"] = len(reports)
        t = ip("link", "set", "eth0", "down")
        steps["eth0_down_ms"] = ((await until(0))[0] - t) * 1000
        steps["eth0_down_detail"] = reports[-1][2]
        t = ip("link", "set", "eth0", "up")
        steps["eth0_up_ms"] = ((await until(3))[0] - t) * 1000
        t = ip("link", "del", "w9")
        steps["deleted_ms"] = ((await until(0))[0] - t) * 1000
        steps["deleted_detail"] = reports[-1][2]
        await asyncio.sleep(0.05)   # (the carrier drops, then the link is deleted: two events)
        steps["deleted_state"] = watch.status()["interfaces"]["w9"]
        t = add_pair()
        steps["recreated_ms"] = ((await until(3))[0] - t) * 1000
        t = ip("route", "add", "blackhole", peer + "/32")
        steps["blackholed_ms"] = ((await until(1))[0] - t) * 1000   # the node and the group lost
        steps["blackholed_detail"] = reports[-1][2]
        t = ip("route", "del", "blackhole", peer + "/32")
        steps["restored_ms"] = ((await until(3))[0] - t) * 1000
        steps["status"] = watch.status()
    finally:
        watch.close()
        subprocess.run(["ip", "link", "del", "w9"], capture_output=True)
    return steps


@pytest.mark.integration
def test_lan_watch_reports_carrier_interfaces_and_ping_nodes_on_a_real_kernel(netns_lan):
    lan = netns_lan(n=2)
    peer = lan.addr(1).split("/")[0]
    s = in_netns(lan.nodes[0], _scenario, peer, timeout=60)
    print(s)
    # the first report waits for the ping nodes' first answers, not for deadping
    assert s["reports_before_first"] == 1 and s["first_report_s"] < DEADPING_MS / 1000.0, s
    # carrier changes are netlink events: milliseconds, no polling
    assert s["eth0_down_ms"] < 50 and s["eth0_up_ms"] < 50, s
    assert s["eth0_down_detail"] == "no carrier on eth0", s
    assert s["deleted_ms"] < 50 and s["deleted_detail"].startswith("no carrier on w9"), s
    assert s["deleted_state"] == "gone", s
    assert s["recreated_ms"] < 50, s
    # a ping node is lost after deadping without an answer (plus a probe round at most)
    assert DEADPING_MS - INTERVAL_MS <= s["blackholed_ms"] <= DEADPING_MS + 3 * INTERVAL_MS, s
    assert s["blackholed_detail"] == "ping nodes %s grp lost" % peer, s
    assert s["restored_ms"] <= 3 * INTERVAL_MS, s
    st = s["status"]
    assert st["interfaces"] == {"eth0": "up", "w9": "up"} and st["ping_nodes"] == {peer: True, "grp": True}
    assert st["link_events"] >= 6 and st["echo_replies"] > 0 and st["netlink_resyncs"] == 0
