"""frame: byte layout, COBS, encode range checks, Decoder drops and counters, ReplayGuard.

Plain test_* functions without pytest imports: this file also runs under
MicroPython.  Randomness comes from a small xorshift PRNG (MicroPython's
`random` lacks randbytes/shuffle) with fixed seeds, so failures reproduce.
"""

import struct
from binascii import unhexlify

from hanode.core.auth import Auth
from hanode.core.compat import crc32
from hanode.core.frame import (BUSY, MAX_ENCODED, REASONS, STALE, STANDBY, STATE_ACTIVE,
                               STATE_RELEASING, STATE_SHUTDONE, STATE_UP, TAKEOVER,
                               Decoder, Frame, ReplayGuard, cobs_decode, cobs_encode,
                               decode_one, encode, frame_size, pack_body, pack_control,
                               Control, TYPE_CHALLENGE, VERSION, VERSION_LAN)
from tests.core.util import raises as _raises


class _Rand:
    """xorshift32: deterministic and identical on both interpreters."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFF or 1

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def below(self, n):
        return self.next() % n

    def bytes(self, n):
        return bytes([self.next() & 0xFF for _ in range(n)])


def _mac():
    return Auth(1, {1: ("hmac-sha256", b"test-key")})


def _crc():
    return Auth(3, {3: ("crc", None)})


def _frame(**kw):
    values = dict(src=0, gen=7, seq=42, state=STATE_ACTIVE, flags=0, ack_gen=3, ack_seq=17,
                  held=0b01, want=0b01)
    values.update(kw)
    return Frame(**values)


def _wire(raw):
    """COBS + delimiter around hand-built bytes (to craft bad frames)."""
    return cobs_encode(raw) + b"\x00"


# ---------------------------------------------------------------- layout


def test_body_layout_matches_protocol_table():
    f = Frame(src=1, gen=0x01020304, seq=0xA0B0C0D0, state=STATE_RELEASING,
              flags=STANDBY | STALE, ack_gen=0xAB, ack_seq=0xCD, held=0x81, want=0x42)
    body = pack_body(f, 5)
    assert len(body) == 14
    assert body[0] == 0b01000101          # version 1, type 0, key index 5
    # who: src in bits 1-0, state in 3-2, standby bit 4, stale bit 7
    assert body[1] == 0b10011001
    assert body[2:6] == b"\x01\x02\x03\x04"
    assert body[6:10] == b"\xa0\xb0\xc0\xd0"
    assert body[10:14] == b"\xab\xcd\x81\x42"
    assert f.who == body[1]
    for flag, bit in ((STANDBY, 4), (TAKEOVER, 5), (BUSY, 6), (STALE, 7)):
        assert pack_body(Frame(flags=flag), 0)[1] == 1 << bit


def test_wire_is_cobs_of_body_and_tag():
    auth = _mac()
    f = _frame()
    wire = encode(f, auth)
    assert wire[-1] == 0 and 0 not in wire[:-1]
    raw = cobs_decode(wire[:-1])
    body = pack_body(f, 1)
    assert raw == body + auth.tag(1, body)


def test_worked_example_in_protocol_md():
    f = Frame(src=0, gen=7, seq=42, state=STATE_ACTIVE, flags=0, ack_gen=3, ack_seq=17,
              held=1, want=1)
    mac = Auth(1, {1: ("hmac-sha256", b"SomeSecretKey")})
    assert pack_body(f, 1) == unhexlify("4104000000070000002a03110101")
    assert encode(f, mac) == unhexlify("034104010102070101" "0e2a03110101" "e49d07a78a6ea742" "00")
    crc = Auth(3, {3: ("crc", None)})
    assert encode(f, crc) == unhexlify("034304010102070101" "0a2a03110101" "a287fc69" "00")


def test_crc_tag_is_big_endian_crc32_of_body():
    auth = _crc()
    f = _frame()
    raw = cobs_decode(encode(f, auth)[:-1])
    assert raw[14:] == struct.pack(">I", crc32(raw[:14]))


def test_sizes_on_the_wire():
    f = _frame(gen=0xFFFFFFFF, seq=0xFFFFFFFF)
    for method in ("hmac-sha256", "sha1", "md5"):
        auth = Auth(2, {2: (method, b"k")})
        assert len(encode(f, auth)) == 24, method
        assert frame_size(auth) == 24
    assert len(encode(f, _crc())) == 20
    assert frame_size(_crc()) == 20
    # Zeros in the body do not change the size (COBS overhead is fixed here).
    assert len(encode(Frame(), _mac())) == 24
    mixed = Auth(1, {1: ("hmac-sha256", b"k"), 2: ("crc", None)})
    assert frame_size(mixed, 2) == 20


def test_flag_and_state_properties():
    f = Frame(flags=TAKEOVER | BUSY, state=STATE_SHUTDONE)
    assert f.takeover and f.busy and not f.standby and not f.stale
    assert f.state_name == "shutdone"
    assert Frame(state=STATE_UP).state_name == "up"
    assert "takeover,busy" in f.describe()


# ---------------------------------------------------------------- round trip and range checks


def test_round_trip_extremes_every_method():
    auths = (_mac(), _crc(), Auth(0, {0: ("md5", b"m")}), Auth(15, {15: ("sha1", b"s")}))
    frames = (
        Frame(),
        Frame(src=3, gen=0xFFFFFFFF, seq=0xFFFFFFFF, state=3, flags=0x0F, ack_gen=255,
              ack_seq=255, held=255, want=255),
        _frame(flags=STANDBY, held=0, want=0x80),
    )
    for auth in auths:
        for f in frames:
            got, reason = decode_one(encode(f, auth)[:-1], auth)
            assert reason == "ok", (auth, f, reason)
            assert got == f
            assert got.key_index == auth.send_index
            assert got.fields() == f.fields()


def test_encode_rejects_out_of_range_fields():
    auth = _mac()
    limits = (("src", 3), ("state", 3), ("flags", 15), ("type", 3), ("gen", 0xFFFFFFFF),
              ("seq", 0xFFFFFFFF), ("ack_gen", 255), ("ack_seq", 255), ("held", 255),
              ("want", 255))
    for name, high in limits:
        for bad in (-1, high + 1, True, None, 1.0, "1"):
            f = _frame()
            setattr(f, name, bad)
            assert _raises(ValueError, encode, f, auth), (name, bad)
        f = _frame()
        setattr(f, name, high)
        encode(f, auth)  # the maximum itself is fine


def test_frame_equality_and_repr():
    a = _frame()
    b = _frame()
    b.key_index = 4
    assert a == b and not (a != b)
    c = _frame(seq=43)
    assert a != c and not (a == c)
    assert a != "frame"
    again = eval(repr(b), {"Frame": Frame})
    assert again == b and again.key_index == 4
    assert _raises(TypeError, hash, a)


# ---------------------------------------------------------------- COBS


def test_cobs_reference_vectors():
    # The examples from the COBS paper / Wikipedia, as (data, encoded).
    cases = (
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
        (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
        (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
        (b"", b"\x01"),
    )
    for data, encoded in cases:
        assert cobs_encode(data) == encoded, data
        assert cobs_decode(encoded) == data, data


def test_cobs_round_trip_random():
    rnd = _Rand(1)
    for _ in range(300):
        n = rnd.below(600)
        data = bytes([(rnd.next() & 0xFF) if rnd.below(4) else 0 for _ in range(n)])
        enc = cobs_encode(data)
        assert 0 not in enc
        assert cobs_decode(enc) == data


def test_cobs_decode_rejects_invalid():
    assert cobs_decode(b"") is None
    assert cobs_decode(b"\x05\x11\x22") is None    # block runs past the end
    assert cobs_decode(b"\x02\x11\x00") is None    # a zero in a code position
    assert cobs_decode(b"\x03\x00\x11") is None    # a zero in a data position
    assert cobs_decode(memoryview(b"\x02\x11")) == b"\x11"


# ---------------------------------------------------------------- decoder


def _stream(auth, n, src=0, gen=7, first_seq=1):
    frames = [_frame(src=src, gen=gen, seq=first_seq + i, held=i & 0xFF) for i in range(n)]
    return frames, b"".join(encode(f, auth) for f in frames)


def test_decoder_any_split_point():
    auth = _mac()
    frames, data = _stream(auth, 3)
    for cut in range(len(data) + 1):
        dec = Decoder(auth)
        got = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert got == frames, cut
        assert dec.accepted == 3
        assert sum(dec.counters.values()) == 0


def test_decoder_byte_at_a_time_and_random_chunks():
    auth = _crc()
    frames, data = _stream(auth, 20)
    dec = Decoder(auth)
    got = []
    for i in range(len(data)):
        got += dec.feed(data[i:i + 1])
    assert got == frames
    rnd = _Rand(7)
    for _ in range(20):
        dec = Decoder(auth)
        got = []
        pos = 0
        while pos < len(data):
            step = 1 + rnd.below(60)
            got += dec.feed(data[pos:pos + step])
            pos += step
        assert got == frames


def test_decoder_accepts_bytearray_and_memoryview():
    auth = _mac()
    frames, data = _stream(auth, 2)
    assert Decoder(auth).feed(bytearray(data)) == frames
    assert Decoder(auth).feed(memoryview(data)) == frames
    assert Decoder(auth).feed(b"") == []


def test_counters_preset_to_zero():
    dec = Decoder(_mac())
    for reason in ("garbage", "length", "version", "type", "unknown_key", "bad_tag", "overflow"):
        assert dec.counters[reason] == 0
    assert sorted(dec.counters) == sorted(REASONS)
    assert dec.accepted == 0


def _only(dec, reason, count=1):
    for r in dec.counters:
        assert dec.counters[r] == (count if r == reason else 0), (r, dec.counters)


def test_garbage_empty_and_invalid_cobs():
    auth = _mac()
    dec = Decoder(auth)
    assert dec.feed(b"\x00") == []
    _only(dec, "garbage")
    dec.feed(b"\x05\x11\x00")          # block longer than the payload
    _only(dec, "garbage", 2)
    dec.feed(b"\x01\x00")              # valid COBS of nothing
    _only(dec, "garbage", 3)


def test_version_and_type_dropped():
    auth = _mac()
    body = bytearray(pack_body(_frame(), 1))
    for version in (0, 3):
        body[0] = (version << 6) | 1
        dec = Decoder(auth)
        assert dec.feed(_wire(bytes(body) + auth.tag(1, bytes(body)))) == []
        _only(dec, "version")
    control = bytearray(pack_control(Control(type=TYPE_CHALLENGE), 1))
    control[0] |= 0xC0     # version 2 is for status frames only: a control frame of it is dropped
    control[0] &= 0xBF
    dec = Decoder(auth)
    assert dec.feed(_wire(bytes(control) + auth.tag(1, bytes(control)))) == []
    _only(dec, "version")
    dec = Decoder(auth)
    # type 3 is a notice now (22 body bytes): a status-sized body with it is a wrong length
    assert dec.feed(encode(_frame(type=3), auth)) == []
    _only(dec, "length")


def test_unknown_key_dropped():
    sender = Auth(2, {2: ("hmac-sha256", b"k")})
    receiver = Auth(1, {1: ("hmac-sha256", b"k")})
    dec = Decoder(receiver)
    assert dec.feed(encode(_frame(), sender)) == []
    _only(dec, "unknown_key")


def test_wrong_length_dropped():
    for auth in (_mac(), _crc()):
        body = pack_body(_frame(), auth.send_index)
        tag = auth.tag(auth.send_index, body)
        for raw in (body + tag + b"x", body + tag[:-1], body[:5], body):
            dec = Decoder(auth)
            assert dec.feed(_wire(raw)) == []
            _only(dec, "length")


def test_mixed_tag_lengths_from_one_receiver():
    # A receiver with a crc key and a MAC key decodes both frame sizes.
    receiver = Auth(1, {1: ("hmac-sha256", b"k"), 3: ("crc", None)})
    mac_sender = Auth(1, {1: ("hmac-sha256", b"k")})
    dec = Decoder(receiver)
    got = dec.feed(encode(_frame(seq=1), _crc()) + encode(_frame(seq=2), mac_sender))
    assert [(f.seq, f.key_index) for f in got] == [(1, 3), (2, 1)]


def test_every_single_bit_flip_is_rejected():
    # Integrity over the whole frame, including the COBS code bytes: no flip
    # of one bit anywhere in the encoded frame gets a frame accepted.
    for auth in (_mac(), _crc()):
        wire = encode(_frame(), auth)
        for i in range(len(wire) - 1):
            for bit in range(8):
                bad = bytearray(wire)
                bad[i] ^= 1 << bit
                dec = Decoder(auth)
                assert dec.feed(bytes(bad)) == [], (auth, i, bit)
                assert dec.accepted == 0
                assert sum(dec.counters.values()) >= 1


def test_bad_tag_from_wrong_key():
    a = Auth(1, {1: ("hmac-sha256", b"right")})
    b = Auth(1, {1: ("hmac-sha256", b"wrong")})
    dec = Decoder(a)
    assert dec.feed(encode(_frame(), b)) == []
    _only(dec, "bad_tag")


def test_decoder_only_decodes_the_node_judges():
    # Own frames, duplicates and old frames are all authentic: the decoder hands them on,
    # in order, and the node's one ReplayGuard judges them (tests/core/test_node.py).
    auth = _mac()
    dec = Decoder(auth)
    frames = [_frame(src=0, gen=5, seq=100), _frame(src=0, gen=5, seq=100),
              _frame(src=0, gen=5, seq=99), _frame(src=1, gen=2, seq=1), _frame(src=0, gen=4, seq=7)]
    assert dec.feed(b"".join(encode(f, auth) for f in frames)) == frames
    assert dec.accepted == 5 and sum(dec.counters.values()) == 0


def test_replay_guard_judges_what_the_decoder_delivers():
    auth = _mac()
    dec, guard = Decoder(auth), ReplayGuard()

    def judge(gen, seq):
        f, = dec.feed(encode(_frame(gen=gen, seq=seq), auth))
        verdict = guard.check(f.src, f.gen, f.seq)
        guard.commit(f.src, f.gen, f.seq)
        return verdict
    assert judge(5, 100) == "new"
    assert judge(5, 100) == "duplicate"
    assert judge(5, 99) == "replay"
    assert judge(4, 1000) == "replay"
    assert judge(5, 101) == "new"
    assert judge(5, 500) == "new"          # gaps are fine (lost frames)
    assert judge(6, 1) == "new"            # peer restarted: seq starts again
    assert judge(5, 501) == "replay"
    assert guard.last(0) == (6, 1)


def test_replay_guard_direct():
    g = ReplayGuard()
    assert g.check(0, 3, 5) == "new" and g.last(0) is None
    g.commit(0, 3, 5)
    assert g.last(0) == (3, 5)
    assert g.check(0, 3, 5) == "duplicate"
    assert g.check(0, 3, 4) == "replay"
    assert g.check(0, 2, 0xFFFFFFFF) == "replay"
    assert g.check(0, 3, 6) == "new"
    assert g.check(0, 4, 0) == "new"
    assert g.check(1, 0, 0) == "new"   # per source
    g.commit(0, 2, 9)                  # commit never moves backwards
    assert g.last(0) == (3, 5)


def test_replay_guard_floor_after_restart():
    # We restarted and restored the peer's generation 8 from disk: frames of
    # generation 7 recorded before are replays, 8 and above are accepted.
    guard = ReplayGuard()
    guard.set_floor(0, 8)
    assert guard.floor(0) == 8 and guard.floor(1) is None
    assert guard.check(0, 7, 99999) == "replay"
    assert guard.check(0, 8, 3) == "new"
    guard.commit(0, 8, 3)
    guard.commit(0, 9, 1)
    assert guard.check(0, 8, 4) == "replay"


def test_overflow_discards_and_resyncs():
    auth = _mac()
    frames, data = _stream(auth, 2)
    dec = Decoder(auth)
    noise = bytes([0x55] * 1000)
    got = dec.feed(noise)
    assert dec.counters["overflow"] == 1 and dec.buffered <= MAX_ENCODED
    got += dec.feed(noise)                 # still the same overrun: counted once
    assert dec.counters["overflow"] == 1 and dec.buffered <= MAX_ENCODED   # keeps only the tail
    got += dec.feed(b"\x00" + data)
    assert got == frames
    assert dec.counters["overflow"] == 1
    assert sum(dec.counters.values()) == 1


def test_overflow_in_one_chunk_with_delimiter():
    auth = _mac()
    frames, data = _stream(auth, 1)
    dec = Decoder(auth)
    assert dec.feed(bytes([1] * (MAX_ENCODED + 1)) + b"\x00" + data) == frames
    _only(dec, "overflow")
    # Exactly MAX_ENCODED bytes is not an overflow (it is decoded, and dropped).
    dec = Decoder(auth)
    dec.feed(bytes([0x40] * MAX_ENCODED) + b"\x00")
    assert dec.counters["overflow"] == 0 and sum(dec.counters.values()) == 1


def test_buffer_stays_bounded_under_noise():
    auth = _mac()
    dec = Decoder(auth)
    rnd = _Rand(3)
    for _ in range(300):
        chunk = bytes([(rnd.next() & 0xFF) | 1 for _ in range(rnd.below(50))])
        dec.feed(chunk)
        assert dec.buffered <= MAX_ENCODED


def test_mid_frame_join_recovers_from_next_delimiter():
    auth = _mac()
    frames, data = _stream(auth, 3)
    for start in range(1, 24):
        dec = Decoder(auth)
        assert dec.feed(data[start:]) == frames[1:], start
        assert sum(dec.counters.values()) == 1


def test_random_input_never_raises_and_conserves_delimiters():
    # Every delimiter ends exactly one candidate: it is either accepted or
    # counted once (an overrun is counted when it starts, so its delimiter is not).
    auth = Auth(1, {1: ("hmac-sha256", b"k"), 2: ("crc", None)})
    rnd = _Rand(11)
    for trial in range(300):
        dec = Decoder(auth)
        data = bytearray()
        for _ in range(rnd.below(6)):
            kind = rnd.below(4)
            if kind == 0:
                data += rnd.bytes(rnd.below(40))
            elif kind == 1:
                data += encode(_frame(seq=1 + rnd.below(5)), auth)
            elif kind == 2:
                w = bytearray(encode(_frame(seq=1 + rnd.below(5)), auth))
                w[rnd.below(len(w))] = rnd.next() & 0xFF
                data += w
            else:
                data += bytes([1 + rnd.below(255) for _ in range(rnd.below(80))])
        data += b"\x00"
        pos = 0
        while pos < len(data):
            step = 1 + rnd.below(30)
            dec.feed(bytes(data[pos:pos + step]))
            pos += step
        # every delimiter ends one candidate: accepted (perhaps recovered from behind junk,
        # then .resynced counts it too) or counted once; an overrun is counted when it starts,
        # and its delimiter adds a count only if a frame is recovered from its tail
        zeros = len([b for b in data if b == 0])
        overrun_tails = dec.counters["overflow"]
        assert zeros - overrun_tails <= dec.accepted + sum(dec.counters.values()) - dec.counters["overflow"] <= zeros, \
            (trial, dec.counters)
        assert dec.buffered == 0


def test_version_2_carries_lan_health_in_ack_gen_and_version_1_decoders_drop_it():
    auth = _mac()
    frame = _frame(version=VERSION_LAN, lan=5, ack_gen=0x1F)
    body = pack_body(frame, 1)
    assert body[0] >> 6 == VERSION_LAN and body[10] == (5 << 5) | 0x1F
    (got,) = Decoder(auth).feed(encode(frame, auth))
    assert got == frame and got.lan == 5 and got.ack_gen == 0x1F and got.ack_gen_mask() == 0x1F
    assert len(encode(frame, auth)) == 24          # the frame does not grow
    assert _raises(ValueError, pack_body, _frame(version=VERSION_LAN, ack_gen=0x20), 1)  # 5 bits of gen
    assert _raises(ValueError, pack_body, _frame(version=VERSION_LAN, lan=8), 1)
    assert _raises(ValueError, pack_body, _frame(lan=1), 1)   # version 1 has no room for LAN health
    # what a decoder of the previous release does with it: its only accepted version was 1
    assert body[0] >> 6 != VERSION


def test_pack_body_takes_a_short_check_that_refuses_what_the_detailed_one_refuses():
    """pack_body's one test for a version 2 status frame and the field-by-field checks agree:
    the same bytes for every value at and inside the limits, ValueError for every value beyond
    them, a bool, a float or None, in every field and the key index."""
    from hanode.core.frame import _pack_body_checked
    limits = {"src": 3, "state": 3, "flags": 0x0F, "gen": 0xFFFFFFFF, "seq": 0xFFFFFFFF,
              "ack_gen": 0x1F, "ack_seq": 0xFF, "held": 0xFF, "want": 0xFF, "lan": 7}
    base = dict(src=1, gen=7, seq=42, state=STATE_ACTIVE, flags=STANDBY, ack_gen=3, ack_seq=17,
                held=1, want=1, lan=2, version=VERSION_LAN)

    def outcome(pack, frame, index):
        try:
            return ("packed", pack(frame, index))
        except ValueError:
            return ("refused", None)   # (never bytes against a str: MicroPython warns of it)
    cases = []
    for name in limits:
        high = limits[name]
        for value in (0, 1, high, high + 1, -1, True, False, 1.0, None):
            cases.append((dict(base, **{name: value}), 1))
    for index in (0, 15, 16, -1, True, None):
        cases.append((base, index))
    cases.append((dict(base, version=VERSION), 1))   # version 1: the detailed path
    cases.append((dict(base, version=VERSION, lan=0), 1))
    cases.append((dict(base, version=3), 1))
    refused = 0
    for values, index in cases:
        frame = Frame(**values)
        fast, checked = outcome(pack_body, frame, index), outcome(_pack_body_checked, frame, index)
        assert fast == checked, (values, index, fast, checked)
        refused += fast[0] == "refused"
    assert 60 < refused < len(cases) - 30, refused
