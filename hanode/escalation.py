"""What the daemon does when a resource group cannot be stopped: ha.cf's ``stop_failure``.

Theory of operation
-------------------
The core retries a failed release (``wants.STOP_RETRIES``) and then emits ``Escalate``: the group
may still run here, so the peer stays barred from it, and nobody serves it.  This adapter applies
the configured way out (issue 13 finding 3):

* ``fence`` (the default with a ``watchdog`` line): the ``Petter`` never pets the device again, so
  the hardware resets the box within the watchdog timeout; the peer then sees the box dead,
  probes the address and takes the group.  This is Heartbeat's answer (its ResourceManager's
  ``RecoverFromFailedStop``: "Resource STOP failure. Reboot required!", then ``reboot -nf``) and
  Pacemaker's (``on-fail=fence``, the default for stop when fencing is enabled) with the only
  fence a two-box appliance has.  The agent keeps heartbeating until the reset - also when the
  escalation came during a shutdown (no goodbye: the node waits for the reset) - so the peer
  waits rather than start a group that may still run here; the watchdog is never disarmed.
* ``reboot [command ...]``: run the command (default ``/sbin/reboot -nf``, Heartbeat's), detached.
* ``block`` (the default without a watchdog; Pacemaker's default for stop without fencing): stay
  as is.  The core keeps retrying the release once a minute; a success ends the alarm.

Each is logged as CRITICAL, put in systemd's STATUS= and in ``hanode status`` (``escalation``).
A watchdog that is configured but not open turns ``fence`` into ``block``, said so.
"""
import subprocess
import time
from typing import Any, Callable, Dict, Optional

from hanode.core.config.model import STOP_FAILURE_BLOCK, STOP_FAILURE_FENCE, STOP_FAILURE_REBOOT


class StopFailureEscalation:
    def __init__(self, cfg: Any, watchdog: Any, petter: Any, notifier: Any,
                 log: Callable[[str, str], None]) -> None:
        self.cfg = cfg
        self.watchdog = watchdog
        self.petter = petter
        self.notifier = notifier
        self.log = log
        self.state: Optional[Dict[str, Any]] = None   # what we did: group, action, at, what
        self.reboot_proc: Optional[subprocess.Popen] = None

    def fenced(self) -> bool:
        """Self-fencing: the watchdog must not be disarmed on the way out."""
        return self.state is not None and self.state["action"] == STOP_FAILURE_FENCE

    def escalate(self, group: str, reason: str) -> bool:
        """The core's Escalate output (``reason`` is logged already). True: we self-fence now."""
        if self.state is not None:
            self.log("critical", "resource group %s failed to stop too; %s already under way"
                     % (group, self.state["action"]))
            return self.fenced()
        action = self.cfg.stop_failure
        armed = self.watchdog is not None and self.watchdog.enabled
        if action == STOP_FAILURE_FENCE and not armed:
            self.log("critical", "stop_failure fence: the watchdog is not open, so there is nothing to stop "
                     "petting; blocking instead")
            action = STOP_FAILURE_BLOCK
        if action == STOP_FAILURE_FENCE:
            self.petter.fence(reason)
            timeout = self.watchdog.granted_timeout_s
            what = "SELF-FENCING: no more watchdog pets; %s resets this box within %s" % (
                self.watchdog.path, "%d s" % timeout if timeout else "the driver's timeout")
        elif action == STOP_FAILURE_REBOOT:
            what = "REBOOTING: running %s" % " ".join(self.cfg.reboot_command)
        else:
            what = ("BLOCKED: %s stays barred from it until its stop succeeds (retried once a minute) or "
                    "this box is reset; stop it by hand" % self.cfg.peer)
        self.state = {"group": group, "action": action, "at": time.strftime("%Y-%m-%d %H:%M:%S"), "what": what}
        self.log("critical", "Resource STOP failure of group %s: %s" % (group, what))
        self.notifier.status("ALARM: %s failed to stop: %s" % (group, what))
        if action == STOP_FAILURE_REBOOT:
            try:
                self.reboot_proc = subprocess.Popen(self.cfg.reboot_command, stdin=subprocess.DEVNULL,
                                                    start_new_session=True, close_fds=True)
            except OSError as e:
                self.log("critical", "Unable to force reboot: %s: %s" % (self.cfg.reboot_command[0], e))
        return self.fenced()

    def report(self, groups: Any) -> Dict[str, Any]:
        """For ``hanode status``: the configured action and what was done (``groups``: the core's
        status of each group; a blocked group whose stop worked at last ends the alarm)."""
        if self.state is not None and self.state["action"] == STOP_FAILURE_BLOCK \
                and not any(g["key"] == self.state["group"] and g["escalated"] for g in groups):
            self.log("info", "resource group %s stopped at last: stop_failure block is over" % self.state["group"])
            self.state = None
        return {"configured": self.cfg.stop_failure, "escalated": self.state}

    def close_watchdog(self) -> None:
        """On the way out: the magic close, except while self-fencing (the armed watchdog resets us)."""
        if self.watchdog is None:
            return
        if self.fenced():
            self.log("critical", "leaving watchdog %s armed: this box resets (a stop failed)" % self.watchdog.path)
        else:
            self.watchdog.close_clean()
