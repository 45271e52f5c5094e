"""``--plot FILE.png``: the failover timeline and the latency distributions (matplotlib, optional).

Theory of operation
-------------------
Two panels from the failover figure's JSON: on top, the median trial of the
tightest sub-second timing that ran, on a millisecond axis from the power
loss - both nodes' heartbeats on the cable, every client request (served by
node1, node2 or failed), and node2's detection, ARP probe, VIP and first
gratuitous ARP; below, the empirical distribution (CDF) of detection, VIP-up,
first GARP and client outage for every timing, on a log axis so the classic
15 s and the sub-second timings fit together.  matplotlib is the ``plot``
extra; ``available()`` says how to get it when it is missing.
"""
from typing import Any, Dict, Optional


def available() -> Optional[str]:
    """None if matplotlib can be imported, else the message to show."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return ("--plot needs matplotlib, which is not installed: pip install 'hanode[plot]' "
                "(or pip install matplotlib)")
    return None


COLORS = {"detect_ms": "tab:red", "probe_ms": "tab:purple", "vip_up_ms": "tab:orange", "garp_ms": "tab:brown",
          "client_ms": "tab:green"}
LABELS = {"detect_ms": "node2: node1 is dead", "probe_ms": "first ARP probe", "vip_up_ms": "VIP up on node2",
          "garp_ms": "first gratuitous ARP", "client_ms": "client served by node2"}


def _ms(text: str) -> float:
    return float(text[:-2]) if text.endswith("ms") else float(text) * 1000


def draw(failover: Dict[str, Any], path: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timings = [t for t in failover.get("timings", []) if t.get("trials")]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 11), gridspec_kw={"height_ratios": [1, 1.3]})
    sub = [t for t in timings if t["name"] != "classic" and t.get("timeline")]
    chosen = min(sub, key=lambda t: _ms(t["timing"]["deadtime"])) if sub else None
    if chosen:
        tl = chosen["timeline"]
        top.scatter(tl["node1_beats_ms"], [3] * len(tl["node1_beats_ms"]), marker="|", s=200, color="tab:blue",
                    label="node1 heartbeat on the cable")
        top.scatter(tl["node2_beats_ms"], [2] * len(tl["node2_beats_ms"]), marker="|", s=200, color="tab:cyan",
                    label="node2 heartbeat on the cable")
        for body, color, label in (("node1", "tab:blue", "client: answered by node1"),
                                   ("node2", "tab:green", "client: answered by node2"),
                                   (None, "tab:red", "client: failed")):
            xs = [t for t, ok, b in tl["client"] if (ok and b == body) or (body is None and not ok)]
            top.scatter(xs, [1] * len(xs), s=12, color=color, label=label)
        for key, x in tl["events_ms"].items():
            if x is not None:
                top.axvline(x, color=COLORS.get(key, "gray"), linestyle="--", linewidth=1,
                            label="%s (%.0f ms)" % (LABELS.get(key, key), x))
        top.axvline(0, color="black", linewidth=1.5, label="power loss of node1")
        top.set_yticks([1, 2, 3])
        top.set_yticklabels(["client", "node2", "node1"])
        top.set_ylim(0.5, 3.5)
        top.set_xlabel("ms since power loss")
        top.set_title("Failover timeline, median trial at keepalive %s / deadtime %s"
                      % (chosen["timing"]["keepalive"], chosen["timing"]["deadtime"]))
        top.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    else:
        top.text(0.5, 0.5, "no sub-second failover trial ran", ha="center", transform=top.transAxes)
    styles = ["-", "--", ":", "-."]
    for i, t in enumerate(timings):
        for key in ("detect_ms", "vip_up_ms", "garp_ms", "client_ms"):
            vals = sorted(r[key] for r in t["trials"] if r.get(key) is not None)
            if not vals:
                continue
            ys = [0.0] + [(k + 1) / len(vals) for k in range(len(vals))]
            bottom.step([vals[0]] + vals, ys, where="post", color=COLORS[key], linestyle=styles[i % len(styles)],
                        label="%s %s/%s: %s" % (t["name"], t["timing"]["keepalive"], t["timing"]["deadtime"],
                                                LABELS[key]))
    bottom.set_xscale("log")
    bottom.set_xlabel("ms since power loss (log)")
    bottom.set_ylabel("fraction of trials")
    bottom.set_title("Failover latency distribution (CDF over trials)")
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
