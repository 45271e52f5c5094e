"""respawn: real child processes restarted when they die, not after exit 100, stopped on shutdown."""
import asyncio
import os

from hanode import respawn
from hanode.respawn import Respawner


def run(coro):
    return asyncio.run(coro)


def test_restarts_a_dying_child_and_respects_exit_100(tmp_path, monkeypatch):
    monkeypatch.setattr(respawn, "MIN_PAUSE_S", 0.05)
    counter = tmp_path / "starts"
    script = tmp_path / "child.sh"
    # dies twice, then says "do not restart me"
    script.write_text("#!/bin/sh\necho x >> %s\nn=$(wc -l < %s)\n[ $n -ge 3 ] && exit 100\nexit 1\n"
                      % (counter, counter))
    script.chmod(0o755)
    logs = []

    async def main():
        r = Respawner([("root", [str(script)])], lambda lvl, txt: logs.append((lvl, txt)))
        r.start()
        await asyncio.wait_for(asyncio.gather(*r.tasks), 10)
        return r

    r = run(main())
    assert r.starts == 3
    assert counter.read_text().count("x") == 3
    assert any("status 100" in t for _, t in logs)
    assert any("exited with return code 1" in t for _, t in logs)


def test_stop_terminates_children_by_pid(tmp_path):
    pidfile = tmp_path / "pid"
    script = tmp_path / "sleeper.sh"
    script.write_text("#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % pidfile)
    script.chmod(0o755)
    logs = []

    async def main():
        r = Respawner([("root", [str(script)])], lambda lvl, txt: logs.append(txt))
        r.start()
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        await r.stop(grace_s=2)
        return pid

    pid = run(main())
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_unknown_user_is_reported_not_started(tmp_path):
    logs = []

    async def main():
        r = Respawner([("no-such-user-hanode", ["/bin/true"])], lambda lvl, txt: logs.append((lvl, txt)))
        r.start()
        await asyncio.wait_for(asyncio.gather(*r.tasks), 5)
        return r

    r = run(main())
    assert r.starts == 0
    assert any(lvl == "error" and "no such user" in txt for lvl, txt in logs)
