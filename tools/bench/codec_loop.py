"""The codec loop, for CPython and MicroPython alike: frames per second through hanode.core.

Theory of operation
-------------------
Run as a script (``python3 tools/bench/codec_loop.py SECONDS`` or, from the
repository root, ``MICROPYPATH=.:.frozen micropython tools/bench/codec_loop.py
SECONDS``) it times, for an 8-byte HMAC-SHA256 tag and for crc: ``encode``
(pack, tag, COBS, delimiter), ``decode_one`` (COBS, parse, verify), the round
trip of both, and the receive path a real link uses - ``Decoder.feed`` of a
freshly encoded frame with a new sequence number, judged by the ReplayGuard
as the node does.
Each is run in batches until SECONDS have passed and reported as operations
per second, printed as one JSON line.  Only what both interpreters share is
used here (no typing, perf_counter only when ticks_us is missing).
"""
import json
import sys
import time

try:
    import hanode  # noqa: F401
except ImportError:   # started from elsewhere: the repository is three levels up
    sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../..")

from hanode.core.auth import Auth
from hanode.core.frame import NEW, Decoder, Frame, ReplayGuard, encode, decode_one
from hanode.lab.presets import KEY as LAB_KEY

if hasattr(time, "ticks_us"):
    def _now_us():
        return time.ticks_us()

    def _diff(a, b):
        return time.ticks_diff(a, b)
else:
    def _now_us():
        return int(time.perf_counter() * 1000000)

    def _diff(a, b):
        return a - b

KEY = LAB_KEY.encode()


def rate(fn, seconds):
    n = 0
    batch = 50
    t0 = _now_us()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = _diff(_now_us(), t0)
        if elapsed >= seconds * 1000000:
            return n * 1000000.0 / elapsed


def measure(method, seconds):
    auth = Auth(1, {1: (method, KEY)})
    frame = Frame(src=0, gen=7, seq=1000, state=1, flags=0, ack_gen=7, ack_seq=99, held=1, want=1)
    wire = encode(frame, auth)
    payload = wire[:-1]
    sender = Frame(src=1, gen=7, seq=1, state=1, held=1, want=1)
    decoder = Decoder(auth)
    guard = ReplayGuard()

    def enc():
        encode(frame, auth)

    def dec():
        f, verdict = decode_one(payload, auth)
        if f is None:
            raise ValueError(verdict)

    def both():
        f, verdict = decode_one(encode(frame, auth)[:-1], auth)
        if f is None:
            raise ValueError(verdict)

    def feed():
        sender.seq += 1
        got = decoder.feed(encode(sender, auth))
        if len(got) != 1 or guard.check(got[0].src, got[0].gen, got[0].seq) != NEW:
            raise ValueError("frame not accepted")
        guard.commit(got[0].src, got[0].gen, got[0].seq)

    out = {}
    for name, fn in (("encode", enc), ("decode_verify", dec), ("roundtrip", both), ("feed_roundtrip", feed)):
        out[name] = round(rate(fn, seconds))
    out["wire_bytes"] = len(wire)
    return out


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    impl = sys.implementation
    result = {"interpreter": impl.name, "version": ".".join(str(x) for x in impl.version[:3]), "methods": {}}
    for method in ("hmac-sha256", "crc"):
        result["methods"][method] = measure(method, seconds)
    print(json.dumps(result))


main()
