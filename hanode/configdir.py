"""Read a Heartbeat configuration directory (default /etc/ha.d) into a ``Config``.

Theory of operation
-------------------
``hanode.core.config`` turns text into a ``Config`` without touching a file; this
module is the thin CPython layer that reads ``ha.cf``, ``authkeys`` and
``haresources`` from the directory and adds the checks that need the file system:
a file that cannot be read, and Heartbeat's permission rule for the key file
(any group- or other-read bit on ``authkeys`` is refused, exactly as Heartbeat's
``auth.c`` does).  Those problems are merged with the parser's, so one
``ConfigError`` (or one ``check-config`` run) lists everything.  A file that
cannot be read is passed to the parser as None so the user sees why it is
missing, not a cascade of errors about its absent contents.
"""
import errno
import os
import stat
from typing import List, Optional, Tuple

from hanode.core.config import Config, ConfigError, Problem, check

FILES = ("ha.cf", "authkeys", "haresources")
DEFAULT_DIR = "/etc/ha.d"


def default_node_name() -> str:
    """What Heartbeat compares the node lines with: ``uname -n``, lower-cased."""
    return os.uname().nodename.lower()


def _read(path: str, strict: bool, problems: List[Problem]) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        hint = ""
        if e.errno == errno.ENOENT:
            hint = "; hanode needs ha.cf, authkeys and haresources there (see examples/classic)"
        problems.append(Problem(path, 0, "cannot open: %s%s" % (reason, hint)))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if strict:  # keys are bytes on the wire: a guessed decoding would give the wrong key
            line = data[: e.start].count(b"\n") + 1
            problems.append(Problem(path, line, "not valid UTF-8 (byte 0x%02x); write keys in ASCII"
                                    % data[e.start]))
            return None
        # ha.cf/haresources from older systems may carry Latin-1 comments: keep them readable
        return data.decode("utf-8", "replace")


def keyfile_problem(path: str) -> Optional[Problem]:
    """Heartbeat's only check on authkeys: no group-read and no other-read bit."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # reported by the read
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return Problem(path, 0, "Bad permissions on keyfile [%s], 600 recommended. Fix: chmod 600 %s "
                                "(the file is mode %04o; group and others must not read the keys)"
                       % (path, path, stat.S_IMODE(mode)))
    return None


def check_dir(config_dir: str = DEFAULT_DIR, me: Optional[str] = None) -> Tuple[Optional[Config], List[Problem]]:
    """Like ``load`` but returns ``(config or None, problems)`` instead of raising."""
    if me is None:
        me = default_node_name()
    paths = tuple(os.path.join(config_dir, name) for name in FILES)
    if not os.path.isdir(config_dir):
        return None, [Problem(config_dir, 0, "configuration directory does not exist (or is not a "
                                             "directory); give the one holding ha.cf, authkeys and "
                                             "haresources")]
    early: List[Problem] = []
    ha_cf = _read(paths[0], False, early)
    authkeys = _read(paths[1], True, early)
    if authkeys is not None:
        bad_mode = keyfile_problem(paths[1])
        if bad_mode is not None:
            early.append(bad_mode)
    haresources = _read(paths[2], False, early)
    cfg, problems = check(ha_cf, authkeys, haresources, me=me, paths=paths,
                          config_dir=os.path.abspath(config_dir))
    # keep file order: each file's own problems (cannot open, permissions) first
    order = {p: i for i, p in enumerate(paths)}
    merged = sorted(early + problems, key=lambda p: (order.get(p.path, 0), p.line))
    if any(p.level == "error" for p in merged):
        return None, merged
    if cfg is not None:
        cfg.warnings = merged
    return cfg, merged


def load(config_dir: str = DEFAULT_DIR, me: Optional[str] = None) -> Config:
    """Read the three files; raise ConfigError listing every problem if any is an error.

    ``me`` defaults to ``os.uname().nodename`` (lower-cased), as Heartbeat's check
    against ``uname -n``.
    """
    cfg, problems = check_dir(config_dir, me)
    if cfg is None:
        raise ConfigError(problems)
    return cfg
