"""The control socket: ``hanode status``, ``standby``, ``takeover`` and ``reload``.

Theory of operation
-------------------
The daemon listens on a unix stream socket (default /run/hanode/control.sock,
ha.cf ``control_socket``), mode 600 in a root-only directory, and also checks
the caller's credentials (SO_PEERCRED): only root, or the daemon's own user,
may ask.  A request is one JSON line ``{"cmd": "status"|"standby"|"takeover"|"reload"}``
(standby/takeover may add ``"which": "local"|"foreign"|<group key>``, default all);
the answer is one JSON line.  ``standby``/``takeover`` answer at once whether
the request was accepted; the client then watches ``status`` until the groups
have moved (or a timeout), so the command says what actually happened, the
way Heartbeat's hb_standby/hb_takeover users expect.  ``reload`` answers once the new
configuration is in force or refused (``hanode.reload``), with every problem.
"""
import asyncio
import json
import os
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

if TYPE_CHECKING:   # the agent (hanode run) never imports argparse: hanode.runline
    import argparse

DEFAULT_SOCKET = "/run/hanode/control.sock"
MAX_REQUEST = 4096
EXIT_NOT_RUNNING = 3   # LSB status: program is not running
EXIT_UNKNOWN = 4       # LSB status: program or service status is unknown


# ----------------------------------------------------------------- server side
class ControlServer:
    def __init__(self, path: str, handle: Callable[..., Dict[str, Any]],
                 log: Callable[[str, str], None]) -> None:
        self.path = path
        self.handle = handle
        self.log = log
        self.server: Optional[asyncio.AbstractServer] = None
        self.allowed_uids = {0, os.getuid()}
        self.refused = 0

    async def start(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.exists(self.path):
            if _answering(self.path):
                raise OSError("another hanode is already listening on %s" % self.path)
            os.unlink(self.path)   # left over by a killed daemon
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, gid = struct.unpack("3i", creds)
            if uid not in self.allowed_uids:
                self.refused += 1
                self.log("warning", "control socket: refused uid %d (pid %d): only root may control hanode"
                         % (uid, pid))
                answer: Dict[str, Any] = {"ok": False, "message": "permission denied: only root may control hanode"}
            else:
                line = await asyncio.wait_for(reader.readline(), 5)
                try:
                    request = json.loads(line[:MAX_REQUEST].decode() or "{}")
                    cmd, which = request.get("cmd", ""), request.get("which")
                except (ValueError, AttributeError):
                    cmd, which = "", None
                answer = self.handle(cmd, which) if which else self.handle(cmd)
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


def _answering(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ----------------------------------------------------------------- client side
class ControlError(Exception):
    pass


def request(cmd: str, path: str = DEFAULT_SOCKET, timeout: float = 5.0, which: Optional[str] = None) -> Dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise ControlError("hanode is not running (no control socket at %s)" % path)
        except PermissionError:
            raise ControlError("permission denied on %s: run as root" % path)
        except ConnectionRefusedError:
            raise ControlError("hanode is not running (%s refuses connections)" % path)
        try:
            s.sendall((json.dumps({"cmd": cmd, "which": which} if which else {"cmd": cmd}) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass   # the daemon answered at connect and closed (it refuses this user): read its answer
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise ControlError("no answer from hanode on %s within %.0f s" % (path, timeout))
    finally:
        s.close()
    try:
        return json.loads(data.decode())
    except ValueError:
        raise ControlError("garbled answer from hanode on %s" % path)


def is_status(answer: Dict[str, Any]) -> bool:
    """A status answer, rather than the daemon's refusal ({"ok": false, "message": ...})."""
    return answer.get("ok") is not False and "rscstatus" in answer


def _age(ms: Optional[int]) -> str:
    if ms is None:
        return "never"
    if ms < 10000:
        return "%d ms ago" % ms
    return "%.0f s ago" % (ms / 1000)


def _rejoin_lines(st: Dict[str, Any]) -> List[str]:
    """What the rejoin of a box without state (docs/protocol.md, "Rejoin") is doing, if anything."""
    rj = st.get("rejoin") or {}
    c = st.get("counters", {})
    lines = []
    episode = rj.get("episode")
    if episode:
        lines.append("BELOW FLOOR: %d authentic frames of %s with generation %s, below its floor %s (gen/seq) "
                     "(for %d ms): challenged %d times to rejoin; a box that lost its state, or a replay" % (
                         episode["below_floor"], st["peer"], episode["their_generation"],
                         "%d/%d" % tuple(episode["floor"]),
                         episode["for_ms"], episode["challenges"]))
    last = rj.get("last")
    if last and not episode:
        lines.append("%s %s with generation %s after %d frames below its floor" % (
            st["peer"], "rejoined" if last["how"] == "rejoined" else "moved above its floor",
            last["generation"], last["below_floor"]))
    if rj.get("saving_generation"):
        lines.append("rejoining %s: saving boot generation %s" % (st["peer"], rj["saving_generation"]))
    if c.get("generation_jumps"):
        lines.append("this box lost its state and rejoined %s %d time(s) (generation jumped)" % (
            st["peer"], c["generation_jumps"]))
    return lines


def format_status(st: Dict[str, Any]) -> str:
    lines = []
    role = "standby" if st.get("standby") else st["rscstatus"]
    lines.append("%s (generation %s): %s, resources: %s%s" % (
        st["me"], st["generation"], st["state"], role, ", STALE (own loop stalled)" if st.get("stale") else ""))
    for alarm in st.get("alarms") or []:
        lines.append("ALARM: " + alarm)
    escalation = ((st.get("agent") or {}).get("stop_failure") or {}).get("escalated")
    if escalation:
        lines.append("ALARM: stop_failure %s since %s: %s" % (escalation["action"], escalation["at"],
                                                             escalation.get("what", "")))
    conflict = st.get("identity_conflict")
    if conflict:
        lines.append("CONFLICT: another box also calls itself %s (its generation %s, on %s): give each "
                     "box its own node name; taking no resource group meanwhile" % (
                         st["me"], conflict["their_generation"], conflict["link"]))
    lines.append("peer %s (generation %s): %s, last heard %s" % (
        st["peer"], st.get("peer_generation") or "-", st["peer_state"], _age(st.get("peer_last_heard_ms"))))
    lines.extend(_rejoin_lines(st))
    lines.append("")
    width = max([len("LINK")] + [len(link["name"]) for link in st["links"]])
    lines.append("%-*s %-6s %s" % (width, "LINK", "STATE", "LAST HEARD"))
    for link in st["links"]:
        lines.append("%-*s %-6s %s" % (width, link["name"], link["state"], _age(link["last_heard_ms"])))
    lines.append("")
    lines.append("%-20s %-10s %-10s %-12s %s" % ("GROUP", "PREFERRED", "HELD BY", "STATE", "RESOURCES"))
    for g in st["groups"]:
        state = g["state"] + (" (given up)" if g.get("gave_up") else " (failed)" if g.get("failed") else "") \
            + (" (standby)" if g.get("given") else "")
        lines.append("%-20s %-10s %-10s %-12s %s" % (
            g["key"], g["preferred"], g["held_by"] or "nobody", state, " ".join(g["resources"])))
        if g.get("pending"):
            lines.append("%-20s pending until its next hand-over: %s" % ("", " ".join(g["pending"])))
        lines.extend(_monitor_lines(g))
    lines.append("")
    lines.extend(_lan_lines(st))
    lines.append("auto_failback %s: %s" % (st["auto_failback"], st["on_peer_return"]))
    c = st["counters"]
    dropped = ", ".join("%s %d" % (k, v) for k, v in sorted(c["dropped"].items()) if v) or "none"
    lines.append("frames sent %d, received %d, dropped: %s" % (c["frames_sent"], c["frames_received"], dropped))
    lines.append("late heartbeats %d, failovers %d, stalls %d, peer restarts %d" % (
        c["late_heartbeats"], c["failovers"], c["stalls"], c["peer_restarts"]))
    lines.extend(_config_lines(st))
    lines.extend(_mismatch_lines(c["dropped"]))
    extra = st.get("agent")
    if extra:
        lines.append("pid %s, up %.0f s, watchdog: %s" % (extra.get("pid"), extra.get("uptime_s", 0),
                                                          extra.get("watchdog", "off")))
    return "\n".join(lines)


def _monitor_lines(g: Dict[str, Any]) -> List[str]:
    """Per resource of a monitored group: its last check, what it said, failures, restarts."""
    m = g.get("monitor")
    if not m or all(r["last_check_ms_ago"] is None for r in m["resources"]):
        return []
    lines = []
    for token, r in zip(g["resources"], m["resources"]):
        lines.append("%-20s %-22s checked %s: %s, failures %d, restarts %d%s" % (
            "", token, _age(r["last_check_ms_ago"]), r["result"] or "-", r["failures"], r["restarts"],
            " (%s)" % r["detail"] if r["result"] != "running" and r["detail"] else ""))
    if m["state"] in ("restarting", "backoff") or m["handed_over"]:
        lines.append("%-20s monitor: %s, %d restarts within the window, handed over %d times" % (
            "", m["state"], m["restarts_in_window"], m["handed_over"]))
    return lines


def _lan_lines(st: Dict[str, Any]) -> List[str]:
    """Own and peer LAN health, and what they mean for the groups (hanode/core/health.py)."""
    lan = st.get("lan")
    if not lan:
        return []
    own = lan["own"]
    lines = ["LAN: %s %s%s; %s %s%s" % (
        st["me"], "-" if own["health"] is None else own["health"],
        " (%s)" % own["detail"] if own.get("detail") else "", st["peer"],
        "-" if lan["peer"] is None else lan["peer"],
        "" if lan.get("peer_version") != 1 else " (its release has no LAN health)")]
    if own.get("counts_in_ms") is not None:
        lines.append("LAN: now %s (%s), counts in %d ms unless it changes back" % (
            own["raw"], own.get("raw_detail", ""), own["counts_in_ms"]))
    watch = lan.get("watch")
    if watch:
        parts = ["%s %s" % kv for kv in sorted(watch["interfaces"].items())]
        parts += ["ping %s %s" % (k, "reached" if v else "LOST") for k, v in sorted(watch["ping_nodes"].items())]
        lines.append("LAN: " + (", ".join(parts) or "nothing watched"))
    lines.append("LAN: " + lan["why"])
    if lan.get("verdict") == "pending" and lan.get("verdict_in_ms") is not None:
        lines.append("LAN: the two healths differ since less than %d ms: nothing moves for %d ms more"
                     % (lan["verdict_delay_ms"], lan["verdict_in_ms"]))
    return lines


def _config_lines(st: Dict[str, Any]) -> List[str]:
    lines = []
    t = st.get("timings")
    if t:
        lines.append("keepalive %d ms, warntime %d ms, deadtime %d ms, initdead %d ms, sending with key %s" % (
            t["keepalive_ms"], t["warntime_ms"], t["deadtime_ms"], t["initdead_ms"], st.get("auth_index")))
    config = st.get("config")
    if config:
        last = config.get("last_reload")
        lines.append("config revision %s%s" % (config["revision"], "" if not last else
                     "; last reload %s: %s (revision %s)" % (last["at"], last["message"], last["revision"])))
        lines.extend("  " + p for p in (last or {}).get("problems", []) if not last["ok"])
        peer = st.get("peer_revision")
        if peer:
            lines.append("%s runs config revision %s%s" % (st["peer"], peer,
                                                           "" if peer == config["revision"] else " (differs)"))
    return lines


def _mismatch_lines(dropped: Dict[str, int]) -> List[str]:
    """What the drop counters say about the two boxes' configurations differing (two revisions)."""
    lines = []
    if dropped.get("unknown_key") or dropped.get("bad_tag"):
        lines.append("WARNING: %d frames signed with a key this box does not have, %d with a wrong key: the "
                     "boxes' authkeys differ (a key rotation half done? add the key here, or switch `auth` "
                     "back on the peer)" % (dropped.get("unknown_key", 0), dropped.get("bad_tag", 0)))
    if dropped.get("unknown_src"):
        lines.append("WARNING: %d frames from a node id not in this box's node list: the boxes' ha.cf node "
                     "lines differ" % dropped["unknown_src"])
    return lines


# ----------------------------------------------------------------- the commands
def _add_socket(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--socket", default=os.environ.get("HANODE_SOCKET", DEFAULT_SOCKET),
                        help="control socket of the running daemon (default %(default)s; env HANODE_SOCKET)")


def add_arguments(parser: "argparse.ArgumentParser") -> None:   # status
    _add_socket(parser)
    parser.add_argument("--json", action="store_true", help="print the whole status as JSON")


def add_arguments_standby(parser: "argparse.ArgumentParser") -> None:
    _add_socket(parser)
    parser.add_argument("which", nargs="?", default="all", metavar="all|local|foreign|GROUP",
                        help="which groups: all (default), local (preferred by this node), foreign "
                             "(preferred by the peer) or one group's key, as Heartbeat's hb_standby/hb_takeover")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="how long to wait for the groups to move (default %(default)s; 0: do not wait)")


add_arguments_takeover = add_arguments_standby
add_arguments_reload = _add_socket


def run(args: "argparse.Namespace") -> int:   # status
    try:
        st = request("status", args.socket)
    except ControlError as e:
        print("hanode status: %s" % e, file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
    if not is_status(st):
        print("hanode status: the daemon answered: %s" % st.get("message", "no status"), file=sys.stderr)
        return EXIT_UNKNOWN
    if not args.json:
        print(format_status(st))
    return 0


def _move(args: "argparse.Namespace", cmd: str) -> int:
    try:
        answer = request(cmd, args.socket, which=None if args.which == "all" else args.which)
    except ControlError as e:
        print("hanode %s: %s" % (cmd, e), file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not answer.get("ok"):
        print("hanode %s: refused: %s" % (cmd, answer.get("message")), file=sys.stderr)
        return 1
    print("hanode %s: %s" % (cmd, answer.get("message")))
    if args.wait <= 0:
        return 0
    if answer.get("groups") == []:
        print("hanode %s: done: %s names no group here" % (cmd, args.which))
        return 0
    deadline = time.monotonic() + args.wait
    st: Dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            st = request("status", args.socket)
        except ControlError as e:
            print("hanode %s: %s" % (cmd, e), file=sys.stderr)
            return 1
        if not is_status(st):
            print("hanode %s: the daemon answered: %s" % (cmd, st.get("message", "no status")), file=sys.stderr)
            return 1
        target = st["peer"] if cmd == "standby" else st["me"]
        chosen = answer.get("groups")
        groups = [g for g in st["groups"] if chosen is None or g["key"] in chosen]
        # done when the target holds every group and nobody is still starting or stopping one:
        # our own groups are all settled, and the peer's frames no longer say it is busy
        settled = all(g["state"] in ("running", "stopped") for g in groups) and not st.get("peer_busy")
        if groups and settled and all(g["held_by"] == target for g in groups):
            print("hanode %s: done: %s now holds %s" % (cmd, target, " ".join(g["key"] for g in groups)))
            return 0
        time.sleep(0.1)
    held = ", ".join("%s by %s (%s)" % (g["key"], g["held_by"] or "nobody", g["state"]) for g in st.get("groups", []))
    print("hanode %s: not done after %.0f s: %s" % (cmd, args.wait, held), file=sys.stderr)
    return 1


def run_standby(args: "argparse.Namespace") -> int:
    return _move(args, "standby")


def run_takeover(args: "argparse.Namespace") -> int:
    return _move(args, "takeover")


def run_reload(args: "argparse.Namespace") -> int:
    """Exit 0 once the new configuration is in force; 1, with every problem, when it is refused."""
    try:
        answer = request("reload", args.socket, timeout=30)
    except ControlError as e:
        print("hanode reload: %s" % e, file=sys.stderr)
        return EXIT_NOT_RUNNING
    ok = bool(answer.get("ok"))
    text = "hanode reload: %s" % answer.get("message")
    if answer.get("revision"):
        text += " (revision %s)" % answer["revision"]
    print("\n".join([text] + ["  " + p for p in answer.get("problems", [])]), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
