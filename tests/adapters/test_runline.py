"""hanode/runline.py: a plain ``hanode run`` is read without argparse, into what argparse gives.

The property test puts command lines made of the options' words (and the mistakes users make)
through both: whatever ``parse_plain`` accepts, argparse accepts with the same values; whatever
argparse refuses (or answers with help), ``parse_plain`` leaves to it.  The agent's own start
is checked in a real interpreter: ``hanode run`` imports no argparse, and help and errors stay.
"""
import argparse
import contextlib
import io
import os
import subprocess
import sys

from hypothesis import given, settings, strategies as st

from hanode.cli import plain_run
from hanode.runline import CONFIG_DIR_ENV, add_arguments, parse_plain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORDS = ["--config-dir", "--config-dir=/etc/x", "--config-dir=", "--node", "node1", "--node=-x", "--state-dir",
         "/var/lib/hanode", "--socket", "--socket=a=b", "--lock-dir", "--realtime", "--no-realtime", "-v", "-vv",
         "-vvv", "--verbose", "--verbose=1", "-v=1", "-vx", "--", "-", "-1", "", "a b", "--conf", "--no-r",
         "--nod=x", "-h", "--help", "--version", "run"]


def argparse_reads(words):
    """argparse's values for ``hanode run WORDS``, or None where it exits (an error, --help)."""
    parser = argparse.ArgumentParser(prog="hanode run")
    add_arguments(parser)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return vars(parser.parse_args(words))
    except SystemExit:
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=6))
def test_plain_forms_read_as_argparse_reads_them(words):
    plain = parse_plain(words)
    if plain is not None:
        assert plain == argparse_reads(words), words


def test_the_forms_the_service_files_write_are_plain():
    for words in ([], ["--config-dir", "/etc/ha.d"], ["--node=node1", "--no-realtime", "-vv"],
                  ["--realtime", "--lock-dir", "/tmp", "--socket", "/run/s", "--state-dir", "/d", "--verbose"]):
        assert parse_plain(words) == argparse_reads(words), words


def test_help_and_mistakes_go_to_argparse():
    for words in (["--help"], ["-h"], ["--realtime", "--no-realtime"], ["--conf", "x"], ["--node"],
                  ["--node", "--realtime"], ["stray"], ["--verbose=2"]):
        assert parse_plain(words) is None, words


def test_the_config_dir_default_is_read_at_parse_time(monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, "/srv/ha.d")
    assert parse_plain([])["config_dir"] == "/srv/ha.d" == argparse_reads([])["config_dir"]


def test_only_run_is_read_plainly():
    assert plain_run(["status"]) is None
    assert plain_run(["run", "--help"]) is None


def _hanode(*args, importtime=False):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-S"] + (["-X", "importtime"] if importtime else [])
                          + ["-m", "hanode", "run"] + list(args), env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_agent_does_not_import_argparse(tmp_path):
    r = _hanode("--config-dir", str(tmp_path), "--no-realtime", importtime=True)
    assert r.returncode == 6, r.stderr   # hanode.daemon.EXIT_CONFIG: an empty directory
    assert "hanode not started: configuration error." in r.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "hanode.configdir" in imported   # daemon.run's (importlib.import_module's imports are not timed)
    assert "argparse" not in imported


def test_help_and_errors_are_argparse_s():
    r = _hanode("--help")
    assert r.returncode == 0 and "usage: hanode run [-h] [--config-dir CONFIG_DIR]" in r.stdout, r.stderr
    r = _hanode("--realtime", "--no-realtime")
    assert r.returncode == 2
    assert "hanode run: error: argument --no-realtime: not allowed with argument --realtime" in r.stderr
