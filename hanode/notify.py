"""systemd service notification (sd_notify): READY, STATUS, WATCHDOG, STOPPING.

Theory of operation
-------------------
Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the
abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``. The
daemon sends newline-separated ``KEY=value`` datagrams to that socket. systemd checks the
sender's PID (``NotifyAccess=main``), so they must come from hanode's own process.

``SystemdNotifier`` reads those variables once, at construction, and then removes them from
``os.environ`` (what ``sd_notify(unset_environment=1)`` does): the resource scripts that hanode
runs, and the daemons they start (httpd with mod_systemd, for one), must not inherit them and
report READY or MAINPID for hanode's unit, nor believe they have a service watchdog to feed.

Without ``NOTIFY_SOCKET`` (busybox init, a shell, the tests) every method is a no-op and the
``sdnotify`` package is not even imported. The systemd watchdog is armed only when
``WATCHDOG_USEC`` is set and ``WATCHDOG_PID``, if present, is our PID; the agent should send
``watchdog()`` every ``watchdog_interval_s`` (half of ``WatchdogSec``, as sd_watchdog_enabled(3)
recommends) and - like the hardware watchdog - only while its ``HealthGate`` says healthy.

sdnotify (0.3.2) maps ``@name`` to ``\\0name`` in its constructor, but that constructor reads
``os.environ``, which we clear; so hanode connects the socket itself, with the same mapping, and
uses sdnotify to send. Send errors are logged once and never raised: losing the notification
socket must not take the HA agent down (systemd's watchdog then restarts it, which is right).
"""
import collections
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, MutableMapping, Optional

__all__ = ["SystemdNotifier"]

LogFn = Callable[[str, str], None]

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
# The last messages sent, for debugging: a WATCHDOG=1 goes out every pet, so keeping every one
# would grow without end on a box that runs for years.
SENT_KEPT = 32


def _stderr_log(level: str, text: str) -> None:
    sys.stderr.write("hanode: %s: %s\n" % (level, text))


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment inside the datagram.
    return " ".join(str(text).splitlines())


class SystemdNotifier:
    """hanode's side of sd_notify. Construct once, early, in the main process."""

    def __init__(self, environ: Optional[MutableMapping[str, str]] = None,
                 unset_environment: bool = True, log: Optional[LogFn] = None) -> None:
        env = os.environ if environ is None else environ
        self.log = log or _stderr_log
        self.mainpid = os.getpid()
        self.socket_path: Optional[str] = env.get("NOTIFY_SOCKET") or None
        self.watchdog_usec: Optional[int] = None
        self.watchdog_interval_s: Optional[float] = None
        self.sent: Deque[str] = collections.deque(maxlen=SENT_KEPT)   # the latest messages sent
        self.watchdogs_sent = 0
        self._sock: Any = None
        # the heartbeat's thread (WATCHDOG=1, STATUS=) and the asyncio loop's (READY=1, STOPPING=1)
        # both send: one connection, made once
        self._send_lock = threading.Lock()
        self._failed = False
        self._last_watchdog: Optional[float] = None

        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if self.socket_path and usec:
            try:
                usec_i = int(usec)
                pid_ok = pid is None or pid == "" or int(pid) == self.mainpid
            except ValueError:
                self.log("warning", "ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r" % (usec, pid))
            else:
                if usec_i > 0 and pid_ok:
                    self.watchdog_usec = usec_i
                    self.watchdog_interval_s = usec_i / 2e6
        if unset_environment:
            for key in _ENV_KEYS:
                env.pop(key, None)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None and not self._failed

    @property
    def watchdog_enabled(self) -> bool:
        return self.enabled and self.watchdog_usec is not None

    # -- messages -----------------------------------------------------------------------------
    def ready(self, status: Optional[str] = None) -> bool:
        """The agent is up: adapters open, loop running (not: resources acquired)."""
        parts = ["READY=1", "MAINPID=%d" % self.mainpid]
        if status:
            parts.append("STATUS=" + _one_line(status))
        return self._send("\n".join(parts))

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by `systemctl status hanode`."""
        return self._send("STATUS=" + _one_line(text))

    def watchdog(self, now_s: Optional[float] = None) -> bool:
        """Feed systemd's service watchdog (WatchdogSec=). No-op unless it is armed for us."""
        if not self.watchdog_enabled:
            return False
        if self._send("WATCHDOG=1"):
            self.watchdogs_sent += 1
            self._last_watchdog = time.monotonic() if now_s is None else now_s
            return True
        return False

    def watchdog_due(self, now_s: float) -> bool:
        """True when `watchdog()` should be sent now (every `watchdog_interval_s`); monotonic seconds."""
        if not self.watchdog_enabled:
            return False
        if self._last_watchdog is None:
            return True
        assert self.watchdog_interval_s is not None
        return now_s - self._last_watchdog >= self.watchdog_interval_s

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time to start or stop (EXTEND_TIMEOUT_USEC, systemd >= 236): resources
        that take long to release should not get the unit SIGKILLed mid-stop."""
        return self._send("EXTEND_TIMEOUT_USEC=%d" % int(seconds * 1e6))

    def stopping(self, status: Optional[str] = None) -> bool:
        """Shutdown has begun (releasing resources); systemd stops expecting WATCHDOG=1."""
        parts = ["STOPPING=1"]
        if status:
            parts.append("STATUS=" + _one_line(status))
        return self._send("\n".join(parts))

    # -- transport ----------------------------------------------------------------------------
    def _connect(self) -> Any:
        import sdnotify  # lazily: only a process under systemd pays for it
        addr = self.socket_path or ""
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        # sdnotify's constructor reads NOTIFY_SOCKET from os.environ, which we have already
        # cleared for our children, and swallows connect errors; so connect here and hand it
        # the socket. debug=True makes its notify() raise instead of dropping errors silently.
        n = sdnotify.SystemdNotifier.__new__(sdnotify.SystemdNotifier)
        n.debug = True
        n.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            n.socket.connect(addr)
        except OSError:
            n.socket.close()
            raise
        return n

    def _send(self, message: str) -> bool:
        with self._send_lock:
            return self._send_locked(message)

    def _send_locked(self, message: str) -> bool:
        if not self.enabled:
            return False
        try:
            if self._sock is None:
                self._sock = self._connect()
            # sdnotify encodes as latin-1; systemd reads UTF-8. Pre-mapping the UTF-8 bytes to
            # latin-1 code points makes sdnotify put exactly the UTF-8 bytes on the socket.
            self._sock.notify(message.encode("utf-8", "replace").decode("latin-1"))
        except (OSError, ImportError) as e:
            self._failed = True
            self.log("warning", "cannot notify systemd via NOTIFY_SOCKET=%s: %s; notifications disabled"
                     % (self.socket_path, e))
            return False
        self.sent.append(message)
        return True

    def close(self) -> None:
        if self._sock is not None and getattr(self._sock, "socket", None) is not None:
            self._sock.socket.close()
        self._sock = None

    def info(self) -> Dict[str, Any]:
        """Plain dict for `hanode status --json`."""
        return {"notify_socket": self.socket_path, "enabled": self.enabled,
                "watchdog_usec": self.watchdog_usec, "watchdog_interval_s": self.watchdog_interval_s,
                "mainpid": self.mainpid, "watchdogs_sent": self.watchdogs_sent}
