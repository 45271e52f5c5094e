"""The UUCP lock file of a serial device (HDB format), as minicom, getty and Heartbeat's devlock use.

``LCK..ttyS0`` in /var/lock (else /run/lock) holds the owner's PID as ten
decimal digits and a newline.  It is created complete and atomically
(written under a temporary name, then ``link``\\ ed into place), and a lock
whose owner no longer holds it is taken over.  CPython on Linux only; the
flock and TIOCEXCL that also guard the port are the backend's (``posix.py``).
"""
import errno
import os
from typing import Optional

from hanode.uart.base import SerialException

LOCK_DIRS = ("/var/lock", "/run/lock")


def default_lock_dir() -> str:
    """The first lock directory that exists, or "" (then only flock excludes)."""
    return next((d for d in LOCK_DIRS if os.path.isdir(d)), "")


def lock_name(device: str) -> str:
    """LCK..ttyS0 for /dev/ttyS0; LCK..pts_7 for /dev/pts/7 (unique, no slash)."""
    if device.startswith("/dev/"):
        return "LCK.." + device[5:].replace("/", "_")
    return "LCK.." + os.path.basename(device)


def read_lock_pid(path: str) -> Optional[int]:
    """The PID in an HDB lock file (ASCII); None if unreadable or garbage."""
    try:
        with open(path, "rb") as f:
            text = f.read(64)
    except OSError:
        return None
    try:
        return int(text.strip() or b"x")
    except ValueError:
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def holder(path: str) -> Optional[int]:
    """The PID that holds the lock file at ``path``, or None if nobody does."""
    pid = read_lock_pid(path)
    return pid if pid is not None and pid_alive(pid) else None


def take(lock_dir: str, device: str, port: str) -> str:
    """Create the lock for ``device`` (``port`` is the name the user gave, for messages);
    returns its path.  Call while holding the device's flock: then a lock file naming
    this process is a leftover of an earlier open, not a second user."""
    path = os.path.join(lock_dir, lock_name(device))
    me = os.getpid()
    tmp = os.path.join(lock_dir, "LTMP.%d" % me)
    try:
        with open(tmp, "w") as f:
            f.write("%10d\n" % me)
        os.chmod(tmp, 0o644)
        for _ in range(3):
            try:
                os.link(tmp, path)  # atomic, and the file is complete when it appears
                return path
            except FileExistsError:
                pass
            pid = holder(path)
            if pid is not None and pid != me:
                raise SerialException(errno.EBUSY, "serial port %s is locked by PID %d (lock file %s)"
                                      % (port, pid, path))
            try:   # stale (its owner is gone, or garbage), or ours from an earlier open
                os.unlink(path)
            except FileNotFoundError:
                pass
        raise SerialException(errno.EBUSY, "serial port %s: cannot take lock file %s"
                              " (it keeps reappearing)" % (port, path))
    except SerialException:
        raise
    except OSError as e:
        raise SerialException(e.errno, "serial port %s: cannot create lock file %s: %s"
                              % (port, path, e.strerror))
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def release(path: str) -> None:
    """Remove the lock file if it is still ours."""
    if read_lock_pid(path) == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass
