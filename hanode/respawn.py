"""ha.cf ``respawn <user> <program> [args]``: companion processes kept running.

Theory of operation
-------------------
Heartbeat starts each respawn program with itself, as the named user, and
starts it again whenever it exits - unless it exits with status 100, which
means "do not restart me".  hanode does the same, with two additions a
headless box needs: a program that keeps dying is restarted with a growing
pause (1 s doubling to 60 s, reset after a minute of good running) instead of
in a tight loop, and every start and exit is logged with the status.  On
shutdown the children get SIGTERM (then SIGKILL after a grace period), by PID.
A child runs with the user's identity as a login gives it - uid, primary
group and supplementary groups (what initgroups(3) sets) - never with any of
hanode's own root groups.
"""
import asyncio
import os
import pwd
import signal
from typing import Any, Callable, Dict, List, Optional, Tuple

NO_RESTART = 100
MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 60.0
GOOD_RUN_S = 60.0


class Respawner:
    def __init__(self, entries: List[Tuple[str, List[str]]], log: Callable[[str, str], None],
                 env: Optional[dict] = None) -> None:
        self.entries = entries
        self.log = log
        self.env = env
        self.tasks: List["asyncio.Task[Any]"] = []
        self.procs: List[asyncio.subprocess.Process] = []
        self.stopping = False
        self.starts = 0

    def start(self) -> None:
        for user, argv in self.entries:
            self.tasks.append(asyncio.ensure_future(self._keep(user, argv)))

    async def _keep(self, user: str, argv: List[str]) -> None:
        pause = MIN_PAUSE_S
        what = " ".join(argv)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            self.log("error", "respawn %s %s: no such user [%s]; not started" % (user, what, user))
            return
        uid, gid = entry.pw_uid, entry.pw_gid
        become: Dict[str, Any] = {}
        if uid != os.getuid():
            # what initgroups(3) + setgid + setuid do at login, in that order, in the child
            become = {"user": uid, "group": gid, "extra_groups": os.getgrouplist(user, gid)}
        else:
            gid = os.getgid()
        while not self.stopping:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True, **become)
            except OSError as e:
                self.log("error", "respawn %s: cannot start: %s" % (what, e))
                rc: Optional[int] = None
            else:
                self.starts += 1
                self.procs.append(proc)
                self.log("info", "Starting child client \"%s\" (%d,%d) pid %d" % (what, uid, gid, proc.pid))
                rc = await proc.wait()
                self.procs.remove(proc)
                if self.stopping:
                    return
                if rc == NO_RESTART:
                    self.log("info", "respawn %s: exited with status 100: not restarting it" % what)
                    return
                self.log("warning", "Managed %s process %d exited with return code %d" % (what, proc.pid, rc))
            if loop.time() - started >= GOOD_RUN_S:
                pause = MIN_PAUSE_S
            self.log("info", "respawn %s: restarting in %.0f s" % (what, pause))
            await asyncio.sleep(pause)
            pause = min(MAX_PAUSE_S, pause * 2)

    async def stop(self, grace_s: float = 5.0) -> None:
        self.stopping = True
        for proc in list(self.procs):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in list(self.procs):
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


def start_companions(respawn: List[Tuple[str, List[str]]], log: Callable[[str, str], None]) -> Optional[Respawner]:
    """Start ha.cf's respawn companions; None when there are none.  A respawn line naming hanode
    itself is for the init script (S45hanode supervises us): starting it here would run a second
    hanode."""
    companions = [(user, argv) for user, argv in respawn
                  if not argv or os.path.basename(argv[0]) != "hanode"]
    if not companions:
        return None
    respawner = Respawner(companions, log)
    respawner.start()
    return respawner
