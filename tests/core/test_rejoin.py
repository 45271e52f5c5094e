"""A box that lost its state rejoins (issue 13 finding 1), and no earlier life replays.

Simulated pair, simulated clock; also run under MicroPython (tools/mpytest).
The sim's ``power_on(name, forget=True)`` is an RMA swap, a reflash or the
image's tmpfs /data: the box starts at generation 1 and knows nothing of the
peer.  ``persist_floors`` makes each box keep the peer's generation across its
own restarts, as the daemon's state directory does.
"""

from tests.support.sim import Sim
from tests.core.util import record, settled_pair
from hanode.core.auth import Auth
from hanode.core.frame import (Control, Decoder, Frame, TYPE_CHALLENGE, TYPE_REJOIN, TYPE_STATUS,
                               cobs_decode, decode_one, encode)
from hanode.core.limits import CONTROL_WIRE_BYTES, FRAME_WIRE_BYTES, MAX_ENCODED
from hanode.core import rejoin

GROUP = "192.0.2.100"   # preferred by node1


def cold_start():
    sim = Sim()
    sim.persist_floors = True
    return settled_pair(sim)


class tap:
    """Every frame the box sends from now on (a tap on the cable), as a list of bytes."""

    def __init__(self, box):
        self.sent = record(box)

    def __iter__(self):
        return iter([w for _, o in self.sent for w in wires(o.data)])


def wires(data):
    """The frames of one Send (a status frame and its version 2 copy go out in one write)."""
    return [p + b"\x00" for p in data.split(b"\x00")[:-1]]


def frame_type(data):
    raw = cobs_decode(data[:-1])
    return (raw[0] >> 4) & 3


def lose_state_while_down(sim, restarts=0):
    """node1 (the preferred node) restarts ``restarts`` times with its state, then dies; node2
    takes over; node1 comes back with no state at all.  Returns node1's frames of its earlier
    lives (the last one's recorded in full)."""
    old = []
    for _ in range(restarts):
        sim.power_off("node1")
        sim.run(100)
        sim.power_on("node1")
        assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 8000) is not None
    recorder = tap(sim.box("node1"))
    sim.run(2000)
    old.extend(recorder)
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    sim.run(1000)
    return old


def rejoined(sim):
    n1, n2 = sim.box("node1").node, sim.box("node2").node
    return n2.live.alive() and n2.peer_frame is not None and n2.peer_frame.gen == n1.gen


def assert_rejoins_and_fails_back(sim):
    n2 = sim.box("node2")
    floor_before = n2.node._peer_floor()
    on_at = sim.now
    sim.power_on("node1", forget=True)
    n1 = sim.box("node1")
    assert n1.node.gen == 1
    took = sim.run_until(lambda: rejoined(sim), 5000)
    cfg = sim.cfg
    assert took is not None, n2.log_text() + "\n---\n" + n1.log_text()
    assert took <= cfg.deadtime_ms + 1000, took
    assert n1.node.gen == floor_before[0] + rejoin.REJOIN_JUMP
    assert sim.generations["node1"] == n1.node.gen              # persisted before it was used
    assert n2.node.counters["rejoins"] == 1 and n1.node.counters["generation_jumps"] == 1
    back = sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000)
    assert back is not None, n2.log_text()
    assert sim.doubles_ms == 0
    # said once, clearly, however many frames were below the floor
    log = n2.log_text()
    assert log.count("Authentic frames from node1") == 1, log
    assert "node1 rejoined with generation %d" % n1.node.gen in log
    assert n2.node.counters["below_floor"] >= 1
    st = n2.node.status()
    assert st["rejoin"]["state"] == "idle" and st["rejoin"]["last"]["how"] == "rejoined"
    return took, sim.now - on_at


def test_control_frames_fit_the_wire_limit_and_round_trip():
    mac = Auth(1, {1: ("hmac-sha256", b"k" * 32)})
    crc = Auth(1, {1: ("crc", None)})
    for auth, size in ((mac, CONTROL_WIRE_BYTES), (crc, CONTROL_WIRE_BYTES - 4)):
        for kind in (TYPE_CHALLENGE, TYPE_REJOIN):
            c = Control(type=kind, src=1, target=0, gen=0xFFFFFFFF, seq=7, floor_gen=5, floor_seq=0xFFFFFFFF,
                        nonce=0xDEADBEEF)
            wire = encode(c, auth)
            assert len(wire) == size and len(wire) - 1 <= MAX_ENCODED
            got, reason = decode_one(wire[:-1], auth)
            assert reason == "ok" and got == c and got.key_index == 1
            dec = Decoder(auth)
            assert dec.feed(b"\x55\x66" + wire) == [c]          # found behind noise too
    assert len(encode(Frame(src=0, gen=1, seq=1), mac)) == FRAME_WIRE_BYTES == 24   # status frames unchanged


def test_box_without_state_rejoins_at_the_same_generation_and_fails_back():
    """node1 had only ever run generation 1: its new frames are generation 1 again, far behind
    the sequence numbers node2 accepted."""
    sim = cold_start()
    lose_state_while_down(sim)
    took, _ = assert_rejoins_and_fails_back(sim)
    assert took <= 2 * sim.cfg.keepalive_ms + 100, took        # measured: a keepalive or two


def test_box_without_state_rejoins_below_a_persisted_floor_after_both_restarted():
    """node1 ran generation 3; node2 restarted too (its floor for node1 comes from its state
    dir); node1 comes back without state at generation 1."""
    sim = cold_start()
    lose_state_while_down(sim, restarts=2)
    sim.power_off("node2")
    sim.power_on("node2")                                        # restores floor 3 for node1
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    assert sim.box("node2").node.guard.floor(0) == 3
    assert_rejoins_and_fails_back(sim)


def test_frames_of_earlier_lives_stay_rejected_after_the_rejoin():
    sim = cold_start()
    old = lose_state_while_down(sim, restarts=1)                 # generation 2, recorded
    n2 = sim.box("node2")
    sim.power_on("node1", forget=True)
    n1 = sim.box("node1")
    early = tap(n1)                                              # its new life before the rejoin
    assert sim.run_until(lambda: rejoined(sim), 5000) is not None
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    new_life = [d for d in early if frame_type(d) == 0]
    before_generation = [d for d in new_life if decode(d).gen == 1]
    assert before_generation                                     # generation 1, sent before the jump
    sim.run(1000)
    view = status_view(n2)
    replays = n2.node.counters["replay"]
    recorded = old + before_generation
    for data in recorded:
        n2.handle(n2.node.receive(data, sim.now))
    assert n2.node.counters["replay"] - replays == len(recorded)
    assert status_view(n2) == view                               # nothing accepted, nothing changed
    # they start a new below-floor episode (said once), but node1, current, ignores the challenge
    sim.run(2000)
    assert n1.node.counters["generation_jumps"] == 1 and n2.node.counters["rejoins"] == 1
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0


def decode(data):
    f, reason = decode_one(data[:-1], Auth(1, {1: ("hmac-sha256", b"0123456789abcdef0123456789abcdef")}))
    assert reason == "ok", reason
    return f


def status_view(box):
    st = box.node.status()
    return (st["peer_state"], st["peer_generation"], [(g["held_by"], g["state"]) for g in st["groups"]],
            st["counters"]["frames_received"], st["generation"])


def test_recorded_challenge_and_rejoin_frames_are_rejected():
    sim = cold_start()
    lose_state_while_down(sim)
    n2 = sim.box("node2")
    from_n2 = tap(n2)
    sim.power_on("node1", forget=True)
    from_n1 = tap(sim.box("node1"))
    assert sim.run_until(lambda: rejoined(sim), 5000) is not None
    old_challenges = [d for d in from_n2 if frame_type(d) == TYPE_CHALLENGE]
    old_rejoins = [d for d in from_n1 if frame_type(d) == TYPE_REJOIN]
    assert old_challenges and len(old_rejoins) == 1
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    # node1, current, ignores the old challenge: no second jump
    n1 = sim.box("node1")
    gen = n1.node.gen
    for data in old_challenges:
        n1.handle(n1.node.receive(data, sim.now))
    assert n1.node.gen == gen and n1.node.counters["generation_jumps"] == 1
    # node1 loses its state again; during that episode the recorded rejoin does not end it
    sim.power_off("node1")
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node2"], 5000) is not None
    sim.power_on("node1", forget=True)
    n1 = sim.box("node1")
    n1_receive = n1.node.receive
    n1.node.receive = lambda data, now, link=None: []            # deaf for a moment: no answer yet
    assert sim.run_until(lambda: n2.node.rejoin.challenging(), 2000) is not None
    ignored = n2.node.counters["control_ignored"] + n2.node.counters["replay"]
    for data in old_rejoins:
        n2.handle(n2.node.receive(data, sim.now))
    assert n2.node.rejoin.challenging() and n2.node.counters["rejoins"] == 1
    assert n2.node.counters["control_ignored"] + n2.node.counters["replay"] == ignored + len(old_rejoins)
    n1.node.receive = n1_receive
    assert sim.run_until(lambda: rejoined(sim), 5000) is not None
    assert n2.node.counters["rejoins"] == 2
    assert n1.node.gen == gen + rejoin.REJOIN_JUMP                # above its last life, not beside it


def test_old_peer_that_ignores_challenges_stays_refused_and_it_is_said_once():
    """An older hanode drops type 1/2 frames (counted as `type`): the pair behaves as before
    the rejoin existed - refused - but the challenger says so once and shows it in status."""
    sim = cold_start()
    lose_state_while_down(sim, restarts=1)          # (at generation 1 again, it would pass node2's
    sim.power_on("node1", forget=True)              # last seq after a while: an old limit)
    n1, n2 = sim.box("node1"), sim.box("node2")
    original = n1.node.receive

    def old_version(data, now, link=None):
        kept = b"".join(p + b"\x00" for p in bytes(data).split(b"\x00")[:-1]
                        if not p or frame_type(p + b"\x00") == 0)
        return original(kept, now, link)
    n1.node.receive = old_version
    start = sim.now
    sim.run(5000)
    assert not n2.node.live.alive() and sim.holders() == ["node2"]
    st = n2.node.status()
    assert st["rejoin"]["state"] == "challenging" and st["rejoin"]["episode"]["below_floor"] >= 40
    assert st["counters"]["below_floor"] >= 40
    assert n2.log_text().count("Authentic frames from node1") == 1
    sent = st["counters"]["challenges_sent"]
    assert 1 <= sent <= (sim.now - start) // sim.cfg.keepalive_ms + 1, sent   # at most one a keepalive


def test_rejoin_table_is_consistent():
    r = rejoin.Rejoin()
    assert r.fire(rejoin.CHALLENGER, rejoin.REJOINED) is None and r.unlisted == 1
    assert r.fire(rejoin.CHALLENGER, rejoin.BELOW_FLOOR) == rejoin.DO_LOG
    assert r.fire(rejoin.CHALLENGER, rejoin.BELOW_FLOOR) is None and r.unlisted == 1
    assert r.fire(rejoin.REJOINER, rejoin.SAVED) is None and r.unlisted == 2
    assert r.fire(rejoin.REJOINER, rejoin.CHALLENGED) == rejoin.DO_NEW_GENERATION
    assert r.fire(rejoin.REJOINER, rejoin.SAVED) == rejoin.DO_REJOIN
    assert rejoin.below_floor(1, 5, (2, 0)) and rejoin.below_floor(2, 3, (2, 3 + rejoin.REORDER_FRAMES + 1))
    assert not rejoin.below_floor(2, 3, (2, 3 + rejoin.REORDER_FRAMES))     # overtaken on another link
    assert not rejoin.below_floor(3, 0, (2, 99))


def test_a_generation_that_cannot_be_saved_is_not_used():
    sim = cold_start()
    lose_state_while_down(sim)
    sim.power_on("node1", forget=True)
    n1 = sim.box("node1")
    original = n1.handle

    def handle(outputs):
        rest = []
        for o in outputs:
            if o.kind == "new_generation":
                n1.handle(n1.node.generation_saved(o.generation, False, sim.now, "disk full"))
            else:
                rest.append(o)
        original(rest)
    n1.handle = handle
    sim.run(1000)
    assert n1.node.gen == 1 and sim.generations["node1"] == 1
    assert "Cannot save the new boot generation" in n1.log_text()
    assert not sim.box("node2").node.live.alive()
    n1.handle = original                                         # the disk is back: the next challenge works
    assert sim.run_until(lambda: rejoined(sim), 3000) is not None



def test_no_status_frame_follows_a_control_frame_before_it_is_on_the_wire():
    """The serial link replaces a status frame still queued in the kernel by the next one, never
    a kept frame (uart/base.py): control frames go out kept, each alone in its write, and the
    core holds its next status frame for their wire time.  A REJOIN replaced by the status frame
    behind it ended as "peer moved" on the lab's cable."""
    sim = cold_start()
    lose_state_while_down(sim)
    sent2 = record(sim.box("node2"))
    sim.power_on("node1", forget=True)
    sent1 = record(sim.box("node1"))
    assert sim.run_until(lambda: rejoined(sim), 5000) is not None
    wire_ms = 32 * 10000 // 19200 + 1
    kinds = set()
    for sent in (sent1, sent2):          # each box's frames in the order it wrote them
        for _, o in sent:
            in_write = {frame_type(w) for w in wires(o.data)}
            assert len(in_write) == 1 and o.keep == (in_write != {TYPE_STATUS}), o
        frames = [(t, frame_type(w)) for t, o in sent for w in wires(o.data)]
        for k in range(len(frames) - 1):
            at, kind = frames[k]
            if kind != 0:
                kinds.add(kind)
                assert frames[k + 1][0] - at >= wire_ms, (frames[k:k + 2], wire_ms)
    assert kinds == set([TYPE_CHALLENGE, TYPE_REJOIN])


def test_control_encode_rejects_out_of_range_fields():
    from tests.core.util import raises
    auth = Auth(1, {1: ("hmac-sha256", b"k")})
    for name, high in (("src", 3), ("target", 3), ("gen", 0xFFFFFFFF), ("seq", 0xFFFFFFFF),
                       ("floor_gen", 0xFFFFFFFF), ("floor_seq", 0xFFFFFFFF), ("nonce", 0xFFFFFFFF),
                       ("type", 2)):
        for bad in (-1, high + 1, True, None):
            c = Control()
            setattr(c, name, bad)
            assert raises(ValueError, encode, c, auth), (name, bad)
        c = Control()
        setattr(c, name, high)
        encode(c, auth)
    c = Control()
    c.type = 0
    assert raises(ValueError, encode, c, auth)


def test_the_box_without_state_may_be_the_one_holding_the_groups_when_it_is_challenged():
    """node2 (holding a floor for node1) is off while node1, wiped, comes back and takes its
    group; node2 then returns with its persisted floor: node1 jumps while running the group,
    and nothing moves twice."""
    sim = cold_start()
    lose_state_while_down(sim, restarts=1)
    sim.power_off("node2")
    sim.power_on("node1", forget=True)
    assert sim.run_until(lambda: sim.settled() and sim.holders() == ["node1"], 5000) is not None
    n1 = sim.box("node1")
    assert n1.node.gen == 1
    sim.power_on("node2")                                        # floor 2 for node1, from its state dir
    assert sim.box("node2").node.guard.floor(0) == 2
    assert sim.run_until(lambda: rejoined(sim), 3000) is not None
    assert n1.node.gen == 2 + rejoin.REJOIN_JUMP
    sim.run(3000)
    assert sim.holders() == ["node1"] and sim.doubles_ms == 0 and sim.settled()
    assert n1.node.counters["generation_jumps"] == 1
