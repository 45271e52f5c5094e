"""Tests of hanode.core.config: Heartbeat's ha.cf / authkeys / haresources.

Plain ``test_*`` functions with ``assert`` and no pytest imports: this module also
runs under MicroPython (which has no pytest), so it uses only what both have.
"""
import json

from hanode.core.config import (
    BAUD_RATES, ConfigError, Problem, check, parse, parse_bool, parse_ipv4, parse_time_ms,
)

# A minimal config that is clean: no problems at all (lines 1-4 of ha.cf).
HA = "serial /dev/ttyS0\nnode node1\nnode node2\nauto_failback on\n"
AK = "auth 1\n1 sha1 0123456789abcdef-secret\n"
HR = "node1 192.0.2.100 httpd\n"
SECRET = "0123456789abcdef-secret"


def problems(ha=HA, ak=AK, hr=HR, me="node1"):
    return check(ha, ak, hr, me=me)[1]


def errors(ha=HA, ak=AK, hr=HR, me="node1"):
    return [p for p in problems(ha, ak, hr, me) if p.level == "error"]


def warnings(ha=HA, ak=AK, hr=HR, me="node1"):
    return [p for p in problems(ha, ak, hr, me) if p.level == "warning"]


def cfg_with(*lines):
    """Parse the clean config plus extra ha.cf lines (the first extra line is line 5)."""
    return parse(HA + "".join([ln + "\n" for ln in lines]), AK, HR, me="node1")


def probs_with(*lines):
    return problems(HA + "".join([ln + "\n" for ln in lines]))


def find(probs, level, fragment, line=None, path=None):
    """The one problem of this level whose message contains fragment (and is on that line)."""
    hits = [p for p in probs if p.level == level and fragment in p.message
            and (line is None or p.line == line) and (path is None or p.path.endswith(path))]
    assert len(hits) == 1, "expected one %s with %r (line %r), got %r" % (level, fragment, line, probs)
    return hits[0]


def extra_names(cfg):
    return [n for (n, _) in cfg.extra]


# ----------------------------------------------------------------------------- value syntax

def test_time_syntax_table_matches_cl_get_msec():
    table = [
        ("2", 2000), ("0.5", 500), ("1500ms", 1500), ("1500 ms", 1500), ("501us", 1),
        ("499us", 0), ("500us", 1), ("1500usec", 2), ("10msec", 10), ("5MS", 5), ("7Us", 0),
        (" 3 ", 3000), (".5", 500), ("5.", 5000), ("0", 0), ("0.0005", 1), ("0.0004", 0),
        ("1.2345", 1235), ("1.2344", 1234), ("30", 30000), ("100ms", 100), ("1500\tms", 1500),
        ("0.25", 250), ("120", 120000),
    ]
    for text, want in table:
        got = parse_time_ms(text)
        assert got == want, "%r -> %r, want %r" % (text, got, want)


def test_time_syntax_rejects_everything_else():
    for text in ["", " ", "ms", "-1", "+1", "1e3", "1.2.3", "1s", "1 sec", "5 m s", "abc", ".",
                 "1,5", "2 2", "ms5", "0x10", "1h", "1 msx", None, 5]:
        assert parse_time_ms(text) is None, repr(text)


def test_booleans_as_cl_str_to_boolean():
    for t in ["true", "on", "yes", "y", "1", "TRUE", "On", "YES", "Y"]:
        assert parse_bool(t) is True, t
    for f in ["false", "off", "no", "n", "0", "FALSE", "Off", "No", "N"]:
        assert parse_bool(f) is False, f
    for x in ["maybe", "2", "", "enabled", "t", "f"]:
        assert parse_bool(x) is None, x


def test_ipv4_syntax():
    assert parse_ipv4("192.0.2.1") == "192.0.2.1"
    assert parse_ipv4("0.0.0.0") == "0.0.0.0"
    for bad in ["192.0.2", "192.0.2.256", "192.0.2.01", "a.b.c.d", "192.0.2.1.5", "", "1..2.3"]:
        assert parse_ipv4(bad) is None, bad


# ----------------------------------------------------------------------------- Problem / ConfigError

def test_problem_format():
    assert str(Problem("/etc/ha.d/ha.cf", 7, "bad")) == "/etc/ha.d/ha.cf:7: error: bad"
    assert str(Problem("/etc/ha.d/ha.cf", 0, "bad", "warning")) == "/etc/ha.d/ha.cf: warning: bad"
    d = Problem("x", 3, "m", "warning").to_dict()
    assert d["path"] == "x" and d["line"] == 3 and d["level"] == "warning" and d["message"] == "m"


def test_clean_config_has_no_problems_and_heartbeat_defaults():
    cfg, probs = check(HA, AK, HR, me="node1")
    assert probs == []
    assert cfg.keepalive_ms == 1000
    assert cfg.deadtime_ms == 30000
    assert cfg.warntime_ms == 15000
    assert cfg.initdead_ms == 30000
    assert cfg.udpport == 694
    assert cfg.baud == 19200
    assert cfg.realtime is True and cfg.rtprio is None and cfg.debug == 0 and cfg.crm is False
    assert cfg.watchdog is None and cfg.watchdog_timeout_s == 31
    assert cfg.use_logd is True  # Heartbeat: "No log entry found in ha.cf -- use logd"
    assert cfg.vip_probe is True and cfg.probe_count == 3 and cfg.probe_interval_ms == 5
    assert cfg.probe_wait_ms == 10 and cfg.garp_count == 5 and cfg.garp_interval_ms == 200
    assert cfg.state_dir == "/var/lib/hanode" and cfg.control_socket == "/run/hanode/control.sock"
    assert cfg.resource_dirs == ["/etc/ha.d/resource.d", "/etc/init.d"]
    assert cfg.resource_timeout_ms == 30000
    assert cfg.me == "node1" and cfg.peer == "node2"
    assert cfg.warnings == [] and cfg.extra == []


def test_all_problems_of_all_three_files_are_raised_together():
    ha = "baud 12345\nnode node1 node2\nserial /dev/ttyS0\nkeepalive 2\ndeadtime 3\nbogus 1\n"
    ak = "auth 7\n1 crc key\n2 sha1\n"
    hr = "node3 192.0.2.300 httpd\nnode1 x\nnode1 x\n"
    try:
        parse(ha, ak, hr, me="node1")
        assert False, "no ConfigError"
    except ConfigError as e:
        got = [(p.path.split("/")[-1], p.line, p.level) for p in e.problems]
        # file order, then line order; every file fully parsed
        assert got == sorted(got, key=lambda t: (["ha.cf", "authkeys", "haresources"].index(t[0]), t[1]))
        find(e.problems, "error", "invalid baud rate [12345]", 1)
        find(e.problems, "error", "Dead time [3000 ms] is too small compared to keepalive [2000 ms]", 5)
        find(e.problems, "error", "unknown directive [bogus]", 6)
        find(e.problems, "error", "Auth method [crc] doesn't use a key", 2, "authkeys")
        find(e.problems, "error", "Auth method [sha1] requires a key", 3, "authkeys")
        find(e.problems, "error", "Auth Key [7] not found", 1, "authkeys")
        find(e.problems, "error", "preferred node [node3] is not a node in ha.cf", 1, "haresources")
        find(e.problems, "error", "[192.0.2.300] is not an IPv4 address", 1, "haresources")
        find(e.problems, "error", "group key [x] is already used by the group on line 2", 3, "haresources")
        assert e.path == "/etc/ha.d/ha.cf" and e.line == 1 and "12345" in e.message
        assert str(e).split("\n") == [str(p) for p in e.problems]


def test_only_warnings_do_not_raise_and_are_kept():
    cfg = parse(HA + "bcast eth1\n", AK, HR, me="node1")
    assert [p.line for p in cfg.warnings] == [5]
    assert "bcast" in cfg.warnings[0].message


def test_paths_name_the_files_in_messages():
    probs = check("", "", "node1\n", me=None, paths=("/x/ha.cf", "/x/authkeys", "/x/haresources"))[1]
    assert {p.path for p in probs} == {"/x/ha.cf", "/x/authkeys", "/x/haresources"}
    cfg = parse(HA, AK, HR, paths=("/cfg/ha.cf", "/cfg/authkeys", "/cfg/haresources"))
    assert cfg.resource_dirs == ["/cfg/resource.d", "/etc/init.d"]


def test_unreadable_file_passed_as_none_skips_its_checks():
    cfg, probs = check(HA, None, HR, me="node1")
    assert probs == [] and cfg.auth_keys == {}
    cfg, probs = check(None, AK, HR, me="node1")
    assert probs == [] and cfg.groups[0].preferred == "node1"  # no node list to check against


# ----------------------------------------------------------------------------- ha.cf parsing rules

def test_comments_anywhere_blank_lines_and_crlf():
    ha = "# header\r\n\r\n  serial /dev/ttyS0 # the cable\r\nnode node1#node9\r\nnode node2\r\nauto_failback on#x\r\n"
    cfg = parse(ha, AK, HR, me="node1")
    assert cfg.serial == ["/dev/ttyS0"] and cfg.nodes == ["node1", "node2"] and cfg.auto_failback == "on"


def test_directive_names_are_case_insensitive():
    assert cfg_with("KeepAlive 2").keepalive_ms == 2000


def test_a_typo_of_a_directive_is_an_error_that_names_the_directive():
    # finding 9: 'deadtim 500ms' used to leave the default 30 s dead time in force with a warning
    for typo, meant in [("deadtim 500ms", "deadtime"), ("deadtme 10", "deadtime"), ("keepalvie 1", "keepalive"),
                        ("auto_failbak on", "auto_failback"), ("Warntme 5", "warntime")]:
        p = find(probs_with(typo), "error", "unknown directive [%s]" % typo.split()[0], 5)
        assert "did you mean [%s]?" % meant in p.message, p
        assert "Heartbeat refuses it too: Illegal directive" in p.message, p
        assert check(HA + typo + "\n", AK, HR, me="node1")[0] is None


def test_a_far_off_unknown_directive_is_an_error_too():
    # Heartbeat's parse_config counts every unknown directive as an error and does not start
    p = find(probs_with("frobnicate 1"), "error", "unknown directive [frobnicate]", 5)
    assert "did you mean" not in p.message and "neither Heartbeat nor hanode has it" in p.message


def test_a_garbled_line_is_an_error():
    p = find(probs_with("deadtime=500ms"), "error", "[deadtime=500ms] is not a directive", 5)
    assert "'deadtime 500ms'" in p.message
    p = find(probs_with("keepalive:2"), "error", "[keepalive:2] is not a directive", 5)
    assert "'keepalive 2'" in p.message
    p = find(probs_with("\x01\x02garbage 5"), "error", "garbled line: [\\x01\\x02garbage]", 5)
    assert "letters, digits and '_'" in p.message
    # a very long word is cut in the message, and still costs no more than a short one to judge
    p = find(probs_with("x" * 4000), "error", "unknown directive [" + "x" * 40 + "...]", 5)


def test_a_group_without_an_address_on_a_serial_only_pair_is_warned_about():
    # issue 13 finding 8: nothing probes such a group, so a pulled cable runs it on both boxes
    hr = "node1 192.0.2.100 httpd\nnode2 nfs::/srv\nnode2 IPaddr::192.0.2.101 db\n"
    probs = problems(hr=hr)
    p = find(probs, "warning", "group [nfs::/srv] has no IP address", 2, "haresources")
    assert "both start the group" in p.message
    assert "'ucast <interface> <peer address>'" in p.message and "'node2 192.0.2.100 nfs::/srv'" in p.message
    assert len(probs) == 1      # the groups with an address are probed: no warning for them
    # a LAN path (ucast) keeps the pair in touch when the cable is pulled: no warning
    assert problems(ha=HA + "ucast eth1 192.0.2.2\n", hr=hr) == []
    # without ha.cf the media are unknown: no guess
    assert check(None, AK, hr, me="node1")[1] == []
    # a line with an error gets that error only
    got = [(p.line, p.level) for p in problems(hr="node1 x\nnode1 x\nnode3 y\nnode1 z 192.0.2.300\n")]
    assert got == [(1, "warning"), (2, "error"), (3, "error"), (4, "error")], got


def test_directive_without_value_is_an_error():
    find(probs_with("keepalive"), "error", "keepalive needs a value", 5)


def test_repeated_scalar_warns_and_last_wins():
    probs = probs_with("keepalive 2", "keepalive 3")
    find(probs, "warning", "keepalive given again (first on line 5)", 6)
    assert cfg_with("keepalive 2", "keepalive 3").keepalive_ms == 3000


def test_several_values_for_one_scalar_apply_in_turn():
    cfg = cfg_with("keepalive 1 2")
    assert cfg.keepalive_ms == 2000
    find(cfg.warnings, "warning", "keepalive takes one value but the line has 2", 5)
    assert cfg_with("keepalive 1500 ms").keepalive_ms == 1500  # blanks before the unit are fine
    assert cfg_with("keepalive 1500 ms").warnings == []


def test_timing_directives():
    cfg = cfg_with("keepalive 200ms", "warntime 1", "deadtime 2.5", "initdead 12")
    assert (cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms) == (200, 1000, 2500, 12000)
    find(probs_with("deadtime 3x"), "error", "invalid time [3x] for deadtime", 5)


def test_warntime_defaults_to_half_deadtime():
    assert cfg_with("deadtime 15").warntime_ms == 7500


def test_initdead_default_rule():
    # deadtime > 10 s: initdead = deadtime; < 6 s: 12 s; otherwise 2 x deadtime
    assert cfg_with("deadtime 20").initdead_ms == 20000
    assert cfg_with("deadtime 10").initdead_ms == 20000
    assert cfg_with("deadtime 8").initdead_ms == 16000
    assert cfg_with("deadtime 6").initdead_ms == 12000
    assert cfg_with("deadtime 5").initdead_ms == 12000
    assert cfg_with("keepalive 100ms", "deadtime 500ms").initdead_ms == 12000


def test_udpport():
    assert cfg_with("udpport 1694").udpport == 1694
    find(probs_with("udpport 70000"), "error", "invalid udpport [70000]", 5)
    find(probs_with("udpport x"), "error", "invalid udpport [x]", 5)
    p = find(probs_with("ucast eth1 192.0.2.2", "udpport 1694"), "warning",
             "udpport setting must precede media statements", 6)
    assert "ucast on line 5" in p.message


def test_baud_rates():
    for rate in BAUD_RATES:
        assert parse("baud %d\n" % rate + HA, AK, HR, me="node1").baud == rate
    p = find(problems("baud 12345\n" + HA), "error", "invalid baud rate [12345]", 1)
    assert p.message == "invalid baud rate [12345]; use one of 9600 19200 38400 57600 115200 230400 460800"
    find(problems("baud fast\n" + HA), "error", "invalid baud rate [fast]", 1)


def test_baud_twice_is_an_error_as_in_heartbeat():
    p = find(problems("baud 19200\nbaud 38400\n" + HA), "error", "Baudrate multiply specified", 2)
    assert "first on line 1" in p.message and "only once" in p.message
    find(problems("baud 19200 38400\n" + HA), "error", "Baudrate multiply specified", 1)


def test_baud_after_serial_warns_and_applies_to_all_serial_lines():
    cfg = cfg_with("baud 38400")
    p = find(cfg.warnings, "warning", "baud setting must precede media statements", 5)
    assert "serial on line 1" in p.message and "every serial line" in p.message
    assert cfg.baud == 38400
    assert parse("baud 38400\n" + HA, AK, HR, me="node1").warnings == []


def test_serial_several_per_line_and_several_lines():
    cfg = cfg_with("serial /dev/ttyS1 /dev/ttyUSB0", "serial /dev/ttyS2")
    assert cfg.serial == ["/dev/ttyS0", "/dev/ttyS1", "/dev/ttyUSB0", "/dev/ttyS2"]
    find(probs_with("serial ttyS1"), "error", "serial port [ttyS1] must be an absolute device path", 5)
    find(probs_with("serial /dev/ttyS0"), "warning", "serial port [/dev/ttyS0] is listed twice", 5)


def test_bcast_is_read_but_not_used():
    cfg = cfg_with("bcast eth0 eth1")
    assert cfg.bcast == ["eth0", "eth1"]
    find(cfg.warnings, "warning", "bcast media are read but not used", 5)


def test_ucast_is_the_udp_path():
    cfg = cfg_with("ucast eth1 192.0.2.2", "ucast eth1 192.0.2.1")
    assert cfg.ucast == [("eth1", "192.0.2.2"), ("eth1", "192.0.2.1")]
    assert cfg.warnings == []
    find(probs_with("ucast eth1"), "error", "ucast needs 2 values, got 1", 5)
    find(probs_with("ucast eth1 peer.example"), "error", "ucast peer [peer.example] is not an IPv4 address", 5)


def test_ucast_alone_is_a_usable_medium():
    cfg = parse("ucast eth1 192.0.2.2\nnode node1 node2\nauto_failback off\n", AK, HR, me="node2")
    assert cfg.serial == [] and cfg.peer == "node1"


def test_mcast():
    cfg = cfg_with("mcast eth0 225.0.0.1 694 1 0")
    assert cfg.mcast == [("eth0", "225.0.0.1", 694, 1, 0)]
    find(cfg.warnings, "warning", "mcast media are read but not used", 5)
    probs = probs_with("mcast eth0 192.0.2.1 0 0 2")
    find(probs, "error", "mcast group [192.0.2.1] is not an IPv4 multicast address", 5)
    find(probs, "error", "mcast port [0]", 5)
    find(probs, "error", "mcast ttl [0]", 5)
    find(probs, "error", "mcast loop [2]", 5)
    find(probs_with("mcast eth0 225.0.0.1"), "error", "mcast needs 5 values, got 2", 5)


def test_ipv6_media_are_kept_but_unused():
    cfg = cfg_with("mcast6 eth0 ff02::1 694 1 0", "ucast6 eth0 fe80::1")
    assert cfg.extra == [("mcast6", "eth0 ff02::1 694 1 0"), ("ucast6", "eth0 fe80::1")]
    find(cfg.warnings, "warning", "not used", 5)
    find(cfg.warnings, "warning", "not used", 6)


def test_node_several_per_line_lower_cased_in_file_order():
    cfg = parse("serial /dev/ttyS0\nnode Beta ALPHA\nauto_failback on\n", AK, "beta 192.0.2.100\n", me="Alpha")
    assert cfg.nodes == ["beta", "alpha"]
    assert cfg.me == "alpha" and cfg.peer == "beta"
    assert cfg.node_index("alpha") == 0 and cfg.node_index("BETA") == 1
    find(probs_with("node NODE1"), "warning", "node [node1] is listed twice (first on line 2)", 5)


def test_auto_failback_values():
    for value, want in [("on", "on"), ("off", "off"), ("legacy", "legacy"), ("yes", "on"), ("0", "off"),
                        ("LEGACY", "legacy"), ("True", "on")]:
        cfg = parse("serial /dev/ttyS0\nnode node1 node2\nauto_failback %s\n" % value, AK, HR, me="node1")
        assert cfg.auto_failback == want, value
        assert cfg.warnings == [], value
    p = find(problems("serial /dev/ttyS0\nnode node1 node2\nauto_failback sometimes\n"), "error",
             "invalid auto_failback [sometimes]", 3)
    assert "on, off or legacy" in p.message


def test_missing_auto_failback_means_legacy_with_heartbeats_three_lines():
    cfg = parse("serial /dev/ttyS0\nnode node1 node2\n", AK, HR, me="node1")
    assert cfg.auto_failback == "legacy"
    p = find(cfg.warnings, "warning", "Deprecated 'legacy' auto_failback option selected.", 0)
    assert "Please convert to 'auto_failback on'." in p.message
    assert "See documentation for conversion details." in p.message


def test_nice_failback_is_obsolete_and_mapped_as_heartbeat_does():
    cfg = parse("serial /dev/ttyS0\nnode node1 node2\nnice_failback on\n", AK, HR, me="node1")
    assert cfg.auto_failback == "off"
    p = find(cfg.warnings, "warning", "nice_failback flag is obsolete", 3)
    assert "auto_failback off" in p.message
    assert len(cfg.warnings) == 1  # no "legacy" warning: the mapping sets auto_failback
    cfg = parse("serial /dev/ttyS0\nnode node1 node2\nnice_failback off\n", AK, HR, me="node1")
    assert cfg.auto_failback == "legacy"
    find(problems("serial /dev/ttyS0\nnode node1 node2\nnice_failback perhaps\n"), "error",
         "invalid nice_failback [perhaps]", 3)


def test_autojoin_must_be_none():
    cfg = cfg_with("autojoin none")
    assert cfg.extra == [("autojoin", "none")] and cfg.warnings == []
    for v in ("other", "any"):
        p = find(probs_with("autojoin " + v), "error", "R1 style resource management conflicts with autojoin", 5)
        assert "autojoin none" in p.message
    find(probs_with("autojoin some"), "error", "invalid autojoin [some]", 5)


def test_watchdog():
    cfg = cfg_with("watchdog /dev/watchdog")
    assert cfg.watchdog == "/dev/watchdog"
    find(probs_with("watchdog /dev/watchdog", "watchdog /dev/watchdog1"), "error",
         "Watchdog device multiply specified", 6)
    find(probs_with("watchdog watchdog"), "error", "watchdog device [watchdog] must be an absolute path", 5)


def test_watchdog_timeout_default_is_heartbeats():
    # ceil((deadtime_ms + 10) / 1000)
    assert cfg_with("deadtime 15").watchdog_timeout_s == 16
    assert cfg_with("deadtime 30").watchdog_timeout_s == 31
    assert cfg_with("keepalive 100ms", "deadtime 500ms", "initdead 10").watchdog_timeout_s == 1
    assert cfg_with("keepalive 100ms", "deadtime 990ms", "initdead 10").watchdog_timeout_s == 1
    assert cfg_with("keepalive 100ms", "deadtime 991ms", "initdead 10").watchdog_timeout_s == 2


def test_watchdog_timeout_extension():
    cfg = cfg_with("watchdog /dev/watchdog", "watchdog_timeout 20")
    assert cfg.watchdog_timeout_s == 20 and cfg.warnings == []
    find(probs_with("watchdog /dev/watchdog", "watchdog_timeout 60"), "warning",
         "watchdog_timeout [60 s] is longer than deadtime", 6)
    find(probs_with("watchdog_timeout 20"), "warning", "watchdog_timeout has no effect without", 5)
    find(probs_with("watchdog_timeout 0"), "error", "invalid number [0] for watchdog_timeout", 5)


def test_watchdog_required_switch():
    assert cfg_with("watchdog /dev/watchdog").watchdog_required is False
    assert cfg_with("watchdog /dev/watchdog", "watchdog_required on").watchdog_required is True
    find(probs_with("watchdog_required on"), "error", "watchdog_required on needs a watchdog", 5)
    find(probs_with("watchdog_required maybe"), "error", "watchdog_required", 5)


def test_stop_failure_defaults_to_fence_with_a_watchdog_and_block_without():
    # issue 13 finding 3: what a stop that still fails after its retries leads to
    assert cfg_with("watchdog /dev/watchdog").stop_failure == "fence"
    cfg = cfg_with()
    assert cfg.stop_failure == "block" and cfg.reboot_command == ["/sbin/reboot", "-nf"]
    assert cfg_with("stop_failure block", "watchdog /dev/watchdog").stop_failure == "block"
    cfg = cfg_with("stop_failure reboot /usr/sbin/hanode-reset --now")
    assert cfg.stop_failure == "reboot" and cfg.reboot_command == ["/usr/sbin/hanode-reset", "--now"]
    assert cfg_with("stop_failure REBOOT").reboot_command == ["/sbin/reboot", "-nf"]
    find(probs_with("stop_failure fence"), "error", "stop_failure fence needs a watchdog", 5)
    find(probs_with("stop_failure shrug"), "error", "invalid value [shrug] for stop_failure", 5)
    find(probs_with("stop_failure block /sbin/reboot"), "error", "stop_failure block takes no command", 5)
    find(probs_with("stop_failure reboot reboot -f"), "error", "must be an absolute path", 5)
    assert cfg.to_dict()["stop_failure"] == "reboot"


def test_logging_directives():
    cfg = cfg_with("logfile /var/log/ha-log", "debugfile /var/log/ha-debug", "logfacility local0", "debug 3")
    assert cfg.logfile == "/var/log/ha-log" and cfg.debugfile == "/var/log/ha-debug"
    assert cfg.logfacility == "local0" and cfg.debug == 3
    assert cfg.use_logd is False and cfg.warnings == []
    find(probs_with("logfacility local9"), "error", "invalid value [local9] for logfacility", 5)
    find(probs_with("debug 256"), "error", "invalid number [256] for debug", 5)
    cfg = cfg_with("use_logd yes")
    assert cfg.use_logd is True
    find(cfg.warnings, "warning", "no ha_logd client", 5)
    assert cfg_with("use_logd no").use_logd is False
    find(probs_with("use_logd sometimes"), "error", "invalid value [sometimes] for use_logd", 5)


def test_respawn_and_failfast():
    cfg = cfg_with("respawn hacluster /usr/lib/heartbeat/ipfail", "respawn root /usr/bin/mon -f /etc/mon.cf",
                   "respawn hacluster /usr/lib/heartbeat/dopd")
    assert cfg.respawn == [("root", ["/usr/bin/mon", "-f", "/etc/mon.cf"]),   # ipfail: hanode's own job
                           ("hacluster", ["/usr/lib/heartbeat/dopd"])]
    find(cfg.warnings, "warning", "respawn of ipfail", 5)
    find(cfg.warnings, "warning", "respawn of dopd", 7)
    assert len(cfg.warnings) == 2
    find(probs_with("respawn hacluster"), "error", "respawn needs a user and a program", 5)
    cfg = cfg_with("failfast hacluster /usr/bin/thing")
    assert cfg.extra == [("failfast", "hacluster /usr/bin/thing")]
    find(cfg.warnings, "warning", "failfast", 5)


def test_ping_nodes_are_the_lan_health_targets():
    cfg = cfg_with("ping 192.0.2.254 192.0.2.253", "ping_group routers 192.0.2.1 192.0.2.2", "hbaping fc0")
    assert cfg.ping == ["192.0.2.254", "192.0.2.253"]
    assert cfg.ping_groups == [("routers", ["192.0.2.1", "192.0.2.2"])]
    assert cfg.deadping_ms is None and cfg.deadping() == cfg.deadtime_ms   # Heartbeat's default
    assert cfg.extra == [("hbaping", "fc0")]
    assert len(cfg.warnings) == 1
    find(cfg.warnings, "warning", "hbaping", 7)
    assert cfg_with("deadping 2").deadping_ms == 2000


def test_ping_lines_are_validated_with_their_line():
    find(probs_with("ping gateway"), "error", "ping [gateway] is not an IPv4 address", 5)
    find(probs_with("ping_group routers"), "error", "ping_group needs a name and at least one address", 5)
    find(probs_with("ping_group routers 192.0.2.1 x"), "error", "ping_group routers: [x] is not", 5)
    find(probs_with("ping_group r 192.0.2.1", "ping_group r 192.0.2.2"), "error", "defined twice", 6)
    find(probs_with("keepalive 1", "deadping 1"), "error", "deadping [1000 ms] must be at least twice", 6)
    find(cfg_with("ping 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6").warnings,
         "warning", "LAN health counts at most 5", 5)


def test_respawn_of_ipfail_is_accepted_explained_and_not_started():
    cfg = cfg_with("respawn hacluster /usr/lib/heartbeat/ipfail")
    assert cfg.respawn == []
    p = find(cfg.warnings, "warning", "respawn of ipfail: not started, hanode does its job itself", 5)
    assert "LAN health" in p.message


def test_stonith_is_kept_with_a_warning_about_the_watchdog():
    cfg = cfg_with("stonith baytech /etc/ha.d/conf/stonith.baytech", "stonith_host * baytech 10.0.0.3 mylogin pw")
    assert extra_names(cfg) == ["stonith", "stonith_host"]
    for line in (5, 6):
        p = find(cfg.warnings, "warning", "hanode has no STONITH", line)
        assert "watchdog" in p.message


def test_crm_only_off():
    for name in ("crm", "pacemaker"):
        for v in ("off", "no", "false", "0", "n"):
            cfg = cfg_with("%s %s" % (name, v))
            assert cfg.crm is False and cfg.warnings == [] and cfg.extra == [(name, v)]
        for v in ("on", "respawn", "yes", "true", "minimal"):
            p = find(probs_with("%s %s" % (name, v)), "error", "CRM mode is Pacemaker's job", 5)
            assert "haresources (R1)" in p.message and "%s off" % name in p.message
        find(probs_with("%s bogus" % name), "error", "invalid value [bogus] for %s" % name, 5)


def test_heartbeat_internal_directives_are_accepted_into_extra():
    lines = [
        "conn_logd_time 60", "apiauth ipfail uid=hacluster", "hopfudge 1",
        "hbgenmethod file", "uuidfrom nodename", "msgfmt classic", "compression zlib",
        "compression_threshold 2", "traditional_compression no", "max_rexmit_delay 250",
        "memreserve 6500", "coredumps true", "coreroot /var/lib/heartbeat/cores", "normalpoll on",
        "log_badpack off", "syslogmsgfmt on", "cluster linux-ha", "env LANG=C",
        "quorum_server qs.example", "use_apphbd no", "crm_daemon_dir /usr/lib/heartbeat",
        "crmd_spawns_pengine on", "record_config_changes on", "record_pengine_inputs on",
        "enable_config_writes on",
    ]
    cfg = cfg_with(*lines)
    assert cfg.warnings == []
    assert cfg.extra == [(ln.split()[0], " ".join(ln.split()[1:])) for ln in lines]


def test_heartbeat_internal_directives_are_validated():
    find(probs_with("deadping soon"), "error", "invalid time [soon] for deadping", 5)
    find(probs_with("hopfudge -1"), "error", "invalid number [-1] for hopfudge", 5)
    find(probs_with("hbgenmethod random"), "error", "invalid value [random] for hbgenmethod", 5)
    find(probs_with("uuidfrom disk"), "error", "invalid value [disk] for uuidfrom", 5)
    find(probs_with("msgfmt xml"), "error", "invalid value [xml] for msgfmt", 5)
    find(probs_with("coredumps maybe"), "error", "invalid value [maybe] for coredumps", 5)
    find(probs_with("memreserve lots"), "error", "invalid number [lots] for memreserve", 5)


def test_heartbeat_settings_whose_meaning_cannot_apply_warn():
    find(probs_with("hbgenmethod time"), "warning", "hbgenmethod time is ignored", 5)
    find(probs_with("msgfmt netstring"), "warning", "msgfmt netstring is ignored", 5)


def test_realtime_and_rtprio():
    cfg = cfg_with("realtime off", "rtprio 50")
    assert cfg.realtime is False and cfg.rtprio == 50
    find(probs_with("rtprio 0"), "error", "invalid number [0] for rtprio", 5)
    find(probs_with("realtime sometimes"), "error", "invalid value [sometimes] for realtime", 5)


def test_hanode_extensions():
    cfg = cfg_with("vip_probe off", "probe_count 4", "probe_interval 10ms", "probe_wait 0.1",
                   "garp_count 0", "garp_interval 1", "state_dir /srv/hanode", "control_socket /tmp/h.sock",
                   "resource_timeout 2")
    assert cfg.vip_probe is False and cfg.probe_count == 4 and cfg.probe_interval_ms == 10
    assert cfg.probe_wait_ms == 100 and cfg.garp_count == 0 and cfg.garp_interval_ms == 1000
    assert cfg.state_dir == "/srv/hanode" and cfg.control_socket == "/tmp/h.sock"
    assert cfg.resource_timeout_ms == 2000 and cfg.warnings == [] and cfg.extra == []
    find(probs_with("vip_probe maybe"), "error", "invalid value [maybe] for vip_probe", 5)
    find(probs_with("probe_count 0"), "error", "invalid number [0] for probe_count", 5)
    find(probs_with("state_dir var/lib"), "error", "state_dir [var/lib] must be an absolute path", 5)
    find(probs_with("control_socket x.sock"), "error", "control_socket [x.sock] must be an absolute path", 5)
    find(probs_with("resource_timeout 0"), "error", "resource_timeout must be more than 0", 5)
    find(probs_with("probe_interval 0"), "error", "probe_interval must be more than 0", 5)


def test_resource_dir_replaces_the_default_list_and_may_repeat():
    cfg = cfg_with("resource_dir /opt/rd", "resource_dir /opt/rd2 /etc/init.d")
    assert cfg.resource_dirs == ["/opt/rd", "/opt/rd2", "/etc/init.d"]
    find(probs_with("resource_dir rd"), "error", "resource_dir [rd] must be an absolute path", 5)


# ----------------------------------------------------------------------------- sanity rules

def test_no_media():
    p = find(problems("node node1 node2\nauto_failback on\n"), "error", "No heartbeat media defined", 0)
    assert "serial /dev/ttyS0" in p.message


def test_only_media_hanode_cannot_use():
    p = find(problems("bcast eth0\nnode node1 node2\nauto_failback on\n"), "error",
             "no heartbeat medium hanode can use", 0)
    assert "ucast" in p.message


def test_no_nodes():
    p = find(problems("serial /dev/ttyS0\nauto_failback on\n", hr="node1 x\n"), "error", "no nodes defined", 0)
    assert "uname -n" in p.message
    assert len(errors("serial /dev/ttyS0\nauto_failback on\n", hr="node1 x\n")) == 1


def test_exactly_two_nodes():
    p = find(problems("serial /dev/ttyS0\nnode node1\nauto_failback on\n"), "error", "exactly two nodes", 0)
    assert "ha.cf lists 1 (node1)" in p.message
    p = find(problems("serial /dev/ttyS0\nnode node1 node2\nnode node3\nauto_failback on\n"), "error",
             "exactly two nodes", 3)
    assert "ha.cf lists 3 (node1, node2, node3)" in p.message


def test_me_must_be_a_listed_node():
    p = find(problems(me="web3"), "error", "Current node [web3] not in configuration!", 0)
    assert "uname -n" in p.message and "'node' directive" in p.message and "node1, node2" in p.message
    assert parse(HA, AK, HR, me="NODE2").me == "node2"
    cfg = parse(HA, AK, HR)
    assert cfg.me is None and cfg.peer is None


def test_deadtime_must_exceed_twice_keepalive():
    p = find(probs_with("keepalive 2", "deadtime 4"), "error", "is too small compared to keepalive", 6)
    assert p.message.startswith("Dead time [4000 ms] is too small compared to keepalive [2000 ms]")
    assert "keeplive" not in p.message
    assert "4001ms" in p.message
    assert errors(HA + "keepalive 2\ndeadtime 4001ms\ninitdead 10\n") == []


def test_keepalive_must_be_positive():
    find(probs_with("keepalive 0"), "error", "keepalive must be more than 0", 5)
    assert len(errors(HA + "keepalive 0\n")) == 1


def test_initdead_must_not_be_below_deadtime():
    p = find(probs_with("deadtime 20", "initdead 15"), "error",
             "Initial dead time [15000 ms] is smaller than deadtime [20000 ms]", 6)
    assert "at least deadtime" in p.message


def test_initdead_below_ten_seconds_warns():
    cfg = cfg_with("keepalive 100ms", "deadtime 500ms", "initdead 5")
    p = find(cfg.warnings, "warning", "Initial dead time [5000 ms] may be too small!", 7)
    assert "It should be >= deadtime and >= 10 seconds" in p.message


def test_warntime_rules():
    find(probs_with("deadtime 10", "warntime 10"), "warning", "warntime [10000 ms] is not less than deadtime", 6)
    find(probs_with("keepalive 2", "warntime 1"), "warning", "every heartbeat would be reported late", 6)
    find(probs_with("warntime 0"), "error", "warntime must be more than 0", 5)


def test_fast_keepalive_on_a_slow_line_warns():
    p = find(probs_with("keepalive 30ms", "deadtime 100ms", "initdead 10", "baud 9600"), "warning",
             "keepalive [30 ms] is short for 9600 baud", 5)
    assert "25.0 ms" in p.message
    assert warnings(HA + "keepalive 100ms\ndeadtime 500ms\ninitdead 10\n") == []


# ----------------------------------------------------------------------------- authkeys

def test_authkeys_methods_indexes_and_comments():
    ak = ("# comment\n\n   # indented comment\nauth 2\n1 md5 md5-key-0123456789\n2 sha1 sha1-key-0123456789\n"
          "0 crc\n15 hmac-sha256 hmac-key-0123456789abcdef\n")
    cfg = parse(HA, ak, HR, me="node1")
    assert cfg.auth_index == 2 and cfg.auth_method() == "sha1"
    assert sorted(cfg.auth_keys) == [0, 1, 2, 15]
    assert cfg.auth_keys[1].method == "md5" and cfg.auth_keys[1].key == b"md5-key-0123456789"
    assert cfg.auth_keys[0].method == "crc" and cfg.auth_keys[0].key is None
    assert cfg.auth_keys[15].method == "hmac-sha256" and cfg.auth_keys[15].key == b"hmac-key-0123456789abcdef"
    assert [p.line for p in cfg.warnings] == [7]  # the crc line


def test_hash_in_the_middle_of_an_authkeys_line_is_part_of_the_key():
    cfg = parse(HA, "auth 1\n1 sha1 abc#def0123456789xyz\n", HR, me="node1")
    assert cfg.auth_keys[1].key == b"abc#def0123456789xyz"


def test_crc_is_accepted_with_a_warning():
    cfg = parse(HA, "auth 1\n1 crc\n", HR, me="node1")
    p = find(cfg.warnings, "warning", "crc authenticates nothing", 2, "authkeys")
    assert "forge" in p.message


def test_crc_with_a_key_is_an_error():
    p = find(problems(ak="auth 1\n1 crc mykey\n"), "error", "Auth method [crc] doesn't use a key", 2)
    assert "mykey" not in p.message


def test_keyed_methods_require_a_key():
    for m in ("md5", "sha1", "hmac-sha256"):
        find(problems(ak="auth 1\n1 %s\n" % m), "error", "Auth method [%s] requires a key" % m, 2)


def test_short_key_warns():
    p = find(problems(ak="auth 1\n1 hmac-sha256 short\n"), "warning", "only 5 bytes", 2)
    assert "at least 16" in p.message and "short" not in p.message  # never the key itself
    assert warnings(ak="auth 1\n1 hmac-sha256 0123456789abcdef\n") == []


def test_key_ends_at_first_blank():
    cfg = parse(HA, "auth 1\n1 sha1 0123456789abcdef-first second third\n", HR, me="node1")
    assert cfg.auth_keys[1].key == b"0123456789abcdef-first"
    find(cfg.warnings, "warning", "the key ends at the first blank: the 2 words after it are ignored", 2)


def test_auth_line_errors():
    find(problems(ak="auth x\n1 crc\n"), "error", "Invalid auth line [auth x]", 1)
    find(problems(ak="auth\n1 crc\n"), "error", "Invalid auth line [auth]", 1)
    find(problems(ak="auth 16\n1 crc\n"), "error", "Invalid auth line [auth 16]", 1)
    find(problems(ak="1 crc\n"), "error", "Missing auth directive in keyfile [/etc/ha.d/authkeys]", 0)
    find(problems(ak=""), "error", "Missing auth directive", 0)
    p = find(problems(ak="auth 3\n1 crc\n"), "error", "Auth Key [3] not found in keyfile [/etc/ha.d/authkeys]", 1)
    assert "auth 3" in p.message


def test_key_line_errors_never_show_the_key():
    probs = problems(ak="auth 1\n1 sha1 %s\nx7 sha1 %s\n16 sha1 %s\n3 rot13 %s\n4\n" % ((SECRET,) * 4))
    find(probs, "error", "Invalid authnum [x7]", 3)
    find(probs, "error", "Invalid authnum [16]; key indexes are 0 to 15", 4)
    find(probs, "error", "Invalid authtype [rot13]; use one of crc, md5, sha1, hmac-sha256", 5)
    find(probs, "error", "key 4 has no method", 6)
    for p in probs:
        assert SECRET not in str(p)


def test_auth_pointing_at_a_broken_key_line_is_not_reported_twice():
    probs = problems(ak="auth 2\n2 sha1\n")
    assert [p.line for p in probs] == [2]


def test_duplicate_key_index_warns_and_later_wins():
    cfg = parse(HA, "auth 1\n1 sha1 first-key-0123456789\n1 sha1 second-key-0123456789\n", HR, me="node1")
    assert cfg.auth_keys[1].key == b"second-key-0123456789"
    find(cfg.warnings, "warning", "key index 1 defined again (first on line 2)", 3)


def test_method_names_are_case_insensitive():
    assert parse(HA, "auth 1\n1 SHA1 0123456789abcdefgh\n", HR, me="node1").auth_keys[1].method == "sha1"


# ----------------------------------------------------------------------------- haresources

def test_groups_keys_and_preferred_nodes():
    hr = ("# web\nNODE1 192.0.2.100 httpd\n\n"
          "node2   IPaddr::192.0.2.101/24/eth0   Filesystem::/dev/sda1::/data::ext3  mysql\n")
    cfg = parse(HA, AK, hr, me="node1")
    assert [(g.preferred, g.key, g.line) for g in cfg.groups] == [
        ("node1", "192.0.2.100", 2), ("node2", "IPaddr::192.0.2.101/24/eth0", 4)]
    assert cfg.group("192.0.2.100") is cfg.groups[0]
    g = cfg.groups[1]
    assert [r.token for r in g.resources] == ["IPaddr::192.0.2.101/24/eth0", "Filesystem::/dev/sda1::/data::ext3",
                                              "mysql"]
    assert g.resources[1].script == "Filesystem" and g.resources[1].args == ["/dev/sda1", "/data", "ext3"]
    assert g.resources[2].script == "mysql" and g.resources[2].args == [] and not g.resources[2].is_ip
    try:
        cfg.group("nope")
        assert False
    except KeyError:
        pass


def test_bare_ip_becomes_ipaddr():
    r = parse(HA, AK, "node1 192.0.2.100/24/eth0 httpd\n", me="node1").groups[0].resources[0]
    assert r.token == "192.0.2.100/24/eth0" and r.script == "IPaddr" and r.args == ["192.0.2.100/24/eth0"]
    assert r.is_ip and r.ip == "192.0.2.100" and r.prefixlen == 24 and r.dev == "eth0"
    assert r.label is None and r.broadcast is None


def test_ip_argument_syntax():
    def ip(tok):
        return parse(HA, AK, "node1 %s\n" % tok, me="node1").groups[0].resources[0]
    r = ip("IPaddr2::192.0.2.10/24/eth0:1/192.0.2.255")
    assert (r.script, r.ip, r.prefixlen, r.dev, r.label, r.broadcast) == (
        "IPaddr2", "192.0.2.10", 24, "eth0", "eth0:1", "192.0.2.255")
    r = ip("192.0.2.10/24/192.0.2.127")  # a digit in the 3rd place is the broadcast
    assert (r.prefixlen, r.dev, r.broadcast) == (24, None, "192.0.2.127")
    r = ip("IPaddr::192.0.2.10/255.255.255.128/eth1")
    assert (r.prefixlen, r.dev) == (25, "eth1")
    r = ip("IPaddr2::192.0.2.10")
    assert (r.ip, r.prefixlen, r.dev, r.broadcast) == ("192.0.2.10", None, None, None)
    r = ip("192.0.2.10/32")
    assert r.prefixlen == 32
    r = ip("192.0.2.10//eth2")
    assert (r.prefixlen, r.dev) == (None, "eth2")


def test_ip_argument_errors():
    cases = [
        ("192.0.2.256", "[192.0.2.256] is not an IPv4 address"),
        ("192.0.2.1/33", "prefix [33] must be a number of bits from 0 to 32"),
        ("192.0.2.1/255.0.255.0", "prefix [255.0.255.0]"),
        ("192.0.2.1/24/eth0/192.0.2.255/x", "too many '/' parts"),
        ("192.0.2.1/24/192.0.2.255/eth0", "too many '/' parts"),
        ("192.0.2.1/24/eth0:", "not a valid interface[:label]"),
        ("192.0.2.1/24/averyveryverylongifname", "not a valid interface[:label]"),
        ("192.0.2.1/24/eth0/192.0.2.999", "broadcast [192.0.2.999] is not an IPv4 address"),
        ("IPaddr", "IPaddr takes one argument"),
        ("IPaddr2::192.0.2.1::eth0", "IPaddr2 takes one argument"),
        ("IPaddr::bad", "[bad] is not an IPv4 address"),
        ("127.0.0.2", "cannot be a service address"),
        ("224.0.0.5", "cannot be a service address"),
    ]
    for tok, fragment in cases:
        find(problems(hr="\nnode1 %s httpd\n" % tok), "error", fragment, 2, "haresources")


def test_script_names_must_be_plain():
    find(problems(hr="node1 ../bin/sh\n"), "error", "the script name must be a plain file name", 1)
    find(problems(hr="node1 ::arg\n"), "error", "the script name must be a plain file name", 1)


def test_empty_script_arguments_vanish_as_in_the_shell():
    r = parse(HA, AK, "node1 Filesystem::/dev/sda1::::ext3 x::\n", me="node1").groups[0].resources
    assert r[0].args == ["/dev/sda1", "ext3"] and r[1].args == []


def test_continuation_lines_and_their_line_numbers():
    hr = ("# groups\nnode1 192.0.2.100 \\\n   Filesystem::/dev/sda1::/data \\\n   httpd\n"
          "node2 192.0.2.101 \\\n  mysql # db\n")
    cfg = parse(HA, AK, hr, me="node1")
    assert [(g.key, g.line) for g in cfg.groups] == [("192.0.2.100", 2), ("192.0.2.101", 5)]
    assert [r.token for r in cfg.groups[0].resources] == ["192.0.2.100", "Filesystem::/dev/sda1::/data", "httpd"]
    assert cfg.warnings == []
    # an error in a continued line is reported on the group's first line
    find(problems(hr="node1 192.0.2.1 \\\n  192.0.2.300\n"), "error", "[192.0.2.300]", 1, "haresources")


def test_continuation_is_joined_without_a_blank_as_heartbeat_does():
    cfg, probs = check(HA, AK, "node1 192.0.2.100 ht\\\ntpd\n", me="node1")
    assert [r.token for r in cfg.groups[0].resources] == ["192.0.2.100", "httpd"]
    find(probs, "warning", "without a blank in between", 2, "haresources")


def test_blanks_after_backslash_do_not_continue():
    probs = problems(hr="node1 192.0.2.100 \\  \nnode2 192.0.2.101\n")
    find(probs, "warning", "blanks after the final '\\'", 1, "haresources")


def test_group_without_resources():
    p = find(problems(hr="node1\n"), "error", "lists no resources", 1)
    assert "node1 192.0.2.100 httpd" in p.message


def test_preferred_node_must_be_listed():
    p = find(problems(hr="node1 192.0.2.100\nweb9 192.0.2.101\n"), "error", "preferred node [web9]", 2)
    assert "(nodes: node1, node2)" in p.message


def test_group_keys_are_unique():
    find(problems(hr="node1 httpd\nnode2 httpd\n"), "error",
         "group key [httpd] is already used by the group on line 1", 2)


def test_same_address_in_two_groups_warns():
    find(problems(hr="node1 192.0.2.100 a\nnode2 IPaddr2::192.0.2.100/24 b\n"), "warning",
         "address 192.0.2.100 is also managed by the group on line 1", 2)


def test_at_most_eight_groups():
    hr = "".join(["node1 192.0.2.%d\n" % (10 + i) for i in range(8)])
    assert len(parse(HA, AK, hr, me="node1").groups) == 8
    hr += "node2 192.0.2.50\nnode2 192.0.2.51\n"
    p = find(problems(hr=hr), "error", "more than 8 resource groups", 9)
    assert "one bit per group" in p.message


def test_no_groups_warns():
    find(problems(hr="# nothing yet\n"), "warning", "no resource groups", 0)


# ----------------------------------------------------------------------------- Config

def test_to_dict_is_json_and_never_holds_keys():
    cfg = parse(HA + "ucast eth1 192.0.2.2\nmcast eth0 225.0.0.1 694 1 0\nrespawn root /bin/true\n",
                "auth 1\n1 sha1 %s\n2 crc\n" % SECRET,
                "node1 IPaddr2::192.0.2.100/24/eth0:0 httpd::x\n", me="node1")
    text = json.dumps(cfg.to_dict())
    assert SECRET not in text and SECRET not in repr(cfg.auth_keys)
    d = json.loads(text)
    assert d["keepalive_ms"] == 1000 and d["deadtime_ms"] == 30000 and d["initdead_ms"] == 30000
    assert d["nodes"] == ["node1", "node2"] and d["me"] == "node1" and d["peer"] == "node2"
    assert d["node_ids"] == {"node1": 0, "node2": 1}
    assert d["auth"] == {"index": 1, "method": "sha1", "methods": {"1": "sha1", "2": "crc"}}
    assert d["ucast"] == [["eth1", "192.0.2.2"]] and d["mcast"] == [["eth0", "225.0.0.1", 694, 1, 0]]
    g = d["groups"][0]
    assert g["key"] == "IPaddr2::192.0.2.100/24/eth0:0" and g["preferred"] == "node1" and g["line"] == 1
    assert g["resources"][0]["ip"] == "192.0.2.100" and g["resources"][0]["label"] == "eth0:0"
    assert g["resources"][1] == {"token": "httpd::x", "script": "httpd", "args": ["x"], "is_ip": False}
    assert d["respawn"] == [["root", ["/bin/true"]]]


def test_node_index_is_position_in_sorted_names():
    cfg = parse("serial /dev/ttyS0\nnode zeta\nnode alpha\nauto_failback on\n", AK, "zeta a\n", me="zeta")
    assert cfg.nodes == ["zeta", "alpha"]
    assert cfg.node_index("zeta") == 1 and cfg.node_index("alpha") == 0
    try:
        cfg.node_index("beta")
        assert False
    except KeyError:
        pass


# ----------------------------------------------------------------------------- shipped examples

def _repo_root():
    parts = __file__.replace("\\", "/").split("/")
    return "/".join(parts[:-3]) or "."


def _example(name):
    texts = []
    for f in ("ha.cf", "authkeys", "haresources"):
        with open("%s/examples/%s/%s" % (_repo_root(), name, f)) as fh:
            texts.append(fh.read())
    return texts


def test_a_published_key_is_warned_about_or_refused():
    # issue 13 finding 12: the factory image's key authenticates nothing (everyone has a copy)
    ak = "auth 2\n2 sha1 example-pair-key-change-me\n"
    p = find(problems(ak=ak), "warning", "key 2 is the published example key of an older factory image", 2, "authkeys")
    assert "printf 'auth 2\\n2 sha1 %s\\n'" in p.message and "example-pair-key-change-me" not in p.message
    cfg, probs = check(HA, ak, HR, me="node1", refuse_example_keys=True)
    assert cfg is None and [(q.level, q.line) for q in probs] == [("error", 2)]
    assert check(HA, AK, HR, me="node1", refuse_example_keys=True)[1] == []


def test_classic_example_parses_with_only_the_crc_warning():
    cfg = parse(*_example("classic"), me="node1")
    assert [p.message.split(":")[0] for p in cfg.warnings] == ["auth method crc authenticates nothing"]
    assert (cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms) == (1000, 5000, 15000, 60000)
    assert cfg.serial == ["/dev/ttyS0"] and cfg.baud == 19200 and cfg.auto_failback == "on"
    assert cfg.nodes == ["node1", "node2"] and cfg.auth_method() == "crc"
    assert [(g.preferred, [r.token for r in g.resources]) for g in cfg.groups] == [("node1", ["192.0.2.100", "httpd"])]


def test_tight_example_parses_clean_but_for_its_published_key():
    cfg = parse(*_example("tight"), me="node2")
    assert [(p.path, p.line) for p in cfg.warnings] == [("/etc/ha.d/authkeys", 5)]
    assert "key 1 is the published example key of examples/tight/authkeys" in cfg.warnings[0].message
    assert "openssl rand -hex 32" in cfg.warnings[0].message
    assert (cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms) == (100, 300, 500, 10000)
    assert cfg.auth_method() == "hmac-sha256" and len(cfg.auth_keys[1].key) >= 32
    assert cfg.peer == "node1"
