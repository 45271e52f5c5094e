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

``check_dir(..., system=True)`` (what ``hanode check-config`` asks for) also
checks what a usable configuration names on this machine, each problem at the
line that names it: a resource script that is missing or not executable, a
serial device that does not exist, an interface (IPaddr's ``/iface``, a
``ucast`` device) that does not exist.  Each of these makes the agent fail at
the moment it needs the thing (a group that cannot start, a link that cannot
open), so check-config reports them as errors.  ``hanode run`` does not make
these checks: a device or interface may appear after the agent starts.
"""
import errno
import os
import socket
import stat
from typing import List, Optional, Tuple

from hanode.core.config import Config, ConfigError, Problem, check
from hanode.lsb import static_problems

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


def find_script(dirs: List[str], name: str) -> Tuple[Optional[str], Optional[str]]:
    """``(path, None)``: the first regular executable file ``name`` in ``dirs`` (the one the agent
    runs); ``(None, path)``: none is, but this one exists without the execute bit; else (None, None)."""
    not_executable = None
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path, None
            not_executable = not_executable or path
    return None, not_executable


def _interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def system_problems(cfg: Config) -> List[Problem]:
    """What the configuration names on this machine and is not there (see the module docstring)."""
    ha_cf, _, haresources = cfg.paths
    problems: List[Problem] = []
    for dev in cfg.serial:
        line = cfg.lines.get(("serial", dev), 0)
        try:
            mode = os.stat(dev).st_mode
        except OSError as e:
            problems.append(Problem(ha_cf, line, "serial port [%s]: %s; hanode could not open its heartbeat "
                                                 "link (see 'ls -l /dev/ttyS* /dev/ttyUSB*' for the ports "
                                                 "this machine has)" % (dev, os.strerror(e.errno))))
            continue
        if not stat.S_ISCHR(mode):
            problems.append(Problem(ha_cf, line, "serial port [%s] is not a character device (a serial port "
                                                 "is, e.g. /dev/ttyS0)" % dev))
    for dev, _peer in cfg.ucast:
        if not _interface_exists(dev):
            problems.append(Problem(ha_cf, cfg.lines.get(("ucast", dev), 0),
                                    "ucast interface [%s] does not exist on this machine; hanode could not "
                                    "send heartbeats on it (see 'ip link' for the interfaces)" % dev))
    where = " or ".join(cfg.resource_dirs or [])
    for g in cfg.groups:
        for r in g.resources:
            if r.is_ip:
                if r.dev and not _interface_exists(r.dev):
                    problems.append(Problem(haresources, g.line,
                                            "resource [%s]: interface [%s] does not exist on this machine; "
                                            "hanode could not add %s, so the group could not start (see "
                                            "'ip link' for the interfaces)" % (r.token, r.dev, r.ip)))
                continue
            path, not_executable = find_script(cfg.resource_dirs or [], r.script)
            if path is not None:
                why = static_problems(path)
                if why:
                    problems.append(Problem(haresources, g.line, "resource [%s]: %s: %s, so %s" % (
                        r.token, path, why, "monitoring cannot check it (monitor_interval)" if cfg.monitor_interval_ms
                        else "hanode cannot tell whether it already runs before a start"), level="warning"))
                continue
            if not_executable is not None:
                message = ("resource [%s]: %s is not executable, so the group could not start; "
                           "fix: chmod +x %s" % (r.token, not_executable, not_executable))
            else:
                message = ("resource [%s]: no script named %s in %s, so the group could not start; install "
                           "it or fix the name (resource_dir in ha.cf sets where scripts are looked up)"
                           % (r.token, r.script, where))
            problems.append(Problem(haresources, g.line, message))
    return problems


def check_dir(config_dir: str = DEFAULT_DIR, me: Optional[str] = None, system: bool = False,
              refuse_example_keys: bool = False) -> Tuple[Optional[Config], List[Problem]]:
    """Like ``load`` but returns ``(config or None, problems)`` instead of raising.

    ``system`` (check-config): also check, on this machine, what a usable configuration names
    (``system_problems``), and refuse a published example key instead of warning about it.
    ``refuse_example_keys`` alone (``hanode run``, reload): refuse a published key.
    """
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
                          config_dir=os.path.abspath(config_dir),
                          refuse_example_keys=system or refuse_example_keys)
    if system and cfg is not None and not early:
        problems = problems + system_problems(cfg)
    # keep file order: each file's own problems (cannot open, permissions) first
    order = {p: i for i, p in enumerate(paths)}
    merged = sorted(early + problems, key=lambda p: (order.get(p.path, 0), p.line))
    if any(p.level == "error" for p in merged):
        return None, merged
    if cfg is not None:
        cfg.warnings = merged
    return cfg, merged


def load(config_dir: str = DEFAULT_DIR, me: Optional[str] = None, refuse_example_keys: bool = False) -> Config:
    """Read the three files; raise ConfigError listing every problem if any is an error.

    ``me`` defaults to ``os.uname().nodename`` (lower-cased), as Heartbeat's check
    against ``uname -n``.  ``refuse_example_keys`` (``hanode run``): a published key is an
    error; readers that only translate a configuration (export) keep it a warning.
    """
    cfg, problems = check_dir(config_dir, me, refuse_example_keys=refuse_example_keys)
    if cfg is None:
        raise ConfigError(problems)
    return cfg
