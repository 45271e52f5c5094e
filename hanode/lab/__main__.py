"""``python -m hanode.lab``: a paced 19200-baud null-modem cable on the command line.

Theory of operation
-------------------
Builds one ``NullModem`` from the options, starts it in its thread, prints
where the two ends are (one line each: ``a /dev/pts/7 -> /tmp/ttyA``), a
``ready`` line, and then waits for signals: SIGUSR1 pulls the cable, SIGUSR2
plugs it back, SIGTERM/SIGINT close everything (PTYs, links, the control
socket) and exit 0.  Signal handlers only set flags; the main loop applies
them, because the cable's lock must not be taken inside a handler that may
have interrupted code holding it.

The control socket (``--control``) takes one command a line and answers one
line: ``cut``, ``reconnect``, ``status`` (JSON), ``ber 1e-4``, ``drop 0.01``,
``latency 5``, ``garbage 8 [a>b|b>a]``, ``help``.  For example:
``echo status | socat - UNIX-CONNECT:/tmp/nm.sock``.
"""
import argparse
import signal
import sys
import threading
from typing import List, Optional

from hanode.lab.cable import (DEFAULT_BAUD, Endpoint, NullModem, NullModemError, PtyEndpoint,
                              UnixSocketEndpoint)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hanode.lab",
        description="Simulate a null-modem cable between two serial endpoints with real 8N1 pacing "
                    "(19200 baud = 1920 bytes/s each way), optional loss, bit errors, noise and cuts.",
        epilog="Signals: SIGUSR1 cuts the cable, SIGUSR2 reconnects it, SIGTERM/SIGINT stop. "
               "Control socket commands: cut, reconnect, status, ber P, drop P, latency MS, "
               "garbage N [a>b|b>a], help.")
    ends = p.add_argument_group("endpoints (each end: a new PTY, optionally symlinked, or a unix socket)")
    ends.add_argument("--link-a", metavar="PATH", help="create a PTY for end A and symlink PATH to its slave")
    ends.add_argument("--link-b", metavar="PATH", help="create a PTY for end B and symlink PATH to its slave")
    ends.add_argument("--socket-a", metavar="PATH",
                      help="end A is a unix stream socket to connect to (QEMU -chardev socket,server=on); reconnects")
    ends.add_argument("--socket-b", metavar="PATH", help="end B as a unix socket (see --socket-a)")
    line = p.add_argument_group("line")
    line.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="line speed, 10 bits a byte (default %(default)s)")
    line.add_argument("--latency-ms", type=float, default=0.0, help="extra delay after each byte's stop bit")
    line.add_argument("--drop", type=float, default=0.0, metavar="P", help="probability a byte is lost")
    line.add_argument("--ber", type=float, default=0.0, metavar="P", help="probability each data bit is flipped")
    line.add_argument("--garbage-per-s", type=float, default=0.0, metavar="R",
                      help="random noise bursts per second in each direction")
    line.add_argument("--garbage-max", type=int, default=8, metavar="N", help="longest noise burst (bytes)")
    line.add_argument("--seed", type=int, help="seed the impairments' random numbers (reproducible runs)")
    line.add_argument("--realtime", action="store_true",
                      help="run the cable thread SCHED_FIFO (root): sub-ms per-byte timing on a loaded machine")
    p.add_argument("--log", metavar="FILE", help="append a JSON line per delivered burst and per event")
    p.add_argument("--control", metavar="SOCK", help="unix socket accepting control commands")
    return p


def _endpoint(link: Optional[str], sock: Optional[str], name: str) -> Endpoint:
    if link and sock:
        raise NullModemError("--link-%s and --socket-%s are exclusive: end %s is a PTY or a socket"
                             % (name, name, name.upper()))
    if sock:
        return UnixSocketEndpoint(sock)
    return PtyEndpoint(link=link)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        nm = NullModem(_endpoint(args.link_a, args.socket_a, "a"), _endpoint(args.link_b, args.socket_b, "b"),
                       baud=args.baud, latency_ms=args.latency_ms, drop=args.drop, ber=args.ber,
                       garbage_per_s=args.garbage_per_s, garbage_max=args.garbage_max,
                       log=args.log, control=args.control, seed=args.seed, realtime=args.realtime)
    except (NullModemError, OSError) as e:
        print("nullmodem: %s" % e, file=sys.stderr)
        return 2
    wake = threading.Event()
    pending: List[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        pending.append({signal.SIGUSR1: "cut", signal.SIGUSR2: "reconnect"}.get(signum, "stop"))
        wake.set()

    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        nm.start()
        for ep in (nm.a, nm.b):
            extra = (" -> %s" % ep.link) if getattr(ep, "link", None) else ""
            print("%s %s %s%s" % (ep.name, ep.kind, ep.path, extra))
        if args.control:
            print("control %s" % args.control)
        print("ready %d baud" % nm.baud, flush=True)
        while True:
            wake.wait()
            wake.clear()
            while pending:
                what = pending.pop(0)
                if what == "stop":
                    return 0
                getattr(nm, what)()
                print(what, flush=True)
    finally:
        nm.close()


if __name__ == "__main__":
    sys.exit(main())
