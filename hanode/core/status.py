"""The node as others see it: the status dict, cl_status's answers, the one-line summary.

Theory of operation
-------------------
Read-only views over a ``Node``: nothing here changes the node or feeds its
state machines, so the control socket, systemd's STATUS= line and the tests
can ask as often as they like.  Names follow Heartbeat's ``cl_status`` where
it has one (``rscstatus``: local, foreign, all, none, transition; the peer's
status: dead, init, up, active, releasing, shutdone).
"""

from hanode.core import health
from hanode.core.frame import BUSY, STANDBY, STATE_NAMES, VERSION, VERSION_LAN
from hanode.core.liveness import DEAD, INIT
from hanode.core.wants import START_ROUNDS

# The counters the node keeps for frames it judged and dropped (the decoders count the rest).
NODE_DROPS = ("replay", "duplicate", "own", "unknown_src", "control_ignored")


def peer_state(node):
    """cl_status nodestatus of the peer: dead, init, or the state its latest frame gives."""
    if node.live.peer.state == DEAD:
        return "dead"
    if node.live.peer.state == INIT or node.peer_frame is None:
        return "init"
    return STATE_NAMES[node.peer_frame.state]


def rscstatus(node):
    """cl_status rscstatus: local, foreign, all, none or transition."""
    if any(g.busy() for g in node.groups):
        return "transition"
    local = [g for g in node.groups if g.group.preferred == node.me]
    foreign = [g for g in node.groups if g.group.preferred != node.me]
    has_local = bool(local) and all(g.held() for g in local)
    has_foreign = bool(foreign) and all(g.held() for g in foreign)
    if has_local and has_foreign:
        return "all"
    if has_local:
        return "local"
    if has_foreign:
        return "foreign"
    return "none"


def alarms(node, times=True):
    """What an operator must act on, one sentence each (also at the head of ``summary``, there
    without the count-down, so that systemd's STATUS= does not change every second)."""
    out = []
    for g in node.groups:
        intent = node.intents[g.index]
        if intent.escalated:
            out.append("%s failed to stop %d times: it may still run here and %s may not take it "
                       "(stop_failure escalation)" % (g.key, intent.stop_failures, node.peer))
        if intent.gave_up:
            out.append("%s failed to start %d times here: given up until 'hanode takeover' or "
                       "'hanode standby' (either box) or a restart" % (g.key, intent.start_failures))
        elif intent.start_failures and not times:
            out.append("%s failed to start %d of %d times here; backing off"
                       % (g.key, intent.start_failures, START_ROUNDS))
        elif intent.start_failures:
            wait = 0 if intent.retry_at is None or node.now is None else max(0, intent.retry_at - node.now)
            out.append("%s failed to start %d of %d times here; next try here in %d s at the earliest"
                       % (g.key, intent.start_failures, START_ROUNDS, (wait + 999) // 1000))
        watch = node.monitoring.monitors[g.index]
        if watch.alarm is not None:
            out.append(watch.alarm)
    return out


def summary(node):
    """One line for systemd's STATUS= and the logs: alarms, role and peer state."""
    degraded = node.monitoring.degraded(node)
    return "%s: %s%s%s%s, holds %s; peer %s %s%s" % (
        node.me, "".join("ALARM: %s; " % a for a in alarms(node, times=False)),
        ("DEGRADED: %s failed a check; " % " ".join(degraded)) if degraded else "",
        ("CONFLICT: another box is also %s; " % node.me) if node.identity_conflict else "",
        ("standby" if node.standby_mode else rscstatus(node)),
        (" ".join(node.held_groups()) or "nothing"), node.peer, peer_state(node), _lan_summary(node))


def _peer_lan(node):
    """The peer's counted LAN health while it is alive and speaks version 2, else None."""
    return node.peer_lan if node.peer_view() is not None else None


def _lan_summary(node):
    """'; LAN node1 0 < node2 1' when the LAN health of either box is below the best (a
    steady STATUS= otherwise)."""
    own, peer = node.lan_health.counted, _peer_lan(node)
    if own is None or (own != health.NO_CARRIER and (peer is None or own == peer)):
        return ""
    if peer is None:
        return "; LAN %s %d" % (node.me, own)
    sign = "<" if own < peer else (">" if own > peer else "=")
    return "; LAN %s %d %s %s %d%s" % (node.me, own, sign, node.peer, peer,
                                       " (both down: nothing moves)" if own == peer else "")


def _verdict_in(node):
    due = node.lan_compare.due(node.lan_delay_ms())
    if due is None or node.now is None or due <= node.now:
        return None
    return due - node.now


def lan(node):
    """Own and peer LAN health, which frame version the peer speaks, and what it means."""
    p = node.peer_frame
    if p is not None and node.peer_v2_gen == p.gen:
        version = VERSION_LAN
    elif p is not None and node.peer_v1_frames:
        version = VERSION
    else:
        version = None
    deadtime = node.config.deadtime_ms
    return {
        "own": node.lan_health.status(node.now, deadtime),
        "peer": _peer_lan(node),
        "peer_version": version,
        "loss_settle_ms": health.loss_settle_ms(deadtime),
        "gain_settle_ms": health.gain_settle_ms(deadtime),
        "verdict_delay_ms": node.lan_delay_ms(),
        "verdict_in_ms": _verdict_in(node),
        # what the LAN says about every group right now (wants.py): "ours" (our LAN is better),
        # "peer's" (its LAN is better), "pending" (they differ, not yet for the verdict delay)
        "verdict": {True: "ours", False: "peer's", health.PENDING: "pending"}.get(node.lan_verdict),
        "why": health.why(node.lan_health.counted, _peer_lan(node), node.me, node.peer),
    }


def _groups(node, peer):
    groups = []
    for g in node.groups:
        intent = node.intents[g.index]
        theirs = bool(peer and peer.held & g.bit)
        holders = [n for n, h in ((node.me, g.claimed()), (node.peer, theirs)) if h]
        groups.append({
            "key": g.key,
            "preferred": g.group.preferred,
            "resources": [r.token for r in g.group.resources],
            "state": g.state,
            "held_by": holders[0] if len(holders) == 1 else ("both" if holders else None),
            "wanted": bool(intent.wanted),
            "failed": intent.failed,
            "start_failures": intent.start_failures,
            "gave_up": intent.gave_up,
            "stop_failures": intent.stop_failures,
            "escalated": intent.escalated,
            "monitor": node.monitoring.status(g, node.now if node.now is not None else 0),
            "given": g.index in node.given,       # per-group standby: given to the peer
            "taking": g.index in node.taking,     # per-group takeover asked of the peer
            # reloaded resources wait until the group is stopped here (its next hand-over)
            "pending": [r.token for r in node.pending_groups[g.index].resources]
            if g.index in node.pending_groups else None,
        })
    return groups


def _counters(node):
    dropped = {}
    for decoder in node.decoders.values():
        for reason, count in decoder.counters.items():
            dropped[reason] = dropped.get(reason, 0) + count
    for reason in NODE_DROPS:
        dropped[reason] = dropped.get(reason, 0) + node.counters[reason]
    counters = dict(node.counters)
    counters["dropped"] = dropped
    # events a transition table has no row for (ownership, liveness): each one is a bug or an
    # adapter reporting out of turn, so it is shown rather than silently ignored
    counters["unlisted_transitions"] = (node.live.unlisted + sum(g.unlisted for g in node.groups)
                                        + node.rejoin.unlisted + node.lan_health.unlisted
                                        + sum(m.unlisted for m in node.monitoring.monitors))
    return counters


def _peer_restart(node, now):
    """The peer's announced agent restart we hold off for, or None."""
    pr = node.peer_restart
    if pr is None:
        return None
    return {"generation": pr["gen"], "for_ms": now - pr["since_ms"], "grace_ms": pr["grace_ms"],
            "left_ms": max(0, pr["until_ms"] - now), "held": [g.key for g in node.groups if pr["held"] & g.bit]}


def status(node):
    """The whole node as a plain dict (the control socket's ``status``)."""
    now = node.now if node.now is not None else 0
    peer = node.peer_view()
    links = [{"name": t.name, "state": t.state, "last_heard_ms": t.age(now)} for t in node.live.links]
    if node.config.auto_failback == "off":
        on_return = "groups stay where they are when %s returns" % node.peer
    else:
        on_return = "groups preferred by %s go back to it when it returns" % node.peer
    return {
        "me": node.me,
        "peer": node.peer,
        "generation": node.gen,
        "state": STATE_NAMES[node.state],
        "standby": node.standby_mode,
        "takeover_requested": node.takeover_request,
        "stale": node.stale,
        "identity_conflict": dict(node.identity_conflict) if node.identity_conflict else None,
        "alarms": alarms(node),
        "rejoin": node.rejoin.status(now),
        "peer_state": peer_state(node),
        "peer_generation": node.peer_frame.gen if node.peer_frame else None,
        "revision": "%012x" % node.revision if node.revision else None,
        "peer_revision": "%012x" % node.peer_revision if node.peer_revision else None,
        "peer_restart": _peer_restart(node, now),
        "peer_standby": bool(peer and peer.flags & STANDBY),
        "peer_busy": bool(peer and peer.flags & BUSY),
        "peer_last_heard_ms": node.live.peer.age(now),
        "rscstatus": rscstatus(node),
        "auto_failback": node.config.auto_failback,
        "on_peer_return": on_return,
        "timings": {"keepalive_ms": node.live.keepalive_ms, "warntime_ms": node.live.warntime_ms,
                    "deadtime_ms": node.live.deadtime_ms, "initdead_ms": node.live.initdead_ms,
                    "monitor_interval_ms": node.monitoring.interval_ms},
        "auth_index": node.auth.send_index,
        "links": links,
        "groups": _groups(node, peer),
        "lan": lan(node),
        "summary": summary(node),
        "counters": _counters(node),
    }
