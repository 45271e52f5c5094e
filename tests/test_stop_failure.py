"""hanode/escalation.py: ha.cf's stop_failure applied, with a real watchdog stand-in (a regular
file), a real Petter and a real reboot command (a script that leaves a mark)."""
import os

from hanode.core.config import parse
from hanode.escalation import StopFailureEscalation
from hanode.watchdog import HealthGate, Petter, Watchdog

AK = "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n"
HR = "node1 192.0.2.100 webapp\n"


def cfg_with(*lines):
    return parse("keepalive 100ms\ndeadtime 500ms\ninitdead 10\nserial /dev/ttyS0\nauto_failback on\n"
                 "node node1\nnode node2\n" + "".join(line + "\n" for line in lines), AK, HR, me="node1")


class Notes:
    watchdog_enabled = False

    def __init__(self):
        self.statuses = []

    def status(self, text):
        self.statuses.append(text)


def setup(tmp_path, *lines, watchdog=True):
    logs = []
    log = lambda level, text: logs.append((level, text))   # noqa: E731
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    cfg = cfg_with(*((("watchdog %s" % device,) if watchdog else ()) + lines))
    wd = None
    if watchdog:
        wd = Watchdog(str(device), cfg.watchdog_timeout_s, log=log)
        wd.open()
    notes = Notes()
    petter = Petter(HealthGate(need_uart=False), wd, notes, every_ms=100, clock=lambda: 0,
                    uart_ok=lambda: True, log=log)
    return cfg, wd, petter, notes, logs, device, StopFailureEscalation(cfg, wd, petter, notes, log)


def test_fence_stops_the_pets_and_leaves_the_watchdog_armed(tmp_path):
    cfg, wd, petter, notes, logs, device, esc = setup(tmp_path)
    petter.core_ticked(1000)
    assert petter.pet_now(1000, 0) and device.read_bytes() == b"\0"
    assert esc.escalate("192.0.2.100", "ALARM: ...") is True   # self-fencing now
    petter.core_ticked(1100)
    petter.pet_now(1100, 0)
    assert device.read_bytes() == b"\0", "petted after the self-fence"
    assert ("critical", "Resource STOP failure of group 192.0.2.100: SELF-FENCING: no more watchdog pets; "
            "%s resets this box within the driver's timeout" % device) in logs
    assert notes.statuses[-1].startswith("ALARM: 192.0.2.100 failed to stop: SELF-FENCING")
    esc.close_watchdog()
    assert b"V" not in device.read_bytes() and esc.fenced()
    assert esc.report([])["escalated"]["action"] == "fence"


def test_fence_without_an_open_watchdog_blocks_and_says_so(tmp_path):
    cfg, wd, petter, notes, logs, device, esc = setup(tmp_path)
    wd.close_clean()
    assert esc.escalate("192.0.2.100", "ALARM") is False
    assert esc.state["action"] == "block"
    assert any("the watchdog is not open" in text for _level, text in logs)


def test_block_ends_when_the_core_reports_the_stop_worked(tmp_path):
    cfg, wd, petter, notes, logs, device, esc = setup(tmp_path, watchdog=False)
    assert cfg.stop_failure == "block"
    assert esc.escalate("192.0.2.100", "ALARM") is False
    still = [{"key": "192.0.2.100", "escalated": True}]
    assert esc.report(still)["escalated"]["what"].startswith("BLOCKED: node2 stays barred")
    assert esc.report([{"key": "192.0.2.100", "escalated": False}]) == {"configured": "block", "escalated": None}


def test_reboot_runs_the_configured_command(tmp_path):
    mark = tmp_path / "rebooted"
    command = tmp_path / "reset-box"
    command.write_text("#!/bin/sh\necho \"$@\" > %s\n" % mark)
    os.chmod(command, 0o755)
    cfg, wd, petter, notes, logs, device, esc = setup(tmp_path, "stop_failure reboot %s -nf" % command,
                                                      watchdog=False)
    esc.escalate("192.0.2.100", "ALARM")
    esc.reboot_proc.wait(10)
    assert mark.read_text() == "-nf\n"
    assert ("critical", "Resource STOP failure of group 192.0.2.100: REBOOTING: running %s -nf" % command) in logs
    esc.escalate("other", "ALARM")   # once is enough
    assert any("already under way" in text for _level, text in logs)
