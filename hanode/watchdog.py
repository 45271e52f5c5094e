"""Hardware watchdog adapter (``/dev/watchdog``) and the health gate that decides when to pet it.

Theory of operation
-------------------
Heartbeat's ``watchdog /dev/watchdog`` is a self-fence: the master process pets the device once
per keepalive, so if that process hangs or starves, the box resets after about the dead time - when
the peer declares it dead and takes the resources over. hanode keeps that contract:

* ``Watchdog.open()`` opens the device ``O_WRONLY|O_CLOEXEC`` (close-on-exec so that resource
  scripts and the daemons they start never inherit the fd: a child holding it would keep the device
  busy after hanode dies and make a restarted hanode fail with EBUSY), asks for ``timeout_s`` with
  ``WDIOC_SETTIMEOUT`` and reads back what the driver granted with ``WDIOC_GETTIMEOUT`` (drivers
  round or clamp: many hardware timers only count in steps or up to a maximum).
* ``pet()`` is ``WDIOC_KEEPALIVE`` where the driver has the ioctls, else a one-byte write (a NUL,
  as Heartbeat does). Both restart the kernel's timer; a write is also what a FIFO or regular file
  standing in for the device in tests records.
* ``close_clean()`` writes the magic ``'V'`` and closes: the driver disarms (unless the kernel was
  built or the module loaded with ``nowayout``, which we detect and warn about).
* An unclean death - ``kill -9``, a segfault, the OOM killer - needs no code: the kernel closes
  the fd without a ``'V'``, the timer stays armed and the box resets unless a restarted hanode
  reopens the device and pets it in time. Deliberately there is no ``__del__`` and no ``atexit``
  hook writing ``'V'``: a crash must not disarm the self-fence.

* ``hand_over(cover_s)`` is ``hanode restart``'s: the device stays armed across the
  re-execution (stretched to ``cover_s`` where the driver allows, so that the gap fits in it), its
  fd is made inheritable and named in ``HANODE_WATCHDOG_FD``, and ``close_clean()`` then leaves it
  open without the ``'V'``. The next agent's ``open()`` takes that fd instead of opening the device
  again (and sets its own timeout); a next agent that never comes leaves it armed: the box resets,
  the same self-fence as after ``kill -9``. ``release_handed_over()`` disarms a handed-over fd the
  new configuration no longer names.

Devices without the watchdog ioctls (a regular file, a FIFO, a character device such as a PTY)
answer ENOTTY or EINVAL; hanode then says that the driver's own timeout applies and pets by
writing. A missing or busy device is a warning and a disabled watchdog, or - with
``required=True`` - a ``WatchdogError`` that names the device and the errno.

``HealthGate`` is the rule for *when* to pet: only while the agent's loop runs on time, the core's
``tick()`` keeps running and the UART is open. A loop that is alive but whose core is wedged, or
that lost its serial line, must not keep the box from being fenced.

``Petter`` applies the rule. The agent's ticker reports each return from the core's ``tick()``
through ``core_ticked``, with how late that round woke; a round at least half an interval after
the last one is a petting round, in the ticker's own wake-up (an idle agent at keepalive 100 ms
would otherwise wake ten more times a second for the pets alone).  The Petter's task (``run``)
keeps a fallback timer 1.5 intervals after the last round, re-armed by every round: it fires
only when no tick comes, and its own lateness then says whether the *loop* runs on time (a loop
that was blocked or starved wakes it late).  A ticker that died or hangs leaves the tick stale
while the loop is fine, and the pets stop.  With nothing to pet (no device, or it failed, and no
systemd WatchdogSec) it says nothing: "not petting" is news only where a fence depends on it.
"""
import asyncio
import errno
import fcntl
import os
import platform
import stat
import struct
import sys
from typing import Any, Callable, List, Optional, Tuple

__all__ = [
    "Watchdog", "WatchdogError", "HealthGate", "Petter",
    "WDIOC_GETSUPPORT", "WDIOC_GETSTATUS", "WDIOC_GETBOOTSTATUS", "WDIOC_SETOPTIONS",
    "WDIOC_KEEPALIVE", "WDIOC_SETTIMEOUT", "WDIOC_GETTIMEOUT", "WDIOC_GETTIMELEFT",
    "WDIOF_SETTIMEOUT", "WDIOF_MAGICCLOSE", "WDIOF_KEEPALIVEPING",
]

# With the heartbeat on a loop of its own (hanode.pulse) the asyncio loop - the resource side -
# checks in with the gate this often (an idle agent then wakes it for nothing else), and the gate
# stops the pets once it has not for HOME_MAX_AGE_MS: a hung resource side resets the box too.
HOME_CHECK_MS = 2000
HOME_MAX_AGE_MS = 3 * HOME_CHECK_MS

# --- ioctl numbers, computed as <asm-generic/ioctl.h> does --------------------------------------
# Most architectures use 14 size bits and direction bits read=2/write=1; MIPS, PowerPC, SPARC and
# Alpha (common on routers and older appliances) use 13 size bits and read=2/write=4. Getting this
# wrong would make every ioctl fail with ENOTTY and silently leave the driver's default timeout.
_MACHINE = platform.machine().lower()
if _MACHINE.startswith(("mips", "ppc", "powerpc", "sparc", "alpha")):
    _IOC_SIZEBITS, _IOC_WRITE, _IOC_READ = 13, 4, 2
else:
    _IOC_SIZEBITS, _IOC_WRITE, _IOC_READ = 14, 1, 2
_IOC_NRBITS, _IOC_TYPEBITS = 8, 8
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS


def _IOC(direction: int, typ: str, nr: int, size: int) -> int:
    return ((direction << _IOC_DIRSHIFT) | (ord(typ) << _IOC_TYPESHIFT)
            | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT))


def _IOR(typ: str, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, typ, nr, size)


def _IOWR(typ: str, nr: int, size: int) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, typ, nr, size)


_INT = struct.calcsize("i")
# struct watchdog_info { __u32 options; __u32 firmware_version; __u8 identity[32]; }
_WATCHDOG_INFO = struct.Struct("=II32s")

WDIOC_GETSUPPORT = _IOR("W", 0, _WATCHDOG_INFO.size)
WDIOC_GETSTATUS = _IOR("W", 1, _INT)
WDIOC_GETBOOTSTATUS = _IOR("W", 2, _INT)
WDIOC_SETOPTIONS = _IOR("W", 4, _INT)
WDIOC_KEEPALIVE = _IOR("W", 5, _INT)
WDIOC_SETTIMEOUT = _IOWR("W", 6, _INT)
WDIOC_GETTIMEOUT = _IOR("W", 7, _INT)
WDIOC_GETTIMELEFT = _IOR("W", 10, _INT)

WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000

# What a file, FIFO or non-watchdog character device answers to a watchdog ioctl.
_NO_IOCTL = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP)

# The legacy /dev/watchdog misc device (10:130) is an alias of watchdog0.
_MISC_WATCHDOG_RDEV = os.makedev(10, 130)

LogFn = Callable[[str, str], None]


def _stderr_log(level: str, text: str) -> None:
    sys.stderr.write("hanode: %s: %s\n" % (level, text))


def _errname(num: int) -> str:
    return errno.errorcode.get(num, "errno %d" % num)


class WatchdogError(Exception):
    """The watchdog is required but cannot be used; names the device and the errno."""

    def __init__(self, device: str, err: int, message: str) -> None:
        super().__init__(message)
        self.device = device
        self.errno = err


HANDOVER_ENV = "HANODE_WATCHDOG_FD"   # the fd an agent restart hands to the next agent (hand_over)


def _take_handed_over(path: str, log: LogFn) -> Optional[int]:
    """The fd of ``path`` the previous agent handed over across its re-execution, or None."""
    raw = os.environ.pop(HANDOVER_ENV, None)
    if raw is None:
        return None
    try:
        fd = int(raw)
        st, here = os.fstat(fd), os.stat(path)
    except (ValueError, OSError):
        return None
    if (st.st_dev, st.st_ino) != (here.st_dev, here.st_ino):
        _disarm(fd, "%s (handed over, no longer configured)" % raw, log)
        return None
    os.set_inheritable(fd, False)
    return fd


def _disarm(fd: int, name: str, log: LogFn) -> None:
    try:
        os.write(fd, b"V")
        log("info", "watchdog %s closed cleanly (magic close)" % name)
    except OSError as e:
        log("error", "watchdog %s: magic close failed [%s]; it may stay armed" % (name, _errname(e.errno or 0)))
    finally:
        os.close(fd)


def release_handed_over(log: LogFn) -> None:
    """Disarm a watchdog fd a restart handed over when the new configuration has no watchdog."""
    raw = os.environ.pop(HANDOVER_ENV, None)
    if raw is not None and raw.isdigit():
        try:
            os.fstat(int(raw))
        except OSError:
            return
        _disarm(int(raw), "fd %s (handed over; ha.cf has no watchdog line now)" % raw, log)


class Watchdog:
    """One open watchdog device. Not thread-safe: the agent's loop owns it."""

    def __init__(self, path: str, timeout_s: int, required: bool = False,
                 log: Optional[LogFn] = None, sysfs: str = "/sys") -> None:
        if int(timeout_s) < 1:
            raise ValueError("watchdog timeout must be at least 1 s, got %r" % (timeout_s,))
        self.path = path
        self.timeout_s = int(timeout_s)
        self.required = required
        self.log = log or _stderr_log
        self.sysfs = sysfs
        self.fd: Optional[int] = None
        self.enabled = False
        self.granted_timeout_s: Optional[int] = None   # None: unknown (no ioctls) or not open
        self.identity: Optional[str] = None
        self.nowayout: Optional[bool] = None
        self.has_ioctls = False
        self.pets = 0
        self.failed_pets = 0
        self.handed_over = False   # hand_over(): close_clean() leaves it armed for the next agent

    # -- open ---------------------------------------------------------------------------------
    def open(self) -> bool:
        """Open and arm the device. Returns True when armed; False when disabled (not required)."""
        if self.fd is not None:
            return True
        flags = os.O_WRONLY | os.O_CLOEXEC
        fd = _take_handed_over(self.path, self.log)
        if fd is not None:
            self.log("info", "watchdog %s handed over by the previous agent: armed all along" % self.path)
        try:
            st = os.stat(self.path)
            if stat.S_ISFIFO(st.st_mode):
                # A FIFO stand-in: never let open() or a pet block the heartbeat loop on a reader.
                flags |= os.O_NONBLOCK
            if fd is None:
                fd = os.open(self.path, flags)
        except OSError as e:
            return self._unavailable(e)
        self.fd = fd
        self.enabled = True
        self.pets = 0
        self._set_timeout()
        self.nowayout = self._read_nowayout(os.fstat(fd))
        ident = " (%s)" % self.identity if self.identity else ""
        if self.granted_timeout_s is not None:
            self.log("info", "Using watchdog device: %s%s, timeout %d s"
                     % (self.path, ident, self.granted_timeout_s))
        else:
            self.log("info", "Using watchdog device: %s%s, driver's own timeout" % (self.path, ident))
        if self.nowayout:
            self.log("warning", "watchdog %s has nowayout set: even a clean stop of hanode will reset "
                     "this box (load softdog with nowayout=0 or rebuild without CONFIG_WATCHDOG_NOWAYOUT)"
                     % self.path)
        return True

    def _unavailable(self, e: OSError) -> bool:
        err = e.errno or 0
        hint = {
            errno.ENOENT: "no such device; is the driver loaded (e.g. modprobe softdog)?",
            errno.EBUSY: "already open by another process (a watchdog daemon, or systemd's "
                         "RuntimeWatchdogSec= in system.conf)",
            errno.EACCES: "permission denied; hanode must run as root to use the watchdog",
            errno.EPERM: "operation not permitted; hanode must run as root to use the watchdog",
            errno.ENXIO: "no process is reading this FIFO",
        }.get(err, e.strerror or "error")
        message = "Cannot open watchdog device: %s: %s [%s]" % (self.path, hint, _errname(err))
        if self.required:
            raise WatchdogError(self.path, err, message) from e
        self.log("warning", message + "; continuing without a watchdog")
        self.enabled = False
        return False

    def _set_timeout(self) -> None:
        fd = self.fd
        try:
            info = fcntl.ioctl(fd, WDIOC_GETSUPPORT, bytes(_WATCHDOG_INFO.size))
            options, _fw, ident = _WATCHDOG_INFO.unpack(info)
            self.identity = ident.split(b"\0", 1)[0].decode("ascii", "replace") or None
        except OSError:
            options = None
        set_err: Optional[OSError] = None
        granted_by_set: Optional[int] = None
        try:
            out = fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", self.timeout_s))
            granted_by_set = struct.unpack("i", out)[0]
        except OSError as e:
            set_err = e
        try:
            got: Optional[int] = struct.unpack("i", fcntl.ioctl(fd, WDIOC_GETTIMEOUT, bytes(_INT)))[0]
        except OSError:
            got = None

        if set_err is None:
            self.has_ioctls = True
            self.granted_timeout_s = got if got is not None else granted_by_set
            if self.granted_timeout_s != self.timeout_s:
                self.log("warning", "watchdog %s: asked for a %d s timeout, the driver granted %s s"
                         % (self.path, self.timeout_s, self.granted_timeout_s))
        elif got is not None:
            # The driver has the ioctls (GETTIMEOUT worked) but refused our value: out of range.
            self.has_ioctls = True
            self.granted_timeout_s = got
            self.log("warning", "WDIOC_SETTIMEOUT: Failed to set watchdog timer to %d seconds on %s [%s]; "
                     "the driver's timeout of %d s applies"
                     % (self.timeout_s, self.path, _errname(set_err.errno or 0), got))
        else:
            self.has_ioctls = False
            self.granted_timeout_s = None
            if set_err.errno in _NO_IOCTL:
                self.log("warning", "device %s does not support WDIOC_SETTIMEOUT; the driver's own timeout "
                         "applies (petting by writing to it)" % self.path)
            else:
                self.log("warning", "WDIOC_SETTIMEOUT on %s failed [%s]; the driver's own timeout applies "
                         "(petting by writing to it)" % (self.path, _errname(set_err.errno or 0)))
        if options is not None and self.has_ioctls and not options & WDIOF_MAGICCLOSE:
            self.log("warning", "watchdog %s does not announce magic close: closing it may not disarm it"
                     % self.path)

    def _read_nowayout(self, st: os.stat_result) -> Optional[bool]:
        if not stat.S_ISCHR(st.st_mode):
            return None
        if st.st_rdev == _MISC_WATCHDOG_RDEV:
            attr = os.path.join(self.sysfs, "class", "watchdog", "watchdog0", "nowayout")
        else:
            attr = os.path.join(self.sysfs, "dev", "char", "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)),
                                "nowayout")
        try:
            with open(attr) as f:
                return f.read().strip() == "1"
        except OSError:
            return None

    # -- pet ----------------------------------------------------------------------------------
    def pet(self) -> bool:
        """Restart the device's timer. Returns True when petted; a no-op (False) when disabled."""
        if self.fd is None:
            return False
        try:
            if self.has_ioctls:
                try:
                    fcntl.ioctl(self.fd, WDIOC_KEEPALIVE, bytes(_INT))
                except OSError as e:
                    if e.errno not in _NO_IOCTL:
                        raise
                    self.has_ioctls = False   # e.g. a driver without WDIOF_KEEPALIVEPING
                    os.write(self.fd, b"\0")
            else:
                os.write(self.fd, b"\0")
        except BlockingIOError:
            # Only a FIFO stand-in whose reader is slow gets here; a real device never blocks.
            self.failed_pets += 1
            self.log("warning", "watchdog %s: write would block; pet missed" % self.path)
            return False
        except OSError as e:
            self.failed_pets += 1
            self.log("error", "Watchdog write failure: closing %s! [%s]" % (self.path, _errname(e.errno or 0)))
            self.close_clean()
            return False
        self.pets += 1
        return True

    # -- close --------------------------------------------------------------------------------
    def hand_over(self, cover_s: int) -> None:
        """Keep the device armed for the next agent of ``hanode restart`` (module docstring)."""
        if self.fd is None:
            return
        if self.has_ioctls and (self.granted_timeout_s or 0) < cover_s:
            try:
                out = fcntl.ioctl(self.fd, WDIOC_SETTIMEOUT, struct.pack("i", cover_s))
                self.granted_timeout_s = struct.unpack("i", out)[0]
            except OSError as e:
                self.log("warning", "watchdog %s: cannot stretch the timeout to %d s for the restart [%s]: "
                         "the next agent must pet it within %s s" % (self.path, cover_s, _errname(e.errno or 0),
                                                                     self.granted_timeout_s))
        os.set_inheritable(self.fd, True)
        os.environ[HANDOVER_ENV] = str(self.fd)
        self.handed_over = True
        self.log("info", "watchdog %s stays armed for the next agent (timeout %s s)" % (
            self.path, self.granted_timeout_s if self.granted_timeout_s is not None else "the driver's"))

    def close_clean(self) -> None:
        """Magic close: write 'V' so the driver disarms, then close. Safe to call twice.
        After ``hand_over`` it leaves the device open and armed for the next agent."""
        fd, self.fd = self.fd, None
        self.enabled = False
        if fd is None:
            return
        if self.handed_over:
            self.log("info", "watchdog %s left armed for the next agent (fd %d)" % (self.path, fd))
            return
        try:
            os.write(fd, b"V")
        except OSError as e:
            self.log("error", "watchdog %s: magic close failed [%s]; it may stay armed"
                     % (self.path, _errname(e.errno or 0)))
        finally:
            os.close(fd)
        if self.nowayout:
            self.log("warning", "watchdog %s closed, but nowayout is set: the box will reset" % self.path)
        else:
            self.log("info", "watchdog %s closed cleanly (magic close)" % self.path)

    def fileno(self) -> int:
        if self.fd is None:
            raise ValueError("watchdog %s is not open" % self.path)
        return self.fd

    def time_left_s(self) -> Optional[int]:
        """Seconds until reset (WDIOC_GETTIMELEFT), or None when the driver cannot tell."""
        if self.fd is None or not self.has_ioctls:
            return None
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, WDIOC_GETTIMELEFT, bytes(_INT)))[0]
        except OSError:
            return None


class HealthGate:
    """Decides whether the agent may pet the watchdog now.

    Three facts are reported: each loop iteration and how late it woke (``note_loop``, from the
    petting task), each return from the core's ``tick()`` (``note_tick``, from the agent's ticker),
    and whether the UART is open (``uart_ok``); a fourth where the heartbeat has a loop of its own
    (hanode.pulse): that the asyncio loop, which runs the resource side, still runs
    (``note_home``, every HOME_CHECK_MS, checked once ``home_max_age_ms`` is set).
    ``healthy(now_ms)`` is True only if the last iteration was at most ``max_lateness_ms`` late,
    both the loop and the tick ran within the last ``max_age_ms``, and the asyncio loop within
    ``home_max_age_ms``. Times are monotonic ms from the
    agent's clock (the gate reads no clock itself, so it is tested with plain numbers).
    Set ``max_age_ms`` well below the watchdog timeout: a wedged agent must stop petting early
    enough that the box resets at about the dead time, not minutes later.
    """

    def __init__(self, max_lateness_ms: int = 500, max_age_ms: int = 1000, need_uart: bool = True) -> None:
        if max_lateness_ms < 0 or max_age_ms <= 0:
            raise ValueError("max_lateness_ms must be >= 0 and max_age_ms > 0")
        self.max_lateness_ms = max_lateness_ms
        self.max_age_ms = max_age_ms
        self.need_uart = need_uart
        self._last_tick: Optional[int] = None
        self._last_loop: Optional[int] = None
        self._lateness = 0
        self._uart = False
        self.home_max_age_ms: Optional[int] = None
        self._last_home: Optional[int] = None

    def note_home(self, now_ms: int) -> None:
        self._last_home = now_ms

    def note_tick(self, now_ms: int) -> None:
        self._last_tick = now_ms

    def note_loop(self, now_ms: int, lateness_ms: int) -> None:
        self._last_loop = now_ms
        self._lateness = lateness_ms

    def uart_ok(self, ok: bool) -> None:
        self._uart = bool(ok)

    def healthy(self, now_ms: int) -> Tuple[bool, str]:
        """(True, "ok") or (False, why), the why suitable for a log line."""
        if self._last_loop is None:
            return False, "agent loop has not run yet"
        if self._lateness > self.max_lateness_ms:
            return False, "agent loop late by %d ms (max %d ms)" % (self._lateness, self.max_lateness_ms)
        loop_age = now_ms - self._last_loop
        if loop_age > self.max_age_ms:
            return False, "agent loop not run for %d ms (max %d ms)" % (loop_age, self.max_age_ms)
        if self._last_tick is None:
            return False, "core tick has not run yet"
        tick_age = now_ms - self._last_tick
        if tick_age > self.max_age_ms:
            return False, "core tick not run for %d ms (max %d ms)" % (tick_age, self.max_age_ms)
        if self.need_uart and not self._uart:
            return False, "UART not open"
        if self.home_max_age_ms is not None:
            home_age = None if self._last_home is None else now_ms - self._last_home
            if home_age is None or home_age > self.home_max_age_ms:
                return False, "resource loop (asyncio) not run for %s ms (max %d ms)" % (
                    "ever" if home_age is None else home_age, self.home_max_age_ms)
        return True, "ok"


class Petter:
    """Pets the hardware watchdog and systemd's WatchdogSec about every ``every_ms``, from the
    agent's ticker (``core_ticked``) or, when no tick comes, from the fallback timer of its task
    (``run``), while ``gate`` says healthy (see the module docstring).

    ``clock`` is the agent's monotonic millisecond clock; ``uart_ok()`` says whether every serial
    port is open; ``notifier`` is a ``hanode.notify.SystemdNotifier`` (or None).
    """

    def __init__(self, gate: HealthGate, watchdog: Optional[Watchdog], notifier: Any, every_ms: int,
                 clock: Callable[[], int], uart_ok: Callable[[], bool], log: Optional[LogFn] = None) -> None:
        self.gate = gate
        self.watchdog = watchdog
        self.notifier = notifier
        self.every_ms = every_ms
        self.clock = clock
        self.uart_ok = uart_ok
        self.log = log or _stderr_log
        self.refused_since: Optional[int] = None   # start of the current run of refused pets
        self.refusals = 0
        self.fenced: Optional[str] = None   # why we self-fence: the device is never petted again
        self.home_check_ms, self.home_max_age_ms = HOME_CHECK_MS, HOME_MAX_AGE_MS   # (with ``timers``)
        self._loop: Any = None              # set while run() runs: rounds happen only then
        self._last_round = 0
        self._fallback: Any = None          # the loop timer of the fallback round
        self._fallback_at = 0
        self.fallback_rounds = 0            # rounds the fallback timer made (no tick came)

    def fence(self, reason: str) -> None:
        """Self-fence: never pet the hardware watchdog again, so it resets the box (a stop that
        kept failing, issue 13 finding 3). systemd's WatchdogSec is still petted: the agent is
        healthy, and a restart by systemd would not reset the box."""
        self.fenced = reason

    def targets(self) -> List[str]:
        """What there is to pet now: the device while it is open, systemd's watchdog while armed."""
        out = []
        if self.watchdog is not None and self.watchdog.enabled:
            out.append(self.watchdog.path)
        if self.notifier is not None and self.notifier.watchdog_enabled:
            out.append("systemd WatchdogSec")
        return out

    def core_ticked(self, now_ms: int, lateness_ms: int = 0) -> None:
        """The agent's ``on_tick`` hook: the core's ``tick()`` has just returned, ``lateness_ms``
        after its round was due; a petting round when one is due (see the module docstring)."""
        self.gate.note_tick(now_ms)
        if self._loop is not None and now_ms - self._last_round >= self.every_ms // 2:
            try:
                self._round(now_ms, lateness_ms)
            except Exception as e:   # never the ticker's problem: the fallback round tries again
                self.log("error", "petting the watchdog failed: %r" % (e,))

    def pet_now(self, now_ms: int, lateness_ms: int) -> bool:
        """One round: note the loop's wake-up, then pet every target if the gate says healthy."""
        gate = self.gate
        gate.note_loop(now_ms, lateness_ms)
        gate.uart_ok(self.uart_ok())
        targets = self.targets()
        if not targets:
            self.refused_since = None
            return False
        healthy, why = gate.healthy(now_ms)
        if not healthy:
            self.refusals += 1
            if self.refused_since is None:
                self.refused_since = now_ms
                self.log("error", "not petting the watchdog: %s (%s)" % (why, ", ".join(targets)))
            return False
        self.refused_since = None
        if self.watchdog is not None and self.watchdog.enabled and self.fenced is None:
            self.watchdog.pet()
        if self.notifier is not None and self.notifier.watchdog_enabled:
            self.notifier.watchdog()
        return True

    async def run(self, timers: Any = None) -> None:
        """Pet about every ``every_ms`` until cancelled: the rounds come from ``core_ticked``; this
        task only keeps the fallback timer for when they do not.  ``timers``: the loop that runs
        the ticker and so the fallback timer (the agent's pulse loop; default this one); this
        task then checks in with the gate every HOME_CHECK_MS for the asyncio loop."""
        home = asyncio.get_running_loop()
        self._last_round = self.clock()   # the first pet an interval from now, as before: READY first
        self._arm_fallback(self._last_round, timers or home)
        self._loop = timers or home   # (last: a round may come from the ticker's thread from now on)
        try:
            if timers is None:
                await home.create_future()   # until cancelled
            self.gate.home_max_age_ms = self.home_max_age_ms
            while True:
                self.gate.note_home(self.clock())
                await asyncio.sleep(self.home_check_ms / 1000)
        finally:
            if self._fallback is not None:
                self._fallback.cancel()
                self._fallback = None
            self._loop = None

    def _round(self, now: int, lateness: int) -> None:
        self._last_round = now
        self._arm_fallback(now, self._loop)
        self.pet_now(now, lateness)

    def _arm_fallback(self, now: int, loop: Any) -> None:
        if self._fallback is not None:
            self._fallback.cancel()
        delay = self.every_ms * 3 // 2
        self._fallback_at = now + delay
        self._fallback = loop.call_later(delay / 1000.0, self._on_fallback)

    def _on_fallback(self) -> None:
        """No round for 1.5 intervals: one now, judged by how late this timer itself woke."""
        self._fallback = None
        self.fallback_rounds += 1
        now = self.clock()
        self._round(now, max(0, now - self._fallback_at))
