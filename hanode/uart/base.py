"""What every serial backend shares: the baud rates, the exception, the fresh-heartbeat write.

This is pyserial's ``serialutil.py`` in small: the backends (``posix.py`` for
Linux termios, ``mpy.py`` for MicroPython) subclass ``SerialBase`` and supply
the I/O; the rules that must not differ between them live here once.  Runs
unchanged on CPython and MicroPython (no typing, no abc, no properties that
MicroPython lacks).

Heartbeats must be fresh, not queued.  19200 baud carries 1920 bytes/s, so a
backlog in the output queue is a late heartbeat: ``write_latest`` asks the
backend how much is still unsent (``out_waiting``) and, if anything is,
discards it (``flush_output``) before writing, counting ``replaced``.  A flush
can cut a frame in half on the wire, so after a flush the new data is preceded
by ``resync`` (a 0x00, the COBS delimiter) which ends the truncated frame at
the receiver instead of letting it swallow the new one.  The first write after
the port is opened is preceded by it too: the port's last user (our own last
life, killed mid-frame) may have left half a frame in the receiver.

A control frame (a challenge, a rejoin, a notice) is written with ``keep``: it
says something once, so it is never replaced.  Until its last byte has left,
what is written after it queues behind it; the core holds its next status frame
for the control frame's wire time, so this costs a status frame a few
milliseconds at most (a ms-rounded hold, a resync byte, a late loop).
"""

from hanode.core.limits import BAUD_RATES as VALID_BAUDS  # Heartbeat's list, as ha.cf's check

HANGUP_TEXT = "hung up (readable but no data: device removed or the other end closed?)"


class SerialException(OSError):
    """The port cannot be used; the message names the device (and the holder).

    ``SerialException(errno, message)`` or ``SerialException(message)``;
    ``errno`` is set when there is one; ``str()`` is the message alone.
    """

    def __str__(self):
        args = self.args
        if len(args) > 1:
            return str(args[1])
        return str(args[0]) if args else ""


def check_baud(port, baudrate):
    """ValueError naming the port unless ``baudrate`` is one of Heartbeat's rates."""
    if isinstance(baudrate, bool) or baudrate not in VALID_BAUDS:
        raise ValueError("%s: baud rate %r not supported (Heartbeat's rates: %s)"
                         % (port, baudrate, ", ".join([str(b) for b in VALID_BAUDS])))


def hangup(port):
    """The error a read raises when the device is gone (the agent's link reopens on it)."""
    return SerialException(5, "serial port %s: %s" % (port, HANGUP_TEXT))   # 5: EIO


class SerialBase:
    """The pyserial-shaped surface; a backend supplies ``read``, ``write``,
    ``out_waiting``, ``in_waiting``, ``flush_output``, ``fileno``, ``is_open``
    and ``close``, and sets ``stream``: what the event loop waits on (an fd on
    CPython, a native stream - ``machine.UART`` or a tty's file - that
    MicroPython's ``select.poll`` takes)."""

    def __init__(self, port, baudrate, timeout, write_timeout):
        check_baud(port, baudrate)
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.replaced = 0
        self.stream = None
        self._behind_kept = None   # bytes queued after the last kept frame; None: it is all out
        self._line_may_hold_a_cut = True   # just opened: see the module docstring

    def reset_output_buffer(self):   # pyserial's name
        self.flush_output()

    def write_latest(self, data, resync=b"\x00", keep=False):
        """Write ``data`` replacing, not queueing behind, anything still unsent - unless that
        is (the rest of) a frame written with ``keep``: then ``data`` queues behind it.

        Returns the bytes of ``data`` written (resync bytes not counted).
        """
        waiting = self.out_waiting
        behind = self._behind_kept
        if behind is not None and waiting > behind:
            written = self.write(data)   # the kept frame is not all out yet
            self._behind_kept = 0 if keep else behind + written
            return written
        if waiting > 0:
            self.flush_output()
            self.replaced += 1
            self._line_may_hold_a_cut = True
        if self._line_may_hold_a_cut and resync:
            written = max(0, self.write(bytes(resync) + bytes(data)) - len(resync))
        else:
            written = self.write(data)
        self._line_may_hold_a_cut = False
        self._behind_kept = 0 if keep else None
        return written

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "%s(%r, baudrate=%d, open=%r)" % (type(self).__name__, self.port, self.baudrate, self.is_open)
