#!/usr/bin/env python3
"""Fuzz the frame Decoder (and the Node behind it) with arbitrary line bytes.

Theory of operation
-------------------
The input's first byte picks the receiver's keys (crc, whose tags a fuzzer can
learn from the seeds, or hmac-sha256) and the next few bytes pick chunk
boundaries; the rest is what the serial line delivered.  Invariants checked:

- ``Decoder.feed`` never raises, and its buffer never holds more than
  ``MAX_ENCODED`` bytes;
- chunking does not matter: fed at once or in pieces, the same frames come
  out and every counter is the same;
- an accepted frame is in range and round-trips through ``encode``;
- ``Node.receive``/``tick``/``status`` never raise on the same bytes.

Run: ``python3 tests/fuzz/fuzz_decoder.py --seeds /tmp/c /tmp/c -max_total_time=600``.
"""
from _common import instrumented, main

with instrumented():
    from hanode.core.auth import Auth
    from hanode.core.config import parse
    from hanode.core.frame import MAX_ENCODED, Decoder, Frame, encode
    from hanode.core.node import Node

HMAC_KEY = b"0123456789abcdef0123456789abcdef"
KEYS = ({3: ("crc", None)},
        {1: ("hmac-sha256", HMAC_KEY), 2: ("md5", HMAC_KEY), 3: ("crc", None)})
AUTHS = (Auth(3, KEYS[0]), Auth(1, KEYS[1]))
CONFIGS = {}


def _config(kind):
    if kind not in CONFIGS:
        keys = "auth 3\n3 crc\n" if kind == 0 else "auth 1\n1 hmac-sha256 %s\n3 crc\n" % HMAC_KEY.decode()
        CONFIGS[kind] = parse("keepalive 100ms\ndeadtime 500ms\nwarntime 300ms\ninitdead 2\nbaud 19200\n"
                              "serial /dev/ttyS0\nauto_failback on\nnode node1\nnode node2\n",
                              keys, "node1 192.0.2.100 httpd\nnode2 192.0.2.101 other\n", me="node2")
    return CONFIGS[kind]


def _frames(data, auth, cuts):
    dec = Decoder(auth)
    out = []
    pos = 0
    for cut in cuts + [len(data)]:
        cut = max(pos, min(cut, len(data)))
        out += dec.feed(data[pos:cut])
        if dec.buffered > MAX_ENCODED:
            raise AssertionError("decoder holds %d bytes (> %d)" % (dec.buffered, MAX_ENCODED))
        pos = cut
    return out, dec


def TestOneInput(data):
    if len(data) < 2:
        return
    kind = data[0] & 1
    ncuts = data[1] % 8
    head = data[2:2 + ncuts]
    line = bytes(data[2 + ncuts:])
    auth = AUTHS[kind]
    cuts = sorted(b * len(line) // 256 for b in head)
    whole, d1 = _frames(line, auth, [])
    pieces, d2 = _frames(line, auth, cuts)
    if [(f.fields(), f.key_index) for f in whole] != [(f.fields(), f.key_index) for f in pieces]:
        raise AssertionError("chunking changed the frames: %r vs %r" % (whole, pieces))
    if d1.counters != d2.counters or d1.accepted != d2.accepted:
        raise AssertionError("chunking changed the counters: %r vs %r" % (d1.counters, d2.counters))
    for f in whole:
        sender = Auth(f.key_index, KEYS[kind])
        back = Decoder(sender).feed(encode(f, sender))
        if len(back) != 1 or back[0] != f or back[0].key_index != f.key_index:
            raise AssertionError("accepted frame does not round-trip: %r" % f)
    # the same bytes through the whole node, with time moving on between pieces
    node = Node(_config(kind), me="node2", generation=5)
    now = 1000
    node.start(now)
    pos = 0
    for cut in cuts + [len(line)]:
        cut = max(pos, min(cut, len(line)))
        now += 7
        node.receive(line[pos:cut], now)
        node.tick(now)
        pos = cut
    node.status()


def seeds():
    out = []
    for kind, auth in enumerate(AUTHS):
        frames = [Frame(src=0, gen=7, seq=s, state=1, ack_gen=5, ack_seq=s, held=1, want=1) for s in (1, 2, 3)]
        wire = b"".join(encode(f, auth) for f in frames)
        out.append(bytes([kind, 0]) + wire)
        out.append(bytes([kind, 3, 40, 128, 200]) + wire)
        out.append(bytes([kind, 1, 100]) + b"\x55" * 40 + b"\x00" + wire[5:])
    return out


if __name__ == "__main__":
    main(TestOneInput, seeds)
