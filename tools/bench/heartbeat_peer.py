"""The peer hanode replaces: Linux-HA Heartbeat 3.0.6 (Debian's ``heartbeat``) in the same lab.

Theory of operation
-------------------
``HeartbeatLab`` is a ``hanode.lab.Lab`` - the same namespaces, LAN, client,
VIP monitors and paced 19200-baud null-modem between two PTYs - whose nodes
run ``/usr/libexec/heartbeat/heartbeat`` instead of ``hanode run``.  It only
overrides the lab's public ``write_config`` and ``start``; power loss, the
client, the monitors and the teardown are the lab's own.

Heartbeat's paths are compiled in (``/etc/ha.d``, ``/var/lib/heartbeat``,
``/run/heartbeat.pid``, ``/run/heartbeat``, the tty lock ``/var/lock`` ->
``/run/lock``) and it takes its node name from ``uname -n``.  So each node's
Heartbeat runs inside its network namespace in a private mount and UTS
namespace (``unshare --mount --uts``) where

- ``hostname`` is the node's name;
- ``/etc/ha.d`` is a bind mount of ``<node>/hb/etc``: a copy of the
  installed /etc/ha.d (harc, rc.d, shellfuncs, resource.d with IPaddr) plus
  the lab's ``ha.cf``, ``authkeys``, ``haresources`` and ``webapp`` script;
- ``/var/lib/heartbeat`` is ``<node>/hb/lib`` (a copy of the installed tree:
  hb_uuid, hostcache and the generation live there);
- ``/run`` is ``<node>/hb/run`` with ``heartbeat/`` (hacluster:haclient
  0750, as the package makes it), ``lock/`` and ``resource-agents/``: the two
  nodes' pid files and ``LCK..ttyS0`` locks do not collide.

The configuration is the lab's: ``ha.cf`` minus the lines Heartbeat does not
know (hanode's extensions: ``vip_probe``, ``state_dir``, ``control_socket``,
``resource_dir``, ``resource_timeout``) plus ``use_logd no`` and ``crm no``
(Heartbeat v1 resource manager, as hanode); ``haresources`` is the same line
(``node1 192.0.2.100/24/eth0 webapp``: Heartbeat's IPaddr, then the init
script); ``authkeys`` has the same key with ``sha1`` (Heartbeat 3.0.6 knows
crc, md5 and sha1, not hmac-sha256).

Heartbeat's log has one-second stamps, so ``LogTail`` stamps each new line
of the node's ``ha-log`` as it appears (polled every 5 ms): detection is the
time ``node node1: is dead`` was written.  On the cable Heartbeat's frames are
text between ``>>>\\n`` and ``<<<\\n`` (``serial.c``); ``hb_cable_frames``
cuts the byte log into them and reads each one's ``t=`` (message type) and
``src=``.

Heartbeat is installed by ``tools/setup --test`` (``heartbeat`` package,
not started by the install: see tools/setup); ``available()`` says what is
missing otherwise.
"""
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from hanode.lab import KEY, NODES, Lab

HEARTBEAT = "/usr/libexec/heartbeat/heartbeat"
HA_ETC = "/etc/ha.d"
HA_LIB = "/var/lib/heartbeat"
HA_USER, HA_GROUP = "hacluster", "haclient"
# ha.cf directives of hanode that Heartbeat 3.0.6 rejects ("Illegal directive")
HANODE_ONLY = ("vip_probe", "state_dir", "control_socket", "resource_dir", "resource_timeout")
HEARTBEAT_ONLY = ("use_logd no", "crm no")
LOG_POLL_S = 0.005
MSG_START, MSG_END = b">>>\n", b"<<<\n"


def available() -> Optional[str]:
    """None if Heartbeat can run here, else what is missing and how to get it."""
    if not os.access(HEARTBEAT, os.X_OK):
        return "Heartbeat is not installed (%s): run tools/setup --test (Debian package 'heartbeat')" % HEARTBEAT
    for tool in ("unshare", "mount", "hostname"):
        if shutil.which(tool) is None:
            return "'%s' (util-linux / hostname) is missing" % tool
    import grp
    import pwd
    try:
        pwd.getpwnam(HA_USER)
        grp.getgrnam(HA_GROUP)
    except KeyError:
        return "user %s / group %s missing (the heartbeat package's postinst makes them)" % (HA_USER, HA_GROUP)
    return None


def version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "heartbeat"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return "Heartbeat %s (Debian package heartbeat)" % (out or "?")


class LogTail:
    """Stamps every new line of a log file with the time it appeared (polled every 5 ms)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: List[Tuple[float, str]] = []
        self._stop = threading.Event()
        self._offset = 0
        self._partial = b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(LOG_POLL_S):
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            now = time.time()
            self._offset += len(data)
            data = self._partial + data
            *done, self._partial = data.split(b"\n")
            for line in done:
                self.lines.append((now, line.decode(errors="replace")))

    def first(self, text: str, since: float, until: float = float("inf")) -> Optional[float]:
        for t, line in list(self.lines):
            if text in line and since <= t <= until:
                return t
        return None

    def stop(self) -> None:
        self._stop.set()


def ha_cf_for_heartbeat(text: str) -> str:
    keep = [line for line in text.splitlines() if line.split()[:1] and line.split()[0] not in HANODE_ONLY]
    return "\n".join(keep + ["# Heartbeat's own (hanode has no such directives)"] + list(HEARTBEAT_ONLY)) + "\n"


class HeartbeatLab(Lab):
    """A Lab whose nodes run Heartbeat 3.0.6; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tails: Dict[str, LogTail] = {}

    def hb_dir(self, node: str, *parts: str) -> str:
        return os.path.join(self.node_dir(node), "hb", *parts)

    def write_config(self, node: str) -> None:
        super().write_config(node)
        ha = os.path.join(self.node_dir(node), "ha.d")
        etc, lib, run = self.hb_dir(node, "etc"), self.hb_dir(node, "lib"), self.hb_dir(node, "run")
        for d in (etc, lib):
            if os.path.exists(d):
                shutil.rmtree(d)
        os.makedirs(self.hb_dir(node), exist_ok=True)
        # cp -a keeps the package's owners and modes (ccm/, crm/ are hacluster:haclient 0750)
        subprocess.run(["cp", "-a", HA_ETC, etc], check=True, timeout=30)
        subprocess.run(["cp", "-a", HA_LIB, lib], check=True, timeout=30)
        with open(os.path.join(ha, "ha.cf")) as f:
            text = f.read()
        with open(os.path.join(etc, "ha.cf"), "w") as f:
            f.write(ha_cf_for_heartbeat(text))
        keys = os.path.join(etc, "authkeys")
        with open(keys, "w") as f:
            f.write("auth 1\n1 sha1 %s\n" % KEY)
        os.chmod(keys, 0o600)
        shutil.copy(os.path.join(ha, "haresources"), os.path.join(etc, "haresources"))
        for name in os.listdir(os.path.join(ha, "resource.d")):
            shutil.copy(os.path.join(ha, "resource.d", name), os.path.join(etc, "resource.d", name))
        for sub, mode, owned in (("heartbeat", 0o750, True), ("heartbeat/ccm", 0o750, True),
                                 ("heartbeat/crm", 0o750, True), ("heartbeat/dopd", 0o750, True),
                                 ("lock", 0o1777, False), ("resource-agents", 0o755, False)):
            path = os.path.join(run, sub)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
            if owned:
                shutil.chown(path, HA_USER, HA_GROUP)

    def log_path(self, node: str) -> str:
        return os.path.join(self.node_dir(node), "ha-log")

    def start(self, node: str, extra: Tuple[str, ...] = (), env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Heartbeat in the node's namespaces (see the module docstring); it daemonizes, so the
        returned process is the short-lived launcher: its children are found by namespace."""
        run = self.hb_dir(node, "run")
        # what a power loss leaves behind: the pid file and the tty lock of the dead instance
        stale = [os.path.join(run, "heartbeat.pid")] + [os.path.join(run, "lock", n)
                                                        for n in os.listdir(os.path.join(run, "lock"))]
        for path in stale:
            if os.path.exists(path):
                os.unlink(path)
        script = ("hostname %s && mount --bind %s %s && mount --bind %s %s && mount --bind %s /run && exec %s %s"
                  % (node, self.hb_dir(node, "etc"), HA_ETC, self.hb_dir(node, "lib"), HA_LIB, run, HEARTBEAT,
                     " ".join(extra)))
        argv = ["ip", "netns", "exec", self.ns(node), "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", script]
        if node not in self.tails:
            self.tails[node] = LogTail(self.log_path(node))
        out = open(os.path.join(self.node_dir(node), "stderr.log"), "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        out.close()
        self.procs[node] = proc
        self.started_at[node] = time.time()
        self.powered[node] = True
        self.mark("%s powered on (heartbeat launcher pid %d)" % (node, proc.pid))
        return proc

    def heartbeat_pids(self, node: str) -> List[int]:
        """Heartbeat's processes in the node's namespace (by their command, not the resources')."""
        out = []
        for pid in self.ns_pids(node):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
                with open("/proc/%d/comm" % pid) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if argv0.startswith(b"heartbeat") or comm == "heartbeat":
                out.append(pid)
        return out

    def log_text(self, node: str) -> str:
        try:
            with open(self.log_path(node), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        for t in self.tails.values():
            t.stop()
        super().close()


def hb_cable_frames(lab: Lab, since: float = 0.0, until: float = float("inf")) -> Dict[str, List[Dict[str, Any]]]:
    """Heartbeat's messages on each direction of the cable: time the last byte left the line,
    bytes on the wire (">>>\\n" to "<<<\\n"), message type (t=) and source (src=)."""
    from tools.bench.common import byte_time, cable_chunks
    out: Dict[str, List[Dict[str, Any]]] = {"a>b": [], "b>a": []}
    pending = {"a>b": bytearray(), "b>a": bytearray()}
    for t, d, data in cable_chunks(lab, until):
        buf = pending[d]
        for i, byte in enumerate(data):
            buf.append(byte)
            if buf.endswith(MSG_END):
                start = buf.rfind(MSG_START)
                end = byte_time(t, data, i)
                if start >= 0 and since <= end <= until:
                    body = bytes(buf[start + len(MSG_START):-len(MSG_END)])
                    fields = dict(kv.split(b"=", 1) for kv in body.split(b"\n") if b"=" in kv)
                    out[d].append({"t": end, "bytes": len(buf) - start, "junk": start,
                                   "type": fields.get(b"t", b"").decode(errors="replace"),
                                   "src": fields.get(b"src", b"").decode(errors="replace")})
                buf.clear()
    return out
