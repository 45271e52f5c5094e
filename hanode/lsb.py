"""What an init script's ``status`` says, as monitoring reads it (LSB 4.1, Init Script Actions).

Theory of operation
-------------------
LSB defines the exit codes of ``status``: 0 program is running, 1 dead and
/var/run pid file exists, 2 dead and /var/lock lock file exists, 3 not running,
4 status unknown (150-199 reserved for the application).  Heartbeat's
resource.d wrappers and OCF agents say 7 (OCF_NOT_RUNNING) for "not running".
``classify`` turns a status run into one of the core's monitor results
(``hanode/core/monitor.py``):

- ``running``: exit 0 (unless the text says "not running", Heartbeat's own
  rule, or is a usage message);
- ``failed``: 1, 2, 3 or 7 - restarted in place by the core;
- ``unknown``: 4; a code LSB does not define; a usage message (the script has
  no ``status`` verb: many print their usage and exit 1, 2 or 3, which must not
  read as a crash).  Not acted on: the core says it once.

``static_problems`` is check-config's look at a script file without running it:
a text script that never mentions ``status`` has no status verb.
"""

import fnmatch
from typing import Optional, Tuple

from hanode.core.monitor import RESULT_FAILED, RESULT_RUNNING, RESULT_UNKNOWN

LSB_RUNNING = 0
LSB_NOT_RUNNING = (1, 2, 3)   # dead with a pid file, dead with a lock file, not running
LSB_UNKNOWN = 4
OCF_NOT_RUNNING = 7
_MEANING = {0: "running", 1: "dead, pid file exists", 2: "dead, lock file exists", 3: "not running",
            4: "status unknown", 7: "not running (OCF)"}
# Heartbeat's rule for a status that says "not running" whatever its exit code (ResourceManager)
NOT_RUNNING_TEXT = "*[Nn][Oo][Tt] *[Rr]unning*"
_SCRIPT_HEAD_BYTES = 65536   # what check-config reads of a script to look for its status verb


def _says_usage(text: str) -> bool:
    return "usage" in text.lower()


def classify(rc: Optional[int], stdout: str, stderr: str = "") -> Tuple[str, str]:
    """(monitor result, detail) of one status run: rc None = could not be run."""
    text = stdout.strip()
    detail = "exit %s (%s)%s" % (rc, _MEANING.get(rc, "not an LSB status code"), (": " + text[:120]) if text else "")
    if rc is None:
        return RESULT_UNKNOWN, detail
    if _says_usage(stdout) or _says_usage(stderr):
        return RESULT_UNKNOWN, "no status verb (it printed its usage; %s)" % detail
    if rc == LSB_RUNNING:
        if fnmatch.fnmatchcase(stdout, NOT_RUNNING_TEXT):
            return RESULT_FAILED, detail
        return RESULT_RUNNING, detail
    if rc in LSB_NOT_RUNNING or rc == OCF_NOT_RUNNING:
        return RESULT_FAILED, detail
    if rc < 0:
        return RESULT_UNKNOWN, "status killed by signal %d" % -rc
    return RESULT_UNKNOWN, detail


def static_problems(path: str) -> Optional[str]:
    """Why the script at ``path`` cannot answer ``status`` as LSB says, when a look at the file
    can tell (a text script that never mentions it); None otherwise (binaries, unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SCRIPT_HEAD_BYTES)
    except OSError:
        return None
    if not head.startswith(b"#!") or b"\0" in head:
        return None   # not a script we can read: we cannot tell
    if b"status" not in head:
        return "it seems to have no 'status' action (the word never appears in it)"
    return None
