"""respawn: real child processes restarted when they die, not after exit 100, stopped on shutdown."""
import asyncio
import os

import pytest

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


def _users_to_become():
    """nobody, and a user with supplementary groups if this machine has one (e.g. postgres in ssl-cert)."""
    import grp
    import pwd
    names = ["nobody"]
    for g in grp.getgrall():
        for member in g.gr_mem:
            try:
                pwd.getpwnam(member)
            except KeyError:
                continue
            if member not in names:
                names.append(member)
                return names
    return names


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a child as another user")
@pytest.mark.parametrize("user", _users_to_become())
def test_child_gets_the_users_own_groups_not_roots(user):
    """Issue 13, finding 12: a companion started as <user> had that uid but root's gid and root's
    supplementary groups. It must have exactly what a login gives the user: its gid and the
    groups initgroups(3) finds for it."""
    import pwd
    import shutil
    import tempfile
    entry = pwd.getpwnam(user)
    d = tempfile.mkdtemp(prefix="hanode-respawn-")   # pytest's tmp_path is closed to other users
    try:
        os.chmod(d, 0o777)
        out = os.path.join(d, "id")
        script = os.path.join(d, "who.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n{ id -u; id -g; id -G; } > %s\nexit 100\n" % out)
        os.chmod(script, 0o755)

        async def main():
            r = Respawner([(user, [script])], lambda lvl, txt: None)
            r.start()
            await asyncio.wait_for(asyncio.gather(*r.tasks), 10)

        run(main())
        with open(out) as f:
            uid, gid, groups = f.read().split("\n")[:3]
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert (int(uid), int(gid)) == (entry.pw_uid, entry.pw_gid)
    assert sorted(int(g) for g in groups.split()) == sorted(set(os.getgrouplist(user, entry.pw_gid)))
