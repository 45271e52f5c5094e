"""The serial port on MicroPython: ``machine.UART`` on a board, a tty's file on the unix port.

Either way the port is a *native stream*, the only kind MicroPython's
``select.poll`` (and so its asyncio) can wait on: ``Serial.stream`` is that
object, and ``hanode.aio.readable`` polls it through ``asyncio.StreamReader``.
Reads go through ``Serial.read`` after the poll, so a hang-up is told apart
from "nothing yet" here as on CPython: the stream polled readable (or
POLLHUP/POLLERR) and a read returned nothing.

* Board: ``Serial(1)`` or ``Serial("1")`` is ``machine.UART(1, baudrate)``,
  8N1, no flow control, ``timeout=0`` (reads never wait).
* Unix port (a path such as /dev/ttyUSB0 or a PTY of the null-modem
  simulator): the device is opened ``r+b`` and set raw 8N1 through the
  port's ``termios`` module (``setraw``, then VMIN=0/VTIME=0 so a read returns
  what is there instead of waiting for the whole count, and the speed).  That
  module exports no flag constants and not B19200/B38400: the values below
  are Linux's asm-generic ones (x86, ARM, RISC-V, MIPS share them; Alpha,
  PowerPC and SPARC do not).  Writes may block while the kernel's output
  buffer (4 KB) is full: 170 heartbeats behind on a live line, which does not
  happen; there is no TCOFLUSH here, so ``write_latest`` writes through.
  There is no UUCP lock file, flock or TIOCEXCL (the port has neither
  ``fcntl`` nor ``os.link``): do not run two agents on one device.
"""

import select
import time

from hanode.uart.base import SerialBase, SerialException, hangup

# asm-generic/termbits.h: what termios.setraw leaves alone and heartbeats need cleared or set
_IFLAG_CLEAR = 0o1 | 0o10 | 0o100 | 0o200 | 0o4000 | 0o10000   # IGNBRK PARMRK INLCR IGNCR IXANY IXOFF
_CFLAG_CLEAR = 0o100 | 0o20000000000                           # CSTOPB CRTSCTS
_CFLAG_SET = 0o200 | 0o4000                                    # CREAD CLOCAL
_SPEED_FALLBACK = {19200: 0o16, 38400: 0o17}                   # B19200, B38400 (all Linux ports)
_S_IFMT = 0o170000
_S_IFCHR = 0o020000
_EIO = 5
_NOT_READY = -1


def _open_tty(port, baudrate):
    import os
    import termios
    try:
        mode = os.stat(port)[0]
    except OSError as e:
        raise SerialException(e.errno, "serial port %s does not exist" % port)
    if mode & _S_IFMT != _S_IFCHR:
        raise SerialException(25, "serial port %s is not a character device" % port)   # 25: ENOTTY
    try:
        f = open(port, "r+b")
    except OSError as e:
        raise SerialException(e.errno, "cannot open serial port %s: %s" % (port, e))
    try:
        fd = f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[0] &= ~_IFLAG_CLEAR
        attrs[2] = (attrs[2] & ~_CFLAG_CLEAR) | _CFLAG_SET
        speed = getattr(termios, "B%d" % baudrate, None) or _SPEED_FALLBACK[baudrate]
        attrs[4] = attrs[5] = speed
        cc = attrs[6]
        for i in range(len(cc)):
            if isinstance(cc[i], int):   # the port hands VMIN and VTIME as ints, the rest as bytes
                cc[i] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except BaseException:
        f.close()
        raise
    return f


def _open_uart(port, baudrate):
    try:
        import machine
        uart_class = machine.UART
    except (ImportError, AttributeError):
        raise SerialException("serial port %r: this MicroPython port has no machine.UART" % (port,))
    uart_id = port
    try:
        uart_id = int(port)
    except (TypeError, ValueError):
        pass
    return uart_class(uart_id, baudrate=baudrate, bits=8, parity=None, stop=1, timeout=0)


class Serial(SerialBase):
    """``Serial(port, baudrate=19200, timeout=0, write_timeout=0)``: ``port`` a path
    (unix port) or a UART id (board).  ``timeout`` as in pyserial: 0 never waits,
    None waits for ``n`` bytes, a number waits up to that many seconds."""

    def __init__(self, port, baudrate=19200, timeout=0, write_timeout=0, **_ignored):
        SerialBase.__init__(self, port, baudrate, timeout, write_timeout)
        self.is_tty = isinstance(port, str) and port.startswith("/")
        self.stream = _open_tty(port, baudrate) if self.is_tty else _open_uart(port, baudrate)
        self._poller = select.poll()
        self._poller.register(self.stream, select.POLLIN)

    def _ready(self, wait_ms):
        """True when bytes are there; raises on a hang-up; False after wait_ms (-1: forever)."""
        for _, events in self._poller.poll(wait_ms):
            if events & (select.POLLHUP | select.POLLERR):
                raise hangup(self.port)
            if events & select.POLLIN:
                return True
        return False

    def read(self, n=1):
        out = b""
        start = time.ticks_ms()
        while len(out) < n:
            if self.timeout is None:
                wait = _NOT_READY
            else:
                wait = max(0, int(self.timeout * 1000) - time.ticks_diff(time.ticks_ms(), start))
            if not self._ready(wait):
                break
            try:
                chunk = self.stream.read(n - len(out))
            except OSError as e:
                raise SerialException(e.errno, "serial port %s: read failed: %s" % (self.port, e))
            if not chunk:
                raise hangup(self.port)   # polled readable, and nothing: the device is gone
            out += chunk
        return out

    def write(self, data):
        try:
            n = self.stream.write(data)
        except OSError as e:
            raise SerialException(e.errno, "serial port %s: write failed: %s" % (self.port, e))
        return 0 if n is None else n   # None: a non-blocking UART took nothing

    @property
    def in_waiting(self):
        if not self.is_tty:
            return self.stream.any()
        return 1 if self._ready(0) else 0   # no FIONREAD here: "some" is all we can tell

    @property
    def out_waiting(self):
        txdone = getattr(self.stream, "txdone", None)
        if txdone is None:
            return 0
        return 0 if txdone() else 1

    def flush_output(self):
        pass   # neither machine.UART nor the unix port's termios can discard queued output

    def fileno(self):
        if self.is_tty:
            return self.stream.fileno()
        raise SerialException(_EIO, "serial port %r: machine.UART has no file descriptor; poll .stream" % (self.port,))

    @property
    def is_open(self):
        return self.stream is not None

    def close(self):
        stream, self.stream = self.stream, None
        if stream is None:
            return
        try:
            self._poller.unregister(stream)
        except (OSError, KeyError):
            pass
        if self.is_tty:
            stream.close()
        else:
            deinit = getattr(stream, "deinit", None)
            if deinit is not None:
                deinit()
