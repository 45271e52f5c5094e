"""A pyserial-shaped serial port for the heartbeat link, on CPython and MicroPython.

Laid out as pyserial is: ``base.py`` holds what every backend shares (the
baud rates, ``SerialException``, ``write_latest``), one file per backend
implements the I/O, and this module picks the backend for the interpreter:

* ``posix.py``: Linux termios (CPython), with ``lock.py`` for the UUCP lock file;
* ``mpy.py``: MicroPython, on ``machine.UART`` (a board) or a tty (the unix port).

``from hanode.uart import Serial, SerialException`` is the public surface:
``Serial(port, baudrate=19200, timeout=0)`` with pyserial's ``read``,
``write``, ``in_waiting``, ``out_waiting``, ``reset_output_buffer``,
``fileno``, ``is_open`` and ``close``, plus ``write_latest`` (replace what is
still unsent, never queue behind it) and ``stream`` (what the event loop
waits on).

Why no pyserial backend: hanode's reads and writes must not block and must
replace stale heartbeats, and pyserial 3.5's non-blocking write spins forever
on EAGAIN, so every byte went to the fd directly and termios was set by hand
on top; pyserial only opened and flock'ed the port, which ``posix.py`` does
itself in ten lines.  A backend whose I/O bypasses it tests nothing, so it
went, and with it the optional dependency.
"""

import sys

from hanode.uart.base import VALID_BAUDS, SerialBase, SerialException  # noqa: F401

if sys.implementation.name == "micropython":
    from hanode.uart.mpy import Serial  # noqa: F401
else:
    from hanode.uart.posix import Serial  # noqa: F401
