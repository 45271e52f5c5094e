"""Figure 3: the wire - bytes per heartbeat, line utilisation, lost and rejected frames.

Theory of operation
-------------------
Everything here is read off the cable's byte log of a steady window (both
agents running, node1 holding the VIP): the bytes between two 0x00
delimiters are one frame (its size includes the delimiter; the lab's own
``cable_frames()`` gives the same number and is reported next to ours), each
frame is decoded and verified with the lab's key, and utilisation is bytes
per second per direction over the 1920 bytes/s a 19200-baud 8N1 line
carries.  Lost = frames the sender counted as sent minus frames the receiver
accepted (the agents' counters before and after the window); rejected = what
the receivers' decoders dropped; corrupted = frames on the cable that fail
verification.  A clean window per keepalive, and one with BER 1e-4.

Windows already measured by the footprint and jitter figures (same timing,
no load, no real-time) are reused rather than run again.
"""
from typing import Any, Dict, List, Optional

from tools.bench import FIGURES
from tools.bench.common import (LINE_BYTES_PER_S, Context, TIMINGS, find_steady, machine_line, ms, pair_timing,
                                steady)

NAME = "wire"
TITLE = FIGURES[NAME]

KEEPALIVES = (("classic", 1000), ("tight", 100), ("fast", 50), (None, 25))
REJECTS = ("bad_tag", "garbage", "length", "version", "type", "unknown_key", "overflow")


def run(ctx: Context) -> Dict[str, Any]:
    seconds = 3.0 if ctx.quick else 20.0
    rows: List[List[str]] = []
    results = []
    for name, ka in KEEPALIVES:
        if ctx.quick and ka == 25:
            continue
        timing = TIMINGS[name] if name else pair_timing(ka, 4 * ka)
        w = find_steady(ctx, ka) or steady(ctx, timing, seconds if ka < 1000 else 2 * seconds)
        results.append(summarise(w, 0.0))
    noisy_t = TIMINGS["fast"]
    results.append(summarise(steady(ctx, noisy_t, seconds, ber=1e-4), 1e-4))
    for r in results:
        rows.append(["%g ms" % r["keepalive_ms"], "%g" % r["ber"], "%.0f" % r["seconds"], str(r["bytes_per_frame"]),
                     "%.1f" % r["frames_per_s"], "%.0f" % r["bytes_per_s"], "%.1f %%" % r["utilisation_pct"],
                     str(r["lost"]), str(r["corrupted_on_cable"]), str(r["replaced"]), str(r["rejected"])])
    sizes = sorted({r["bytes_per_frame"] for r in results if r["bytes_per_frame"]})
    return {
        "title": TITLE,
        "machine": machine_line(ctx.machine),
        "method": ("Cable byte log of a steady window per keepalive (both agents up, node1 active, no load): "
                   "frames cut at 0x00 and verified with the lab's key; bytes/frame includes the delimiter "
                   "(the most common size); frames/s, bytes/s and utilisation are per direction (a "
                   "19200-baud 8N1 line carries 1920 bytes/s each way); lost = frames sent minus frames "
                   "accepted by the peer (agents' counters; +-1 for a frame in flight when they were read), "
                   "invalid = frames failing verification on the "
                   "cable (bit errors, or a frame cut short on purpose), replaced = frames the sender "
                   "flushed unsent because the next one was due (uart write_latest: the rest of the old "
                   "frame is dropped and a 0x00 resyncs the receiver), rejected = frames the receivers "
                   "dropped (bad tag, garbage, length). "
                   "Both directions summed for the counts."),
        "table": {"columns": ["keepalive", "BER", "s", "bytes/frame", "frames/s", "bytes/s",
                              "line use", "lost", "invalid on cable", "replaced", "rejected"], "rows": rows},
        "notes": ["frame sizes seen: %s bytes" % ", ".join(str(s) for s in sizes)],
        "runs": results,
        "bytes_per_frame": sizes[0] if len(sizes) == 1 else sizes,
    }


def _reasons(frames: Dict[str, Any]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for d in frames.values():
        for _, _, v in d:
            if v != "ok":
                out[v] = out.get(v, 0) + 1
    return out


def summarise(w: Dict[str, Any], ber: float) -> Dict[str, Any]:
    frames = w["frames"]
    span = max(w["seconds"], 1e-3)
    sizes: Dict[int, int] = {}
    for d in frames.values():
        for _, size, verdict in d:
            if verdict == "ok":
                sizes[size] = sizes.get(size, 0) + 1
    common = max(sizes, key=lambda s: sizes[s]) if sizes else 0
    per_dir_frames = sum(len(d) for d in frames.values()) / 2.0
    per_dir_bytes = sum(size for d in frames.values() for _, size, _ in d) / 2.0
    c = w["counters"]
    lost: Optional[int] = None
    rejected = 0
    if "node1" in c and "node2" in c:
        lost = (max(0, c["node1"]["frames_sent"] - c["node2"]["frames_received"])
                + max(0, c["node2"]["frames_sent"] - c["node1"]["frames_received"]))
    for n in c.values():
        rejected += sum(n.get("dropped", {}).get(k, 0) for k in REJECTS)
    return {
        "keepalive_ms": ms(w["timing"]["keepalive"]), "ber": ber, "seconds": w["seconds"],
        "bytes_per_frame": common, "sizes": {str(k): v for k, v in sorted(sizes.items())},
        "lab_cable_frames": w.get("cable_frames"),
        "frames_per_s": round(per_dir_frames / span, 2), "bytes_per_s": round(per_dir_bytes / span, 1),
        "utilisation_pct": round(per_dir_bytes / span / LINE_BYTES_PER_S * 100, 2),
        "lost": lost if lost is not None else "-",
        "corrupted_on_cable": sum(1 for d in frames.values() for _, _, v in d if v != "ok"),
        "invalid_by_reason": _reasons(frames),
        "replaced": sum(a.get("uart_replaced", 0) for a in w.get("agent", {}).values()),
        "corrupted_bytes": sum(v.get("corrupted", 0) for v in w["nullmodem"].values()),
        "rejected": rejected,
    }
