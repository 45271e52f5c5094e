"""``hanode run``'s options, and reading a plain ``hanode run`` command line without argparse.

Theory of operation
-------------------
argparse (with what it pulls in as it builds and runs a parser: gettext, locale,
shutil) is 0.5 MB of the agent's memory for its whole life, for one parse at start.
The options of ``hanode run`` are few and simple, so ``parse_plain`` reads the
forms the service files and users write (``--opt VALUE``, ``--opt=VALUE``,
``--realtime``/``--no-realtime``, ``-v``, ``-vv``, ``--verbose``) into the same
values argparse would give.  Anything else - ``--help``, an abbreviation, a
missing value, an unknown word, both realtime switches - returns None, and the
command line goes to argparse (``add_arguments``), which prints the help or the
error it always has.  The same table drives both, and a test compares them.
"""
import os
from typing import Any, Dict, List, Optional, Tuple

CONFIG_DIR_ENV = "HANODE_CONFIG_DIR"
CONFIG_DIR_DEFAULT = "/etc/ha.d"

# options that take one value: (option, help); the value's name is the option's without "--"
VALUE_OPTIONS: List[Tuple[str, str]] = [
    ("--config-dir", "directory with ha.cf, authkeys, haresources (default %(default)s)"),
    ("--node", "this node's name (default: uname -n, as Heartbeat)"),
    ("--state-dir", "persistent state (boot generation); overrides ha.cf state_dir"),
    ("--socket", "control socket path; overrides ha.cf control_socket"),
    ("--lock-dir", "UUCP lock directory for the serial ports (default /var/lock or /run/lock)"),
]
REALTIME_SWITCHES = {"--realtime": True, "--no-realtime": False}
VERBOSE_LONG = "--verbose"


def dest_of(option: str) -> str:
    return option[2:].replace("-", "_")


def defaults() -> Dict[str, Any]:
    """Every value of a bare ``hanode run`` (read when called: HANODE_CONFIG_DIR is the caller's)."""
    values: Dict[str, Any] = {dest_of(option): None for option, _ in VALUE_OPTIONS}
    values.update(config_dir=os.environ.get(CONFIG_DIR_ENV, CONFIG_DIR_DEFAULT), realtime=None, verbose=0)
    return values


def add_arguments(parser: Any) -> None:
    """``hanode run``'s options on an argparse parser: its --help, and every command line
    ``parse_plain`` leaves to it."""
    values = defaults()
    for option, help_text in VALUE_OPTIONS:
        parser.add_argument(option, default=values[dest_of(option)], help=help_text)
    rt = parser.add_mutually_exclusive_group()
    rt.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                    help="SCHED_FIFO and mlockall (ha.cf realtime; Heartbeat's default is on)")
    rt.add_argument("--no-realtime", dest="realtime", action="store_false")
    parser.add_argument("-v", VERBOSE_LONG, action="count", default=0, help="debug logging on stderr")


def _verbosity(word: str) -> int:
    """How much ``word`` adds to --verbose: -v, -vv ... or --verbose; 0 if it is none of them."""
    if word == VERBOSE_LONG:
        return 1
    if len(word) > 1 and word[0] == "-" and word[1:] == "v" * (len(word) - 1):
        return len(word) - 1
    return 0


def parse_plain(words: List[str]) -> Optional[Dict[str, Any]]:
    """The values of ``hanode run WORDS`` as argparse gives them, or None if the words are not one
    of the plain forms (argparse then reads them: the module docstring)."""
    values = defaults()
    value_options = {option for option, _ in VALUE_OPTIONS}
    realtime_given = False
    i = 0
    while i < len(words):
        word = words[i]
        option, equals, value = word.partition("=")
        if option in value_options:
            if not equals:
                i += 1
                if i == len(words) or words[i].startswith("-"):
                    return None   # argparse says "expected one argument" (or takes "-1" as a value)
                value = words[i]
            values[dest_of(option)] = value
        elif word in REALTIME_SWITCHES and not realtime_given:
            values["realtime"] = REALTIME_SWITCHES[word]
            realtime_given = True
        elif _verbosity(word):
            values["verbose"] += _verbosity(word)
        else:
            return None
        i += 1
    return values
