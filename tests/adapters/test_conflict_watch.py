"""The runner's conflict watch (issue 13 finding 5, RFC 5227 section 2.4) on real kernel objects:
two namespaces on one bridge, the runner holding 192.0.2.100 in one, foreign ARP sent from the
other through a raw socket in a separate process."""
import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from tests.adapters.test_resources import Group, IpRes, World, helpers, needs_netns

VIP = "192.0.2.100"
# A conflict must reach the core within this of the frame leaving the other namespace: the
# watch is an event-loop reader on the socket, so it is a wake-up, not a polling period.
REPORT_BOUND_S = 0.1

SENDER = r'''
import json, socket, sys, time
from hanode import arp
ifname, vip, listen_ms = sys.argv[1], sys.argv[2], int(sys.argv[4])
kinds = [k for k in sys.argv[3].split(",") if k]
sock, mac = arp.open_socket(ifname)
sock.setblocking(True)
vipb = socket.inet_aton(vip)
client = socket.inet_aton("192.0.2.20")
frames = {
    "garp": arp.build_frame(arp.ARPOP_REQUEST, mac, vipb, arp.ZERO_MAC, vipb),
    "reply": arp.build_frame(arp.ARPOP_REPLY, mac, vipb, mac, vipb),
    "probe": arp.build_frame(arp.ARPOP_REQUEST, mac, arp.ZERO_IP, arp.ZERO_MAC, vipb),
    "request": arp.build_frame(arp.ARPOP_REQUEST, mac, client, arp.ZERO_MAC, vipb),
}
sent = []
for kind in kinds:
    sent.append([kind, time.monotonic()])   # taken before: delivery can beat send()'s return
    sock.send(frames[kind])
    time.sleep(0.05)
heard = []
sock.settimeout(0.05)
end = time.monotonic() + listen_ms / 1000.0
while time.monotonic() < end:
    try:
        data, addr = sock.recvfrom(2048)
    except socket.timeout:
        continue
    pkt = arp.parse_frame(data)
    if addr[2] != arp.PACKET_OUTGOING and pkt is not None and pkt.spa == vipb and pkt.sha != mac:
        heard.append([arp.mac_str(pkt.sha), time.monotonic()])
print(json.dumps({"mac": arp.mac_str(mac), "sent": sent, "heard": heard}))
'''


async def send_from(ns, kinds, listen_ms=0):
    """Run the sender in namespace ``ns`` (its own process) and return what it printed."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", SENDER, "eth0", VIP, ",".join(kinds), str(listen_ms),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_sender_env())
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@needs_netns
@pytest.mark.integration
def test_foreign_arp_claiming_our_vip_is_reported_within_the_bound(tmp_path):
    w = World(tmp_path)
    group = Group("node1", [IpRes(VIP, 24, "eth0")])

    async def body(other_ns):
        r = w.runner(group)
        reports = []
        r.report_conflicts(lambda key, detail: reports.append((time.monotonic(), key, detail)))
        out = {}
        # before anything is held or probed: nobody listens, nothing is reported
        await send_from(other_ns, ["garp"])
        out["unheld"] = list(reports)
        # a probe that found the address free: the window until the add is watched, and a
        # rival's probe counts there
        out["probe"] = await r.probe(group.key)
        out["rival_probe"] = await send_from(other_ns, ["probe"])
        await asyncio.sleep(0.05)
        out["after_rival_probe"] = list(reports)
        del reports[:]
        out["acquire"] = await r.acquire(group.key)
        del reports[:]
        # held: a client asking for the VIP and a probe for it are not conflicts (our kernel
        # answers the probe); a gratuitous request and a reply claiming it are
        out["harmless"] = await send_from(other_ns, ["request", "probe"])
        await asyncio.sleep(0.05)
        out["after_harmless"] = list(reports)
        out["claims"] = await send_from(other_ns, ["garp", "reply"])
        await asyncio.sleep(0.05)
        out["after_claims"] = list(reports)
        # defending: one gratuitous ARP the other namespace hears
        defence = asyncio.ensure_future(send_from(other_ns, [], listen_ms=1500))
        await asyncio.sleep(0.7)   # the sender has its socket open by then (python start-up)
        r.defend(group.key)
        out["defence"] = await defence
        del reports[:]
        out["release"] = await r.release(group.key)
        await send_from(other_ns, ["garp"])
        await asyncio.sleep(0.05)
        out["after_release"] = list(reports)
        out["messages"] = w.messages
        await r.close()
        return out

    with helpers.Lan(2) as lan:
        out = lan.call(1, body, lan.nodes[0], timeout=60)
    other_mac, our_mac = "02:68:6e:00:00:01", "02:68:6e:00:00:02"
    assert out["unheld"] == []
    assert out["probe"] == (False, "nobody answered for %s" % VIP)
    assert len(out["after_rival_probe"]) == 1, out
    _t, key, detail = out["after_rival_probe"][0]
    assert key == group.key and detail == "%s is claimed by %s on eth0" % (VIP, other_mac)
    assert out["acquire"][0], out["acquire"]
    assert out["after_harmless"] == [], out["after_harmless"]
    reported = [t for t, _k, _d in out["after_claims"]]
    sent = [t for _kind, t in out["claims"]["sent"]]
    assert len(reported) == 2, out["after_claims"]
    latencies = [b - a for a, b in zip(sent, reported)]
    print("conflict reported %s ms after the frame was sent" % ", ".join("%.2f" % (x * 1000) for x in latencies))
    assert all(0 <= x < REPORT_BOUND_S for x in latencies), latencies
    heard = [mac for mac, _t in out["defence"]["heard"]]
    assert heard.count(our_mac) == 2, out["defence"]   # one round: an ARP request and an ARP reply
    assert out["release"][0] and out["after_release"] == []
    assert any("Defending %s on eth0" % VIP in t for _l, t in out["messages"])


@needs_netns
@pytest.mark.integration
def test_drop_addresses_takes_the_vip_down_under_a_start_in_progress(tmp_path):
    """The yielding side: the address goes at once although the group's next script is still
    starting (1 s); the acquire then gives up, rolls back and returns a failure."""
    from tests.adapters.test_resources import Res, write_script
    w = World(tmp_path)
    write_script(w.rd, "slowstart", start='sleep 1; touch "$flag"; exit 0')
    group = Group("node1", [IpRes(VIP, 24, "eth0"), Res("slowstart")])

    async def body():
        from hanode.vip import Vip
        r = w.runner(group)
        vip = Vip(VIP, 24, "eth0")
        acquiring = asyncio.ensure_future(r.acquire(group.key))
        while not vip.present():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)   # inside the slow start now
        t0 = time.monotonic()
        r.drop_addresses(group.key)
        while vip.present():
            await asyncio.sleep(0.002)
        dropped_after = time.monotonic() - t0
        result = await acquiring
        out = {"dropped_after": dropped_after, "acquire": result, "present": vip.present(),
               "running": os.path.exists(os.path.join(w.state, "slowstart")), "messages": w.messages}
        await r.close()
        return out

    with helpers.Lan(1) as lan:
        out = lan.call(0, body, timeout=60)
    print("address dropped %.1f ms after drop_addresses, under a start in progress" % (out["dropped_after"] * 1000))
    assert out["dropped_after"] < 0.5, out
    assert out["acquire"] == (False, "slowstart: given up: another box keeps its address"), out
    assert not out["present"] and not out["running"], out


@needs_netns
@pytest.mark.integration
def test_a_vip_yielded_before_its_add_is_never_added_nor_announced(tmp_path):
    """drop_addresses while the acquire is resolving the address (its first step, in a worker
    thread): the address is not added at all, nothing is announced, the acquire fails."""
    w = World(tmp_path)
    group = Group("node1", [IpRes(VIP, 24, "eth0")])

    async def body():
        from hanode.vip import Vip
        r = w.runner(group)
        acquiring = asyncio.ensure_future(r.acquire(group.key))
        await asyncio.sleep(0)   # the acquire runs up to its first netlink call
        r.drop_addresses(group.key)
        result = await acquiring
        out = {"acquire": result, "present": Vip(VIP, 24, "eth0").present(), "messages": w.messages}
        await r.close()
        return out

    with helpers.Lan(1) as lan:
        out = lan.call(0, body, timeout=60)
    assert out["acquire"] == (False, "IPaddr::%s: given up: another box keeps its address" % VIP), out
    assert not out["present"]
    texts = [t for _l, t in out["messages"]]
    assert not any("added to" in t or "gratuitous ARP" in t for t in texts), texts


@needs_netns
@pytest.mark.integration
def test_a_holder_that_answers_after_the_probes_wait_is_still_heard(tmp_path, monkeypatch):
    """The conflict watch listens from before the first probe: a claim that arrives once the probe
    has given its answer ("free") - a holder slower than the probe's wait - waits in the socket's
    queue while the loop is busy and is reported, not drained away when the watch starts."""
    from hanode import arp
    w = World(tmp_path)
    group = Group("node1", [IpRes(VIP, 24, "eth0")])
    real_probe = arp.probe

    async def probe_then_late_claim(*args, **kwargs):
        answer = await real_probe(*args, **kwargs)
        # the late answer: sent from the other namespace while this loop does not read (a
        # blocking call), so it is queued on the interface's socket before the probe returns
        subprocess.run(["ip", "netns", "exec", OTHER_NS[0], sys.executable, "-c", SENDER, "eth0", VIP, "reply", "0"],
                       check=True, capture_output=True, env=_sender_env())
        return answer

    monkeypatch.setattr(arp, "probe", probe_then_late_claim)
    OTHER_NS = []

    async def body(other_ns):
        OTHER_NS.append(other_ns)
        r = w.runner(group)
        reports = []
        r.report_conflicts(lambda key, detail: reports.append((key, detail)))
        out = {"probe": await r.probe(group.key)}
        await asyncio.sleep(0.05)
        out["reports"] = list(reports)
        await r.close()
        return out

    with helpers.Lan(2) as lan:
        out = lan.call(1, body, lan.nodes[0], timeout=60)
    assert out["probe"] == (False, "nobody answered for %s" % VIP), out
    assert out["reports"] == [(group.key, "%s is claimed by 02:68:6e:00:00:01 on eth0" % VIP)], out


def _sender_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return env
