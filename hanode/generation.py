"""The boot generation, persisted: ours and the peer's last one.

Theory of operation
-------------------
Replay protection rests on the boot generation: every start uses a number
higher than any earlier start, so frames recorded before can never be
accepted again.  The number lives in ``<state_dir>/generation`` and is
replaced atomically (temp file, fsync, rename, fsync of the directory), so a
power cut leaves either the old or the new value, never a torn one.  A file
that cannot be read back is never "repaired" by guessing a small number: the
wall clock in seconds (larger than any realistic counter) is used instead,
and the operator is told.  The peer's highest generation seen is kept the same
way, so after our own restart a replay of the peer's older frames is refused.
"""
import os
import time
from typing import Callable, Optional, Tuple

GENERATION = "generation"
PEER_GENERATION = "peer_generation"
MAX_GENERATION = 0xFFFFFFFF


class StateError(Exception):
    pass


def _read_int(path: str) -> Optional[int]:
    """The number in the file, None if the file does not exist; StateError if unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read(64).strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError("cannot read %s: %s" % (path, e.strerror or e))
    try:
        value = int(raw.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise StateError("%s is corrupt (holds %r, not a number)" % (path, raw[:20]))
    if not 0 <= value <= MAX_GENERATION:
        raise StateError("%s is corrupt (%d is out of range)" % (path, value))
    return value


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


BACKUP_SUFFIX = ".bak"
CLOCK_SANE_AFTER = 1577836800   # 2020-01-01: a clock before that was never set (no RTC)


def next_generation(state_dir: str, log: Callable[[str, str], None],
                    clock: Callable[[], float] = time.time) -> int:
    """Read, increment and persist our boot generation; return the new value.

    The value is kept twice (``generation`` and ``generation.bak``, written in that order).
    If the main file is unreadable the backup is used with a margin of one (the main file may
    have been one ahead of it); if both are, the wall clock in seconds - larger than any
    counter - unless the clock was never set, in which case starting would risk reusing a
    generation and is refused with the reason."""
    path = os.path.join(state_dir, GENERATION)
    backup = path + BACKUP_SUFFIX
    try:
        previous = _read_int(path)
    except StateError as e:
        try:
            saved = _read_int(backup)
        except StateError:
            saved = None
        if saved is not None:
            previous = saved + 1
            log("error", "%s; not reusing any generation: continuing from its backup %s (%d + 1)"
                % (e, backup, saved))
        else:
            now = int(clock())
            if now < CLOCK_SANE_AFTER:
                raise StateError("%s, its backup is missing or corrupt too, and the clock is not set "
                                 "(%d s since 1970): any number could repeat an earlier generation and let "
                                 "recorded frames be replayed; write a number larger than any used before "
                                 "into %s (e.g. the current time in seconds) and start again" % (e, now, path))
            previous = now
            log("error", "%s; not reusing any generation: continuing from the clock (%d). "
                         "Replace the file if the clock is wrong." % (e, previous))
    generation = (previous or 0) + 1
    if generation > MAX_GENERATION:
        raise StateError("%s: boot generation exhausted" % path)
    try:
        write_atomically(path, "%d\n" % generation)
    except OSError as e:
        raise StateError("cannot persist the boot generation in %s: %s; refusing to start, "
                         "since a restart could then reuse it" % (path, e.strerror or e))
    try:
        write_atomically(backup, "%d\n" % generation)
    except OSError as e:
        log("warning", "cannot write the backup %s: %s" % (backup, e.strerror or e))
    return generation


def save_generation(state_dir: str, generation: int, log: Callable[[str, str], None]) -> Tuple[bool, str]:
    """Persist ``generation`` as ours (the rejoin after a lost state jumps to it; docs/protocol.md,
    "Rejoin"): main file then backup, as at start.  (False, why) if the main file cannot be
    written: the node must then not use the generation, or a restart could reuse an older one."""
    if not 0 < generation <= MAX_GENERATION:
        return False, "generation %d out of range" % generation
    path = os.path.join(state_dir, GENERATION)
    try:
        write_atomically(path, "%d\n" % generation)
    except OSError as e:
        return False, "cannot write %s: %s" % (path, e.strerror or e)
    try:
        write_atomically(path + BACKUP_SUFFIX, "%d\n" % generation)
    except OSError as e:
        log("warning", "cannot write the backup %s: %s" % (path + BACKUP_SUFFIX, e.strerror or e))
    return True, ""


def peer_generation(state_dir: str, log: Callable[[str, str], None]) -> int:
    path = os.path.join(state_dir, PEER_GENERATION)
    try:
        return _read_int(path) or 0
    except StateError as e:
        log("warning", "%s; the peer's generation floor starts from 0" % e)
        return 0


def save_peer_generation(state_dir: str, generation: int, log: Callable[[str, str], None]) -> Tuple[bool, str]:
    try:
        write_atomically(os.path.join(state_dir, PEER_GENERATION), "%d\n" % generation)
        return True, ""
    except OSError as e:
        log("warning", "cannot save the peer's generation in %s: %s" % (state_dir, e.strerror or e))
        return False, str(e)
