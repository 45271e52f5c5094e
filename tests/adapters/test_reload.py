"""hanode/reload.py: what a reload may change live, what it refuses and why, read from real files.

The node's side (timings, keys and groups put in force on a live pair) is
tests/core/test_reconfigure.py; a reload of two running daemons is tests/integration/test_reload_pair.py.
"""
import os

from hanode.configdir import check_dir
from hanode.core.config import parse
from hanode.reload import Reloader, differences, revision

HA_CF = """keepalive {keepalive}
deadtime {deadtime}
warntime {warntime}
initdead 10
baud {baud}
serial /dev/ttyS0
node node1 node2
auto_failback on
{more}"""
AK = "auth 1\n1 sha1 0123456789abcdef0123\n"
HR = "node1 192.0.2.100 webapp\nnode2 192.0.2.101 other\n"


def ha_cf(keepalive="100ms", deadtime="500ms", warntime="300ms", baud=19200, more=""):
    return HA_CF.format(keepalive=keepalive, deadtime=deadtime, warntime=warntime, baud=baud, more=more)


def cfg(text=None, ak=AK, hr=HR):
    return parse(text or ha_cf(), ak, hr, me="node1")


def test_live_settings_are_applied_and_named():
    refused, changed = differences(cfg(), cfg(ha_cf(warntime="400ms", more="garp_count 3\nlogfacility local0\n"),
                                              ak="auth 2\n1 sha1 0123456789abcdef0123\n2 crc\n"))
    assert refused == []
    assert {"warntime_ms", "garp_count", "logfacility", "authkeys"} <= set(changed)


def test_what_is_set_up_at_start_is_refused_with_the_reason():
    refused, _ = differences(cfg(), cfg(ha_cf(baud=38400)))
    assert len(refused) == 1 and refused[0].startswith("baud: cannot change while hanode runs")
    refused, _ = differences(cfg(), cfg(hr="node1 192.0.2.100 webapp\n"))
    assert len(refused) == 1 and "the groups, their order or their preferred nodes changed" in refused[0]
    refused, _ = differences(cfg(), cfg(hr="node2 192.0.2.101 other\nnode1 192.0.2.100 webapp\n"))
    assert len(refused) == 1 and "restart hanode on both boxes" in refused[0]


def test_a_group_s_resources_may_change():
    refused, changed = differences(cfg(), cfg(hr="node1 192.0.2.100 webapp mysql\nnode2 192.0.2.101 other\n"))
    assert refused == [] and changed == ["group 192.0.2.100"]


def test_timings_change_only_in_steps_the_peer_on_the_old_revision_survives():
    # keepalive 300 ms against the peer's deadtime 500 ms: it would declare us dead
    refused, _ = differences(cfg(), cfg(ha_cf(keepalive="300ms", deadtime="2", warntime="1")))
    assert len(refused) == 1 and "raise deadtime first" in refused[0]
    # deadtime first, then keepalive: each step is allowed
    longer = cfg(ha_cf(deadtime="2", warntime="1"))
    assert differences(cfg(), longer)[0] == []
    assert differences(longer, cfg(ha_cf(keepalive="300ms", deadtime="2", warntime="1")))[0] == []
    # down again: a deadtime the peer's running keepalive does not fill twice is refused
    slow = cfg(ha_cf(keepalive="300ms", deadtime="2", warntime="1"))
    refused, _ = differences(slow, cfg(ha_cf(keepalive="100ms", deadtime="500ms")))
    assert len(refused) == 1 and "lower keepalive first" in refused[0]


def test_a_shorter_deadtime_under_a_hardware_watchdog_needs_a_restart():
    longer = cfg(ha_cf(deadtime="2", warntime="1", more="watchdog /dev/watchdog\n"))
    shorter = cfg(ha_cf(deadtime="1", warntime="500ms", more="watchdog /dev/watchdog\n"))
    assert differences(shorter, longer, watchdog_on=True)[0] == []
    refused, _ = differences(longer, shorter, watchdog_on=True)
    assert len(refused) == 1 and "hardware watchdog" in refused[0]


def write(d, ha=None, ak=AK, hr=HR):
    for name, text in (("ha.cf", ha or ha_cf()), ("authkeys", ak), ("haresources", hr)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(d, "authkeys"), 0o600)


def test_reloader_refuses_a_broken_file_with_file_and_line_and_keeps_the_running_config(tmp_path):
    d = str(tmp_path)
    write(d)
    applied, logged = [], []
    running, _ = check_dir(d, "node1")
    r = Reloader(running, d, applied.append, lambda level, text: logged.append((level, text)), lambda: False)
    first = r.revision
    write(d, ha=ha_cf() + "keepalive_typo 2\n")
    answer = r.reload()
    assert not answer["ok"] and applied == [] and r.cfg is running and r.revision == first
    assert answer["message"] == "configuration error, running configuration kept"
    assert any(p.startswith(os.path.join(d, "ha.cf") + ":9:") for p in answer["problems"]), answer
    assert r.status()["last_reload"]["ok"] is False and logged[-1][0] == "error"
    write(d, ha=ha_cf(warntime="400ms"))
    answer = r.reload()
    assert answer["ok"] and answer["message"] == "in force: warntime_ms", answer
    assert len(applied) == 1 and applied[0].warntime_ms == 400 and r.cfg is applied[0]
    assert r.revision == revision(d) != first and r.status()["revision"] == r.revision
