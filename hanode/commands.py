"""The control socket's commands, answered for the daemon: status, standby, takeover, reload, restart.

``handle(daemon, cmd, which)`` is what ``hanode.control.ControlServer`` calls (through
``Daemon.handle``): a plain dict back, one JSON line on the socket.  ``status`` is the node's own
view (``hanode.core.status``) plus what only the daemon knows (pid, version, watchdog, stop-failure
escalation, the configuration revision and the last reload); ``standby``/``takeover`` take
Heartbeat's argument (``which``: all, local, foreign or a group's key) and name the groups they
move, so the client can wait for exactly those; ``reload`` is ``hanode.reload``, ``restart``
``hanode.restart``.
"""
import os
import time
from typing import Any, Dict, Optional

from hanode import __version__


def handle(daemon: Any, cmd: str, which: Optional[str] = None) -> Dict[str, Any]:
    agent = daemon.agent
    if agent is None:
        return {"ok": False, "message": "starting up"}
    if cmd == "status":
        return status(daemon)
    if cmd == "reload":
        return daemon.reloader.reload()
    if cmd == "restart":
        from hanode.restart import accept
        return accept(daemon)
    if cmd in ("standby", "takeover"):
        ok, why, keys = getattr(agent, cmd)(which)
        return {"ok": ok, "message": why, "groups": keys}
    return {"ok": False, "message": "unknown command %r (status, standby, takeover, reload, restart)" % cmd}


def status(daemon: Any) -> Dict[str, Any]:
    agent, watchdog = daemon.agent, daemon.watchdog
    with agent.lock:   # the node, consistent: the heartbeat's thread is out of it meanwhile
        st = agent.node.status()
    st["agent"] = {
        "pid": os.getpid(), "version": __version__,
        "uptime_s": round(time.monotonic() - daemon.started, 1),
        "watchdog": (("%s (%s s)" % (watchdog.path, watchdog.granted_timeout_s))
                     if watchdog is not None and watchdog.enabled else "off"),
        "stop_failure": daemon.escalation.report(st["groups"]) if daemon.escalation else None,
        "summary": agent.summary(),
        "write_errors": agent.write_errors,
        "uart_replaced": sum(getattr(s, "replaced", 0) for s in daemon.serials),
    }
    st["config"] = daemon.reloader.status()
    if daemon.lan is not None:
        st["lan"]["watch"] = daemon.lan.status()
    return st
