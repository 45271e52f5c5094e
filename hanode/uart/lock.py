"""The UUCP lock file of a serial device (HDB format), as minicom, getty and Heartbeat's devlock use.

``LCK..ttyS0`` in /var/lock (else /run/lock) holds the owner's PID as ten
decimal digits and a newline.  It is created complete and atomically
(written under a temporary name, then ``link``\\ ed into place), and a lock
whose owner no longer holds it (gone, a zombie, or a PID reused by a process
that does not have the device open: ``holds_device``) is taken over.  CPython on Linux only; the
flock and TIOCEXCL that also guard the port are the backend's (``posix.py``).
"""
import errno
import os
import stat
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


def holds_device(pid: int, rdev: int) -> bool:
    """Whether process ``pid`` holds the device ``rdev``: it runs (a zombie or a dying
    process does not: ``kill(pid, 0)`` succeeds on a zombie until its parent reaps it,
    which made a restart right after ``kill -9`` fail), and it has the device open (a
    PID reused by an unrelated process has not).  Whoever really holds a port has it
    open - hanode, minicom, getty alike - which is why the test is the open file and
    not the command name.  Where /proc cannot tell (another user's process), a
    running process is taken to hold it."""
    if pid <= 0:
        return False
    proc = "/proc/%d" % pid
    try:
        with open(proc + "/stat", "rb") as f:
            stat_line = f.read()
    except FileNotFoundError:
        return False
    except OSError:   # no /proc: only whether it exists can be known
        return _exists(pid)
    state = stat_line.rsplit(b")", 1)[-1].split()[:1]   # the name in (...) may hold anything
    if state in ([b"Z"], [b"X"], [b"x"]):
        return False
    try:
        fds = os.listdir(proc + "/fd")
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    for fd in fds:
        try:
            st = os.stat("%s/fd/%s" % (proc, fd))
        except OSError:
            continue   # closed meanwhile, or a socket's anon inode
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
            return True
    return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(path: str, rdev: int) -> Optional[int]:
    """The PID that holds the lock file at ``path`` for device ``rdev``, or None if nobody does."""
    pid = read_lock_pid(path)
    return pid if pid is not None and holds_device(pid, rdev) else None


def take(lock_dir: str, device: str, rdev: int, port: str) -> str:
    """Create the lock for ``device`` (its real path and ``rdev``; ``port`` is the name
    the user gave, for messages); returns its path.  Call while holding the device's flock: then a lock file naming
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
            pid = holder(path, rdev)
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
