"""Command line: ``hanode run | status | standby | takeover | reload | restart | check-config | export | demo``.

Each subcommand lives in its own module and is imported only when used, so
``hanode status`` does not pay for pyroute2 and ``hanode run`` reaches its first
heartbeat quickly.
"""
import importlib
import sys
import types
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:   # imported when used: a plain `hanode run` never is (hanode.runline)
    import argparse

# subcommand -> (module, one-line help); each module has add_arguments(parser) and run(args) -> int
SUBCOMMANDS = [
    ("run", "hanode.daemon", "run the agent in the foreground (what the service files start)"),
    ("status", "hanode.control", "show who holds what, link states and counters"),
    ("standby", "hanode.control",
     "give resource groups (all, local, foreign or one) to the peer (Heartbeat's hb_standby)"),
    ("takeover", "hanode.control",
     "take resource groups (all, local, foreign or one) from the peer (Heartbeat's hb_takeover)"),
    ("reload", "hanode.control",
     "re-read ha.cf, authkeys and haresources into the running daemon; a broken file is refused"),
    ("restart", "hanode.restart",
     "restart or upgrade the running agent without a failover: its resource groups stay up"),
    ("check-config", "hanode.checkconfig", "check /etc/ha.d (ha.cf, authkeys, haresources) and report every problem"),
    ("export", "hanode.export.pacemaker", "write the pair as a Pacemaker + Corosync cluster (export pacemaker)"),
    ("demo", "hanode.lab.demo",
     "two nodes in network namespaces over a simulated 19200-baud null-modem: failover and failback"),
]


def _subcommand(command: str) -> Tuple[str, str, str]:
    return next(entry for entry in SUBCOMMANDS if entry[0] == command)


def one_line_help(command: str) -> str:
    """The one-line help of ``command`` (a module run on its own, ``python3 -m hanode.checkconfig``,
    says the same as ``hanode --help``)."""
    return _subcommand(command)[2]


def build_parser(argv: Optional[List[str]] = None) -> "argparse.ArgumentParser":
    import argparse
    parser = argparse.ArgumentParser(
        prog="hanode",
        description="Two-node failover agent reading Linux-HA Heartbeat's ha.cf, authkeys and haresources.",
    )
    from hanode import __version__
    parser.add_argument("--version", action="version", version="hanode " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    words = sys.argv[1:] if argv is None else argv
    for name, module_name, help_text in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name not in words:
            continue  # only the chosen subcommand's module is imported
        if name == "run":
            _before_the_daemon()
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name and not module_name.startswith("%s." % e.name):
                raise  # a dependency of the module is missing: show the real error
            # the appliance image leaves the test bed (hanode.lab) out
            parser.exit(2, "hanode %s: %s is not installed on this system\n" % (name, module_name))
        adder = getattr(module, "add_arguments_" + name.replace("-", "_"), None) or module.add_arguments
        adder(p)
        runner = getattr(module, "run_" + name.replace("-", "_"), None) or module.run
        p.set_defaults(func=runner)
    return parser


def _before_the_daemon() -> None:
    from hanode.noopenssl import keep_openssl_out
    keep_openssl_out()   # before the daemon imports asyncio and hashlib


def plain_run(words: List[str]) -> Optional[types.SimpleNamespace]:
    """``hanode run`` with plain options, read without argparse (hanode.runline); None for any
    other command line, which argparse reads (help and errors as always)."""
    if not words or words[0] != "run":
        return None
    from hanode.runline import parse_plain
    values = parse_plain(words[1:])
    if values is None:
        return None
    _before_the_daemon()
    daemon = importlib.import_module(_subcommand("run")[1])
    return types.SimpleNamespace(command="run", func=daemon.run, **values)


def main(argv: Optional[List[str]] = None) -> int:
    args = plain_run(sys.argv[1:] if argv is None else argv) or build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
