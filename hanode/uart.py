"""A pyserial-shaped serial port for the heartbeat link.

Theory of operation
-------------------
``Serial(port, baudrate=19200, timeout=0)`` gives the agent one small surface
on three platforms:

* Linux, plain termios (always available): the device is opened
  ``O_RDWR | O_NOCTTY | O_NONBLOCK`` (never our controlling tty; close-on-exec
  as every Python fd), made exclusive three ways - ``TIOCEXCL`` (refuses other
  non-root openers), ``flock`` (what pyserial's ``exclusive=True`` does; also
  binds root) and a UUCP lock file ``LCK..ttyS0`` in HDB format (what minicom,
  getty and Heartbeat's ``devlock`` look at) - then set to raw 8N1.
* Linux with pyserial installed (``backend="pyserial"``, the default when it
  imports): pyserial opens, locks and closes the port (``serial.Serial(...,
  exclusive=True)``, which also raises DTR/RTS); we still add TIOCEXCL, the
  lock file, and our raw termios on top so both backends put exactly the same
  line settings on the device.  Reads and writes go to the fd directly on
  both: pyserial 3.5's non-blocking write (write_timeout=0) spins forever on
  EAGAIN, and the agent must never block on a 1920 B/s line.
* MicroPython with ``machine.UART``: a thin wrapper with the same methods.

Heartbeats must be fresh, not queued.  19200 baud carries 1920 bytes/s, so a
backlog in the kernel's output queue is a late heartbeat: ``write_latest``
looks at the queue (TIOCOUTQ) and, if it is not empty, discards it (TCOFLUSH)
before writing, counting ``replaced``.  A flush can cut a frame in half on the
wire, so after a flush the new data is preceded by ``resync`` (a 0x00, the
COBS delimiter) which ends the truncated frame at the receiver instead of
letting it swallow the new one.

Linux ptys have no output queue (TIOCOUTQ is always 0 and the bytes sit in
the master's input buffer), so on a pty slave - what the null-modem simulator
gives the agents - ``out_waiting`` comes from a model of the line draining at
``baudrate / 10`` bytes a second since our last write.  The simulator
receives our TCOFLUSH through packet mode and discards what it has not sent.
"""

import sys

VALID_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800)  # Heartbeat's list


if sys.implementation.name == "micropython":

    class SerialException(OSError):
        pass

    class Serial:
        """machine.UART(id, baudrate) behind the same surface (8N1, no flow control)."""

        def __init__(self, port, baudrate=19200, timeout=0, write_timeout=0, **_ignored):
            if baudrate not in VALID_BAUDS:
                raise ValueError("baud rate %r not supported (use one of %r)" % (baudrate, VALID_BAUDS))
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
            self.port = port
            self.baudrate = baudrate
            self.timeout = timeout
            self.replaced = 0
            self._uart = uart_class(uart_id, baudrate=baudrate, bits=8, parity=None, stop=1,
                                    timeout=int((timeout or 0) * 1000))

        def read(self, n=1):
            data = self._uart.read(n)
            return data if data else b""

        def write(self, data):
            n = self._uart.write(data)
            return len(data) if n is None else n

        def write_latest(self, data, resync=b"\x00"):
            # machine.UART cannot discard queued output; its buffers are small and
            # write() blocks when they are full, so a backlog cannot grow anyway.
            return self.write(data)

        @property
        def in_waiting(self):
            return self._uart.any()

        @property
        def out_waiting(self):
            txdone = getattr(self._uart, "txdone", None)
            if txdone is None:
                return 0
            return 0 if txdone() else 1

        def flush_output(self):
            pass

        def fileno(self):
            return self._uart  # select.poll on MicroPython takes the stream object

        def close(self):
            deinit = getattr(self._uart, "deinit", None)
            if deinit is not None:
                deinit()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

else:
    import errno
    import fcntl
    import os
    import select
    import stat
    import struct
    import termios
    import time
    from typing import Any, Optional

    try:
        import serial as _pyserial  # optional dependency (extra [serial])
    except ImportError:  # pragma: no cover - depends on the environment
        _pyserial = None

    LOCK_DIRS = ("/var/lock", "/run/lock")
    _PTY_SLAVE_MAJORS = range(136, 144)  # Unix98 pty slaves (Documentation/admin-guide/devices.txt)
    _SPEEDS = dict((b, getattr(termios, "B%d" % b)) for b in VALID_BAUDS)

    class SerialException(OSError):
        """The port cannot be used; the message names the device (and the holder).

        ``errno`` is set when there is one; ``str()`` is the message alone.
        """

        def __str__(self) -> str:
            return self.strerror if self.strerror else super().__str__()

    def _ioctl_int(fd: int, request: int) -> int:
        return struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]

    def _raw_8n1(fd: int, baudrate: int) -> None:
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
        speed = _SPEEDS[baudrate]
        termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag | speed, lflag, speed, speed, cc])

    def _lock_name(device: str) -> str:
        """LCK..ttyS0 for /dev/ttyS0; LCK..pts_7 for /dev/pts/7 (unique, no slash)."""
        if device.startswith("/dev/"):
            return "LCK.." + device[5:].replace("/", "_")
        return "LCK.." + os.path.basename(device)

    def _pid_alive(pid: int) -> bool:
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True

    def _read_lock_pid(path: str) -> Optional[int]:
        """The PID in an HDB lock file (ASCII); None if unreadable or garbage."""
        try:
            with open(path, "rb") as f:
                text = f.read(64)
        except OSError:
            return None
        try:
            return int(text.strip() or b"x")
        except ValueError:
            return None

    class Serial:
        """The serial port; see the module docstring.

        ``Serial(port, baudrate=19200, timeout=0, write_timeout=0, lock_dir=None,
        backend=None)``: ``timeout`` 0 means read() never blocks, None blocks
        for ``n`` bytes, a number waits up to that many seconds.
        ``write_timeout`` 0 means write() never blocks and returns the count
        written (as in pyserial).  ``lock_dir``: where the UUCP lock goes
        (default /var/lock, else /run/lock; ``""`` for none).  ``backend``:
        "termios", "pyserial" or None (pyserial if installed).
        """

        def __init__(self, port: str, baudrate: int = 19200, timeout: Optional[float] = 0,
                     write_timeout: Optional[float] = 0, lock_dir: Optional[str] = None,
                     backend: Optional[str] = None) -> None:
            if isinstance(baudrate, bool) or baudrate not in VALID_BAUDS:
                raise ValueError("%s: baud rate %r not supported (Heartbeat's rates: %s)"
                                 % (port, baudrate, ", ".join(str(b) for b in VALID_BAUDS)))
            if backend is None:
                backend = "pyserial" if _pyserial is not None else "termios"
            if backend not in ("termios", "pyserial"):
                raise ValueError("backend must be 'termios' or 'pyserial', not %r" % (backend,))
            if backend == "pyserial" and _pyserial is None:
                raise SerialException("%s: backend 'pyserial' asked for but pyserial is not installed"
                                      " (pip install pyserial, or use backend='termios')" % port)
            self.port = port
            self.baudrate = baudrate
            self.timeout = timeout
            self.write_timeout = write_timeout
            self.backend = backend
            self.replaced = 0
            self.lock_path: Optional[str] = None
            self.is_pty = False
            self._fd = -1
            self._ser: Any = None
            self._queued = 0.0  # pty model: bytes not yet on the wire at _queued_at
            self._queued_at = 0.0
            self._rate = baudrate / 10.0
            if lock_dir is None:
                lock_dir = next((d for d in LOCK_DIRS if os.path.isdir(d)), "")
            self._lock_dir = lock_dir  # "" when there is none: flock still excludes
            self._device = self._check_device(port)
            try:
                if backend == "pyserial":
                    self._open_pyserial()
                else:
                    self._open_termios()
                self._lock()
                _raw_8n1(self._fd, baudrate)
                termios.tcflush(self._fd, termios.TCIOFLUSH)  # stale bytes from before we owned it
            except BaseException:
                self.close()
                raise

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
            self.is_pty = os.major(st.st_rdev) in _PTY_SLAVE_MAJORS
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
                path = os.path.join(self._lock_dir, _lock_name(self._device))
                pid = _read_lock_pid(path)
                if pid is not None and _pid_alive(pid):
                    holder = " by PID %d (lock file %s)" % (pid, path)
            return SerialException(errno.EBUSY, "serial port %s is already open%s" % (self.port, holder))

        def _open_termios(self) -> None:
            try:
                self._fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                raise self._open_error(e)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy()
            self._exclusive()

        def _open_pyserial(self) -> None:
            try:
                self._ser = _pyserial.Serial(self.port, self.baudrate, bytesize=8, parity="N",
                                             stopbits=1, timeout=self.timeout, xonxoff=False,
                                             rtscts=False, dsrdtr=False, exclusive=True,
                                             write_timeout=self.write_timeout)
            except _pyserial.SerialException as e:
                errno_ = getattr(e, "errno", None)
                if errno_ in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise self._busy()
                if isinstance(errno_, int):
                    raise self._open_error(OSError(errno_, os.strerror(errno_)))
                raise SerialException("cannot open serial port %s: %s" % (self.port, e))
            self._fd = self._ser.fileno()
            self._exclusive()

        def _exclusive(self) -> None:
            try:
                fcntl.ioctl(self._fd, termios.TIOCEXCL)
            except OSError:
                pass  # not every tty driver has it; flock and the lock file still hold

        def _lock(self) -> None:
            """Take the UUCP lock (HDB: PID as 10-char decimal + newline)."""
            lock_dir = self._lock_dir
            if not lock_dir:
                return
            path = os.path.join(lock_dir, _lock_name(self._device))
            me = os.getpid()
            tmp = os.path.join(lock_dir, "LTMP.%d" % me)
            try:
                with open(tmp, "w") as f:
                    f.write("%10d\n" % me)
                os.chmod(tmp, 0o644)
                for _ in range(3):
                    try:
                        os.link(tmp, path)  # atomic, and the file is complete when it appears
                        self.lock_path = path
                        return
                    except FileExistsError:
                        pass
                    pid = _read_lock_pid(path)
                    if pid is not None and pid != me and _pid_alive(pid):
                        raise SerialException(errno.EBUSY, "serial port %s is locked by PID %d (lock file %s)"
                                              % (self.port, pid, path))
                    # Stale (dead PID or garbage), or ours from an earlier open
                    # in this process that is gone: we hold the flock, so nobody
                    # has the device open now.
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                raise SerialException(errno.EBUSY, "serial port %s: cannot take lock file %s"
                                      " (it keeps reappearing)" % (self.port, path))
            except SerialException:
                raise
            except OSError as e:
                raise SerialException(e.errno, "serial port %s: cannot create lock file %s: %s"
                                      % (self.port, path, e.strerror))
            finally:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

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
                try:
                    chunk = os.read(self._fd, n - len(out))
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise SerialException(e.errno, "serial port %s: read failed: %s" % (self.port, e.strerror))
                if not chunk:
                    raise SerialException(errno.EIO, "serial port %s: hung up (readable but no data:"
                                          " device removed or the other end closed?)" % self.port)
                out += chunk
            return bytes(out)

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

        reset_output_buffer = flush_output  # pyserial's name

        def reset_input_buffer(self) -> None:
            termios.tcflush(self._fd, termios.TCIFLUSH)

        def write_latest(self, data: bytes, resync: bytes = b"\x00") -> int:
            """Write ``data`` replacing, not queueing behind, anything still unsent.

            Returns the bytes of ``data`` written (resync bytes not counted).
            """
            if self.out_waiting > 0:
                self.flush_output()
                self.replaced += 1
                if resync:
                    data = bytes(resync) + bytes(data)
                    return max(0, self.write(data) - len(resync))
            return self.write(data)

        def close(self) -> None:
            if self.lock_path is not None:
                if _read_lock_pid(self.lock_path) == os.getpid():
                    try:
                        os.unlink(self.lock_path)
                    except OSError:
                        pass
                self.lock_path = None
            if self._fd >= 0:
                try:
                    fcntl.ioctl(self._fd, termios.TIOCNXCL)
                except OSError:
                    pass
            if self._ser is not None:
                self._ser.close()
                self._ser = None
            elif self._fd >= 0:
                os.close(self._fd)
            self._fd = -1

        def __enter__(self) -> "Serial":
            return self

        def __exit__(self, *exc: Any) -> None:
            self.close()

        def __repr__(self) -> str:
            return "Serial(%r, baudrate=%d, backend=%r, open=%r)" % (
                self.port, self.baudrate, self.backend, self.is_open)
