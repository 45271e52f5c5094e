"""Decode hanode frames from a null-modem byte log or a live serial port.

Theory of operation
-------------------
The input is a stream of timed chunks per direction: the JSON lines that
``hanode.nullmodem`` logs (``{"t", "dir", "data"}``; events such as
``cut``/``reconnect`` are shown in place), or what arrives on ``--port``.
Each direction is split on the 0x00 delimiter exactly as the receiving node
does, and every delimited payload is decoded with ``hanode.core.frame``'s
``decode_one``: a frame's time is the time of the chunk that carried its
delimiter (the moment the receiver could act on it), its size on the wire is
the payload plus the delimiter.

With ``--config-dir`` the authkeys there verify every tag, and one real
``Decoder`` per direction is fed the same chunks: its ``counters`` are the
"drops by reason" in the summary, exactly what a node would have counted.
Without keys only the framing is checked: MAC-tagged frames print as
"unverified" (a crc tag needs no key, so it is still checked), and drops are
counted here with the same rules.

The summary gives, per direction: frames, bytes on the wire, bytes per frame,
line utilisation (wire bytes / (duration x baud/10), baud from the log's start
record or ``--baud``), sequence gaps (frames lost on the way), and drops.
"""
import argparse
import json
import sys
import time
from typing import Any, Dict, IO, Iterator, List, Optional, Tuple

from hanode.core import frame as wire
from hanode.core.auth import Auth
from hanode.core.frame import BODY_LENGTH, MAX_ENCODED, REASONS, Decoder, ReplayGuard, cobs_decode, decode_one

CRC_TAG = 4
MAC_TAG = 8


class _KeylessAuth:
    """An Auth stand-in for sniffing without authkeys: frame shape only.

    The tag length is read off each payload (4: crc, 8: a MAC); a crc tag is
    checked for real since it needs no key, a MAC tag cannot be and passes as
    "unverified".
    """

    def __init__(self) -> None:
        self.length: Optional[int] = None

    def tag_length(self, index: int) -> Optional[int]:
        return self.length

    def verify(self, index: int, body: bytes, tag: bytes) -> bool:
        if len(tag) == CRC_TAG:
            return Auth(index, {index: ("crc", None)}).verify(index, body, tag)
        return True


class Record:
    """One delimited payload: a frame (accepted or not) or garbage."""

    def __init__(self, t: float, direction: str, size: int, verdict: str,
                 frame: Optional[wire.Frame]) -> None:
        self.t = t
        self.direction = direction
        self.size = size
        self.verdict = verdict
        self.frame = frame


class Link:
    """One direction: splits on 0x00 like the node, decodes, keeps statistics."""

    def __init__(self, name: str, auth: Optional[Auth]) -> None:
        self.name = name
        self.auth = auth
        self.keyless = _KeylessAuth() if auth is None else None
        self.decoder = Decoder(auth) if auth is not None else None
        self.guard = ReplayGuard()
        self.buf = bytearray()
        self.discarding = False
        self.counters = dict.fromkeys(REASONS + (wire.DUPLICATE, wire.REPLAY), 0)
        self.frames = 0
        self.frame_bytes = 0
        self.wire_bytes = 0
        self.gaps = 0
        self.first_t: Optional[float] = None
        self.last_t: Optional[float] = None

    def feed(self, t: float, data: bytes) -> List[Record]:
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        self.wire_bytes += len(data)
        if self.decoder is not None:
            self.decoder.feed(data)
        out: List[Record] = []
        pos = 0
        while pos < len(data):
            z = data.find(b"\x00", pos)
            end = len(data) if z < 0 else z
            if self.discarding:
                pass
            elif len(self.buf) + (end - pos) > MAX_ENCODED:
                self.counters["overflow"] += 1
                self.buf = bytearray()
                self.discarding = True
            else:
                self.buf += data[pos:end]
                if z >= 0:
                    out.append(self._payload(t, bytes(self.buf)))
                    self.buf = bytearray()
            if z < 0:
                break
            self.discarding = False
            pos = z + 1
        return out

    def _payload(self, t: float, payload: bytes) -> Record:
        size = len(payload) + 1
        if self.keyless is not None:
            raw = cobs_decode(payload) if payload else None
            self.keyless.length = (len(raw) - BODY_LENGTH) if raw and len(raw) in (
                BODY_LENGTH + CRC_TAG, BODY_LENGTH + MAC_TAG) else None
            frame, reason = decode_one(payload, self.keyless)
            if reason == "unknown_key":  # no key can be unknown here: the length fits no tag
                reason = "length"
            if frame is not None and self.keyless.length == MAC_TAG:
                reason = "unverified"
        else:
            frame, reason = decode_one(payload, self.auth)
        if frame is None:
            self.counters[reason] += 1
            return Record(t, self.name, size, reason, None)
        verdict = self.guard.check(frame.src, frame.gen, frame.seq)
        if verdict == wire.NEW:
            last = self.guard.last(frame.src)
            if last is not None and last[0] == frame.gen and frame.seq > last[1] + 1:
                self.gaps += frame.seq - last[1] - 1
            self.guard.commit(frame.src, frame.gen, frame.seq)
            self.frames += 1
            self.frame_bytes += size
            return Record(t, self.name, size, "ok" if reason == "ok" else reason, frame)
        self.counters[verdict] += 1
        return Record(t, self.name, size, verdict, frame)

    def drops(self) -> Dict[str, int]:
        # the decoder counts what it could not decode; duplicates and replays are judged here
        counters = dict(self.counters)
        if self.decoder is not None:
            counters.update(self.decoder.counters)
        return dict((k, v) for k, v in counters.items() if v)


# -- input ----------------------------------------------------------------------

def read_log(f: IO[str], source: str) -> Iterator[Dict[str, Any]]:
    for lineno, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
            float(rec["t"])
            if "dir" in rec:
                bytes.fromhex(rec["data"])
            elif "event" not in rec:
                raise KeyError("dir or event")
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit("sniff: %s:%d: not a nullmodem log line (%s)" % (source, lineno, e))
        yield rec


def read_port(port: str, baud: int, duration: Optional[float]) -> Iterator[Dict[str, Any]]:
    from hanode.uart import Serial, SerialException
    import select
    try:
        ser = Serial(port, baudrate=baud)
    except (SerialException, ValueError) as e:
        raise SystemExit("sniff: %s" % e)
    end = None if duration is None else time.monotonic() + duration
    yield {"t": time.time(), "event": "start", "baud": baud, "port": port}
    try:
        while end is None or time.monotonic() < end:
            left = 0.5 if end is None else max(0.0, min(0.5, end - time.monotonic()))
            if not select.select([ser.fileno()], [], [], left)[0]:
                continue
            data = ser.read(4096)
            if data:
                yield {"t": time.time(), "dir": port, "data": data.hex()}
    except KeyboardInterrupt:
        pass
    finally:
        ser.close()


def load_auth(config_dir: str) -> Tuple[Auth, List[str]]:
    """Auth and the sorted node names from a Heartbeat config directory."""
    import os
    from hanode.core.config import check
    texts = []
    paths = tuple(os.path.join(config_dir, n) for n in ("ha.cf", "authkeys", "haresources"))
    for p in paths:
        try:
            with open(p, "rb") as f:
                texts.append(f.read().decode("utf-8", "replace"))
        except OSError as e:
            if p.endswith("authkeys"):
                raise SystemExit("sniff: cannot read %s: %s" % (p, e.strerror))
            texts.append(None)  # only authkeys is needed; node names are a bonus
    # me=None: the sniffer is not one of the nodes.
    cfg, problems = check(texts[0], texts[1], texts[2], me=None, paths=paths)
    if cfg is None or not cfg.auth_keys:
        errors = [str(p) for p in problems if p.level == "error"] or ["%s: no keys" % paths[1]]
        raise SystemExit("sniff: cannot use %s:\n  %s" % (config_dir, "\n  ".join(errors)))
    return Auth.from_config(cfg), sorted(cfg.nodes)


# -- output ---------------------------------------------------------------------

def frame_dict(rec: Record, t0: float, nodes: List[str]) -> Dict[str, Any]:
    d: Dict[str, Any] = {"t": rec.t, "rel": round(rec.t - t0, 6), "dir": rec.direction,
                         "size": rec.size, "verdict": rec.verdict}
    f = rec.frame
    if isinstance(f, wire.Control):   # a rejoin's challenge or answer (docs/protocol.md, "Rejoin")
        d.update(src=f.src, gen=f.gen, seq=f.seq, key=f.key_index, target=f.target, nonce=f.nonce,
                 kind="challenge" if f.type == wire.TYPE_CHALLENGE else "rejoin",
                 floor=[f.floor_gen, f.floor_seq])
        if f.src < len(nodes):
            d["node"] = nodes[f.src]
    elif f is not None:
        d.update(src=f.src, gen=f.gen, seq=f.seq, state=f.state_name,
                 flags=[name for bit, name in wire.FLAG_NAMES if f.flags & bit],
                 held=f.held, want=f.want, ack_gen=f.ack_gen, ack_seq=f.ack_seq, key=f.key_index)
        if f.src < len(nodes):
            d["node"] = nodes[f.src]
    return d


def frame_line(d: Dict[str, Any]) -> str:
    head = "%11.6f  %-4s %3dB  " % (d["rel"], d["dir"], d["size"])
    if "src" not in d:
        return head + "-- %s" % d["verdict"]
    who = "%s(%d)" % (d["node"], d["src"]) if "node" in d else "src=%d" % d["src"]
    if "kind" in d:
        return head + "%-10s gen=%-5d seq=%-6d %-9s to=%d floor=%d/%d nonce=%08x  %s" % (
            who, d["gen"], d["seq"], d["kind"], d["target"], d["floor"][0], d["floor"][1], d["nonce"],
            d["verdict"])
    state = d["state"] + ("," + ",".join(d["flags"]) if d["flags"] else "")
    return head + "%-10s gen=%-5d seq=%-6d %-16s held=0x%02x want=0x%02x ack=%d/%d  %s" % (
        who, d["gen"], d["seq"], state, d["held"], d["want"], d["ack_gen"], d["ack_seq"], d["verdict"])


def summary(links: Dict[str, Link], baud: int, span: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {"baud": baud, "seconds": round(span, 6), "directions": {}}
    rate = baud / 10.0
    for name, link in links.items():
        out["directions"][name] = {
            "frames": link.frames,
            "wire_bytes": link.wire_bytes,
            "bytes_per_frame": round(link.frame_bytes / link.frames, 2) if link.frames else None,
            "utilisation": round(link.wire_bytes / (span * rate), 4) if span > 0 else None,
            "seq_gaps": link.gaps,
            "drops": link.drops(),
        }
    return out


def summary_text(s: Dict[str, Any]) -> str:
    lines = ["summary: %.3f s at %d baud" % (s["seconds"], s["baud"])]
    for name, d in s["directions"].items():
        util = "-" if d["utilisation"] is None else "%.1f%%" % (100 * d["utilisation"])
        bpf = "-" if d["bytes_per_frame"] is None else "%g" % d["bytes_per_frame"]
        drops = ", ".join("%s %d" % kv for kv in sorted(d["drops"].items())) or "none"
        lines.append("  %-4s %d frames, %d bytes on the wire, %s bytes/frame, line %s, seq gaps %d, drops: %s"
                     % (name, d["frames"], d["wire_bytes"], bpf, util, d["seq_gaps"], drops))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.sniff",
        description="Decode hanode status frames from a nullmodem byte log (JSON lines) or a live serial port: "
                    "per frame its time, direction, size on the wire, sender, generation, sequence, state and "
                    "flags, held/want bitmaps and acknowledgement; then frames per direction, bytes per "
                    "frame, line utilisation and drops by reason.")
    p.add_argument("log", nargs="?", help="nullmodem log file (--log of tools.nullmodem), '-' for stdin")
    p.add_argument("--port", help="read a live serial port instead (e.g. /dev/ttyS1)")
    p.add_argument("--duration", type=float, help="with --port: stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--baud", type=int, help="line speed for utilisation (default: from the log, else 19200)")
    p.add_argument("--config-dir", help="Heartbeat config dir whose authkeys verify the tags "
                                        "(default: framing only, MAC tags shown as 'unverified')")
    p.add_argument("--json", action="store_true", help="one JSON object per frame/event, then a summary object")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.log is None) == (args.port is None):
        build_parser().error("give a log file or --port (one of them)")
    auth, nodes = (None, [])
    if args.config_dir:
        auth, nodes = load_auth(args.config_dir)
    if args.port:
        records: Iterator[Dict[str, Any]] = read_port(args.port, args.baud or 19200, args.duration)
    elif args.log == "-":
        records = read_log(sys.stdin, "<stdin>")
    else:
        try:
            f = open(args.log, encoding="ascii", errors="replace")
        except OSError as e:
            raise SystemExit("sniff: cannot open %s: %s" % (args.log, e.strerror))
        records = read_log(f, args.log)
    baud = args.baud
    links: Dict[str, Link] = {}
    t0: Optional[float] = None
    t_end = 0.0
    out = sys.stdout
    for rec in records:
        t = float(rec["t"])
        if t0 is None:
            t0 = t
        t_end = max(t_end, t)
        if "event" in rec:
            if rec["event"] == "start" and baud is None and isinstance(rec.get("baud"), int):
                baud = rec["baud"]
            if args.json:
                out.write(json.dumps(dict(rec, rel=round(t - t0, 6))) + "\n")
            else:
                out.write("%11.6f  --- %s ---\n" % (t - t0, rec["event"]))
            continue
        name = rec["dir"]
        link = links.get(name)
        if link is None:
            link = links[name] = Link(name, auth)
        for r in link.feed(t, bytes.fromhex(rec["data"])):
            d = frame_dict(r, t0, nodes)
            out.write((json.dumps(d) if args.json else frame_line(d)) + "\n")
        out.flush()
    span = t_end - t0 if t0 is not None else 0.0
    s = summary(dict(sorted(links.items())), baud or 19200, span)
    out.write((json.dumps({"summary": s}) if args.json else summary_text(s)) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`
        sys.exit(0)
