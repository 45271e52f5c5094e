"""The serial port on Linux through termios: pyserial's ``serialposix.py`` for hanode.

The device is opened ``O_RDWR | O_NOCTTY | O_NONBLOCK`` (never our controlling
tty; close-on-exec as every Python fd), made exclusive three ways - ``flock``
(what pyserial's ``exclusive=True`` does; binds root too), ``TIOCEXCL``
(refuses other non-root openers) and a UUCP lock file ``LCK..ttyS0``
(``lock.py``: what minicom, getty and Heartbeat's devlock look at) - then set
to raw 8N1 without flow control.  Reads and writes never block with the
default ``timeout=0, write_timeout=0``: the agent must never wait on a
1920 B/s line.

Linux ptys have no output queue (TIOCOUTQ is always 0 and the bytes sit in
the master's input buffer), so on a pty slave - what the null-modem simulator
gives the agents - ``out_waiting`` comes from a model of the line draining at
``baudrate / 10`` bytes a second since our last write.  The simulator
receives our TCOFLUSH through packet mode and discards what it has not sent.
"""
import errno
import fcntl
import os
import select
import stat
import struct
import termios
import time
from typing import Optional

from hanode.uart import lock
from hanode.uart.base import VALID_BAUDS, SerialBase, SerialException, hangup

PTY_SLAVE_MAJORS = range(136, 144)  # Unix98 pty slaves (Documentation/admin-guide/devices.txt)
SPEEDS = dict((b, getattr(termios, "B%d" % b)) for b in VALID_BAUDS)


def _ioctl_int(fd: int, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]


def raw_8n1(fd: int, baudrate: int) -> None:
    """Raw 8N1, no flow control, non-blocking reads, at ``baudrate``."""
    iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
    # Binary frames: no CR/NL mapping, no 8th-bit strip (Heartbeat's ISTRIP
    # and IGNCR suited its 7-bit text protocol, not COBS), no parity check,
    # and no BRKINT: a break (a cable being pulled) must not flush our queues;
    # with IGNBRK off it arrives as a 0x00, which is just a frame delimiter.
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
               | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
               | termios.IXOFF | termios.IXANY | termios.INPCK)
    iflag &= ~getattr(termios, "IUCLC", 0)
    oflag &= ~termios.OPOST
    # No CRTSCTS, unlike Heartbeat: the null-modem (3-wire or QEMU's
    # socket) has no RTS/CTS lines, and with hardware flow control on such
    # a cable the transmitter waits for CTS forever ("TTY write timeout").
    # No XON/XOFF either: 0x11/0x13 are ordinary bytes in a binary frame.
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB
               | termios.CRTSCTS | getattr(termios, "CBAUD", 0))
    cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL
    lflag &= ~(termios.ICANON | termios.ECHO | termios.ECHOE | termios.ECHOK
               | termios.ECHONL | termios.ISIG | termios.IEXTEN)
    cc[termios.VMIN] = 0   # read() returns what is there, at once
    cc[termios.VTIME] = 0
    speed = SPEEDS[baudrate]
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag | speed, lflag, speed, speed, cc])


class Serial(SerialBase):
    """``Serial(port, baudrate=19200, timeout=0, write_timeout=0, lock_dir=None)``.

    ``timeout`` 0 means read() never blocks, None blocks for ``n`` bytes, a
    number waits up to that many seconds.  ``write_timeout`` 0 means write()
    never blocks and returns the count written (as in pyserial).  ``lock_dir``:
    where the UUCP lock goes (default /var/lock, else /run/lock; ``""`` for none).
    """

    def __init__(self, port: str, baudrate: int = 19200, timeout: Optional[float] = 0,
                 write_timeout: Optional[float] = 0, lock_dir: Optional[str] = None) -> None:
        super().__init__(port, baudrate, timeout, write_timeout)
        self.lock_path: Optional[str] = None
        self.is_pty = False
        self._fd = -1
        self._excl = False  # we set TIOCEXCL (and so may clear it): never clear another holder's
        self._queued = 0.0  # pty model: bytes not yet on the wire at _queued_at
        self._queued_at = 0.0
        self._rate = baudrate / 10.0
        self._lock_dir = lock.default_lock_dir() if lock_dir is None else lock_dir
        self._device = self._check_device(port)
        try:
            self._open()
            if self._lock_dir:
                self.lock_path = lock.take(self._lock_dir, self._device, self._rdev, port)
            try:
                raw_8n1(self._fd, baudrate)
                termios.tcflush(self._fd, termios.TCIOFLUSH)  # stale bytes from before we owned it
            except termios.error as e:   # not an OSError: a character device that is no tty
                raise SerialException(e.args[0], "serial port %s is not a serial line (%s)" % (port, e.args[-1]))
        except BaseException:
            self.close()
            raise
        self.stream = self._fd

    # -- opening ------------------------------------------------------------

    def _check_device(self, port: str) -> str:
        try:
            st = os.stat(port)
        except FileNotFoundError:
            raise SerialException(errno.ENOENT, "serial port %s does not exist" % port)
        except PermissionError:
            raise SerialException(errno.EACCES, "serial port %s: permission denied" % port)
        if not stat.S_ISCHR(st.st_mode):
            raise SerialException(errno.ENOTTY, "serial port %s is not a character device" % port)
        self.is_pty = os.major(st.st_rdev) in PTY_SLAVE_MAJORS
        self._rdev = st.st_rdev
        return os.path.realpath(port)

    def _open_error(self, e: OSError) -> SerialException:
        if e.errno in (errno.EACCES, errno.EPERM):
            return SerialException(e.errno, "cannot open serial port %s: permission denied"
                                   " (run as root or join the group that owns it, often 'dialout')"
                                   % self.port)
        if e.errno == errno.EBUSY:
            return SerialException(e.errno, "serial port %s is in exclusive use by another"
                                   " process (TIOCEXCL)" % self.port)
        if e.errno in (errno.ENXIO, errno.ENODEV, errno.EIO):
            return SerialException(e.errno, "cannot open serial port %s: no such device"
                                   " (%s)" % (self.port, e.strerror))
        return SerialException(e.errno, "cannot open serial port %s: %s" % (self.port, e.strerror))

    def _busy(self) -> SerialException:
        holder = " (flock held by another open file)"
        if self._lock_dir:
            path = os.path.join(self._lock_dir, lock.lock_name(self._device))
            pid = lock.holder(path, self._rdev)
            if pid is not None:
                holder = " by PID %d (lock file %s)" % (pid, path)
        return SerialException(errno.EBUSY, "serial port %s is already open%s" % (self.port, holder))

    def _open(self) -> None:
        try:
            self._fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise self._open_error(e)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._busy()
        try:
            fcntl.ioctl(self._fd, termios.TIOCEXCL)
            self._excl = True
        except OSError:
            pass  # not every tty driver has it; flock and the lock file still hold

    # -- the pyserial-shaped surface -------------------------------------------

    def fileno(self) -> int:
        return self._fd

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    @property
    def in_waiting(self) -> int:
        return _ioctl_int(self._fd, termios.FIONREAD)

    @property
    def out_waiting(self) -> int:
        """Bytes written but not yet sent (TIOCOUTQ; modelled on a pty)."""
        if self.is_pty:
            return int(self._pty_backlog(time.monotonic()) + 0.999)
        return _ioctl_int(self._fd, termios.TIOCOUTQ)

    def _pty_backlog(self, now: float) -> float:
        return max(0.0, self._queued - (now - self._queued_at) * self._rate)

    def _account(self, n: int) -> None:
        if self.is_pty and n:
            now = time.monotonic()
            self._queued = self._pty_backlog(now) + n
            self._queued_at = now

    def read(self, n: int = 1) -> bytes:
        if self.timeout == 0:
            return self._read_now(n)
        out = bytearray()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while len(out) < n:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # With VMIN=0/VTIME=0 an empty tty returns 0 bytes, not EAGAIN, so
            # only select tells "nothing yet" from "hung up" (as in pyserial).
            if not select.select([self._fd], [], [], left)[0]:
                if left is not None:
                    break
                continue
            chunk = self._read_fd(n - len(out))
            if chunk is not None:
                out += chunk
        return bytes(out)

    def _read_now(self, n: int) -> bytes:
        """What is there, at most ``n`` bytes, without waiting (``timeout=0``: the agent's link
        reads this way twice a frame, when it knows bytes are there, so that is one read(2))."""
        chunk = self._read_fd(n, empty_is_hangup=False)
        if chunk:
            return chunk
        # With VMIN=0/VTIME=0 an empty tty returns 0 bytes, not EAGAIN, so
        # only select tells "nothing yet" from "hung up" (as in pyserial).
        if not select.select([self._fd], [], [], 0)[0]:
            return b""
        return self._read_fd(n) or b""

    def _read_fd(self, n: int, empty_is_hangup: bool = True) -> Optional[bytes]:
        """One read(2) of the port: the bytes, or None if it would block; a SerialException on an
        error, and on 0 bytes if ``empty_is_hangup`` (select said readable: hung up)."""
        try:
            chunk = os.read(self._fd, n)
        except BlockingIOError:
            return None
        except OSError as e:
            raise SerialException(e.errno, "serial port %s: read failed: %s" % (self.port, e.strerror))
        if not chunk and empty_is_hangup:
            raise hangup(self.port)
        return chunk

    def write(self, data: bytes) -> int:
        n = self._write_fd(bytes(data))
        self._account(n)
        return n

    def _write_fd(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        deadline = None if self.write_timeout is None else time.monotonic() + self.write_timeout
        while done < len(data):
            try:
                done += os.write(self._fd, view[done:])
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                raise SerialException(e.errno, "serial port %s: write failed: %s" % (self.port, e.strerror))
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if self.write_timeout:
                    raise SerialException(errno.ETIMEDOUT, "serial port %s: write timeout" % self.port)
                break  # write_timeout 0: non-blocking, report what went
            select.select([], [self._fd], [], left)
        return done

    def flush_output(self) -> None:
        """Discard what was written but not yet sent (TCOFLUSH)."""
        termios.tcflush(self._fd, termios.TCOFLUSH)
        self._queued = 0.0

    def reset_input_buffer(self) -> None:
        termios.tcflush(self._fd, termios.TCIFLUSH)

    def close(self) -> None:
        if self.lock_path is not None:
            lock.release(self.lock_path)
            self.lock_path = None
        if self._excl:
            try:
                fcntl.ioctl(self._fd, termios.TIOCNXCL)
            except OSError:
                pass
            self._excl = False
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self.stream = None
