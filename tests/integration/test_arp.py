"""hanode.arp on a real bridged segment between namespaces.

Witnesses are independent of the code under test: a capture socket written here with
plain struct (not hanode.arp's parser), the kernel's own ARP replies and neighbour table.
"""
import socket
import statistics
import struct
import time

import pytest

from hanode import arp
from helpers import signal_ready

pytestmark = pytest.mark.integration

VIP = "192.0.2.100"
ETH_P_ARP = 0x0806


def capture_arp(ifname, want, timeout=3.0):
    """Collect up to `want` ARP frames arriving on `ifname` (runs in a namespace; signals ready)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((ifname, ETH_P_ARP))
    s.settimeout(0.1)
    signal_ready()
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        op, sha, spa, tha, tpa = struct.unpack("!6xH6s4s6s4s", data[14:42])
        frames.append({"t": time.monotonic(), "dst": data[0:6].hex(":"), "src": data[6:12].hex(":"), "op": op,
                       "sha": sha.hex(":"), "spa": socket.inet_ntoa(spa), "tha": tha.hex(":"),
                       "tpa": socket.inet_ntoa(tpa), "len": len(data)})
    return frames


def send_arp_loop(ifname, op, spa, tpa, seconds, every_s=0.002):
    """Keep sending one kind of ARP request for a while (a rival prober, or a client asking)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, ETH_P_ARP))
    mac = s.getsockname()[4]
    frame = arp.build_frame(op, mac, socket.inet_aton(spa), b"\0" * 6, socket.inet_aton(tpa))
    signal_ready()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        s.send(frame)
        n += 1
        time.sleep(every_s)
    return n


def test_frame_codec_roundtrip():
    mac = bytes.fromhex("02686e000001")
    frame = arp.build_frame(arp.ARPOP_REPLY, mac, socket.inet_aton(VIP), mac, socket.inet_aton(VIP))
    assert len(frame) == 60 and frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    p = arp.parse_frame(frame)
    assert (p.op, p.sha, p.spa, p.tha, p.tpa, p.eth_src) == (2, mac, socket.inet_aton(VIP), mac,
                                                             socket.inet_aton(VIP), mac)
    assert arp.parse_frame(frame[:41]) is None                      # truncated
    assert arp.parse_frame(frame[:12] + b"\x08\x00" + frame[14:]) is None   # not ARP
    assert arp.parse_frame(frame[:14] + b"\x00\x06" + frame[16:]) is None   # not Ethernet hardware
    assert arp.mac_str(mac) == "02:68:6e:00:00:01" and arp.mac_bytes("02:68:6e:00:00:01") == mac


def test_conflict_rules():
    me, other = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    vip, host, zero = socket.inet_aton(VIP), socket.inet_aton("192.0.2.3"), b"\0" * 4

    def pkt(op, sha, spa, tpa):
        return arp.ArpPacket(op, sha, spa, b"\0" * 6, tpa, sha)
    assert arp.is_conflict(pkt(2, other, vip, zero), vip, me)          # the holder's reply
    assert arp.is_conflict(pkt(1, other, vip, vip), vip, me)           # the holder's announcement
    assert arp.is_conflict(pkt(1, other, zero, vip), vip, me)          # a rival's probe
    assert not arp.is_conflict(pkt(1, other, host, vip), vip, me)      # a client asking for the VIP
    assert not arp.is_conflict(pkt(2, me, vip, zero), vip, me)         # ourselves
    assert not arp.is_conflict(pkt(2, other, host, vip), vip, me)      # somebody else's address


def test_announce_reaches_the_other_node(lan2):
    listener = lan2.spawn(1, capture_arp, "eth0", 6)
    listener.wait_ready()
    t0 = time.monotonic()
    sent = lan2.call(0, arp.announce, "eth0", VIP, count=3, interval_ms=50)
    took = time.monotonic() - t0
    frames = listener.result()
    assert sent == 6
    mac_a = lan2.mac(0)
    assert len(frames) == 6
    for f in frames:
        assert (f["dst"], f["src"], f["sha"], f["spa"], f["tpa"]) == ("ff:ff:ff:ff:ff:ff", mac_a, mac_a, VIP, VIP)
        assert f["len"] == 60
    requests = [f for f in frames if f["op"] == 1]
    replies = [f for f in frames if f["op"] == 2]
    assert len(requests) == 3 and len(replies) == 3
    assert all(f["tha"] == "00:00:00:00:00:00" for f in requests)   # RFC 5227 announcement
    assert all(f["tha"] == mac_a for f in replies)                  # arping -A style
    gaps = [b["t"] - a["t"] for a, b in zip(requests, requests[1:])]
    assert all(0.04 <= g <= 0.2 for g in gaps), gaps
    assert took < 1.5  # includes the forked child's start


def test_announce_updates_a_neighbours_stale_entry(lan2):
    # A client that still maps the VIP to the old holder's MAC must switch to the new one.
    lan2.run(1, "ip neigh replace %s lladdr 02:00:00:00:00:99 dev eth0 nud stale" % VIP)
    lan2.call(0, arp.announce, "eth0", VIP, count=2, interval_ms=20)
    deadline = time.monotonic() + 2
    while True:
        shown = lan2.run(1, "ip neigh show %s dev eth0" % VIP).stdout.decode()
        if lan2.mac(0) in shown or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert lan2.mac(0) in shown, shown


def probe_many(ifname, ip, n, **kw):
    import asyncio

    async def go():
        out = []
        for _ in range(n):
            t = time.perf_counter()
            mac = await arp.probe(ifname, ip, **kw)
            out.append((mac, time.perf_counter() - t))
            await asyncio.sleep(0.002)
        return out
    return asyncio.run(go())


def test_probe_finds_the_holder_and_is_fast(lan2):
    lan2.run(0, "ip addr add %s/24 dev eth0" % VIP)
    results = lan2.call(1, probe_many, "eth0", VIP, 20)
    assert {mac for mac, _ in results} == {lan2.mac(0)}
    times = [t for _, t in results]
    # ends on the first answer: well before the first 5 ms probe interval is over
    assert statistics.median(times) < 0.005, times
    assert max(times) < 0.05, times


def test_probe_returns_none_when_nobody_has_it(lan2):
    results = lan2.call(1, probe_many, "eth0", VIP, 10)
    assert [mac for mac, _ in results] == [None] * 10
    times = [t for _, t in results]
    # 3 probes 5 ms apart, then 10 ms of listening: 20 ms, plus timer slack
    assert min(times) >= 0.019, times
    assert statistics.median(times) < 0.04 and max(times) < 0.13, times


def test_probe_timing_follows_its_parameters(lan2):
    results = lan2.call(1, probe_many, "eth0", VIP, 3, count=2, interval_ms=20, wait_ms=10)
    assert all(mac is None and 0.029 <= t < 0.1 for mac, t in results), results


def test_probe_ignores_its_own_address(lan2):
    # The prober itself already holds the VIP (e.g. re-probing after a restart): not a conflict.
    lan2.run(1, "ip addr add %s/24 dev eth0" % VIP)
    assert lan2.call(1, arp.probe, "eth0", VIP) is None


def test_probe_sees_a_rival_prober(netns_lan):
    lan = netns_lan(3)
    rival = lan.spawn(2, send_arp_loop, "eth0", 1, "0.0.0.0", VIP, 1.0)
    try:
        rival.wait_ready()
        assert lan.call(1, arp.probe, "eth0", VIP) == lan.mac(2)
    finally:
        rival.kill()


def test_clients_asking_for_the_vip_are_not_a_conflict(netns_lan):
    # After the holder died, clients keep asking "who has the VIP?": that must not block a takeover.
    lan = netns_lan(3)
    client = lan.spawn(2, send_arp_loop, "eth0", 1, lan.addr(2), VIP, 1.0)
    try:
        client.wait_ready()
        assert lan.call(1, arp.probe, "eth0", VIP) is None
    finally:
        client.kill()


def test_concurrent_probes_share_the_socket(lan2):
    lan2.run(0, "ip addr add %s/24 dev eth0" % VIP)

    async def both():
        import asyncio
        return await asyncio.gather(arp.probe("eth0", VIP), arp.probe("eth0", "192.0.2.101"),
                                    arp.probe("eth0", VIP))
    assert lan2.call(1, both) == [lan2.mac(0), None, lan2.mac(0)]


def test_recreated_interface_gets_a_fresh_socket(netns1):
    ns_cmd = netns1.run

    def make_pair():
        ns_cmd(0, "ip link add va type veth peer name vb")
        ns_cmd(0, "ip link set va up")
        ns_cmd(0, "ip link set vb up")
        ns_cmd(0, "ip addr add %s/32 dev vb" % VIP)

    make_pair()

    async def body(step):
        first = await arp.probe("va", VIP)
        step()
        second = await arp.probe("va", VIP)
        return first, second

    def recreate():
        ns_cmd(0, "ip link del va")
        make_pair()

    first, second = netns1.call(0, body, recreate)
    assert first is not None and second is not None and first != second  # the new vb has a new MAC


def test_errors_name_the_interface(netns1):
    netns1.run(0, "ip link set eth0 down")

    async def body():
        out = []
        for coro in (arp.probe("eth9", VIP), arp.announce("eth9", VIP, count=1), arp.announce("eth0", VIP, count=1),
                     arp.probe("lo", VIP), arp.probe("eth0", "192.0.2")):
            try:
                await coro
                out.append("no error")
            except arp.ArpError as e:
                out.append(str(e))
        return out

    assert netns1.call(0, body) == [
        "no interface eth9",
        "no interface eth9",
        "cannot send ARP on eth0: the interface is down",
        "lo is not an Ethernet interface (hardware type 772); cannot send ARP",
        "'192.0.2' is not an IPv4 address",
    ]
