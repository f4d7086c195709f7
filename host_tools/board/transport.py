"""Talking to a MicroPython board's filesystem: the `Transport` protocol and its mpremote backend.

Paths are relative to the board's flash root and use "/" ("app.mpy", "ca/amazon.der").
Tests use `tests/host/fakeboard.py` instead of a real board.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..common.errors import SpottyError

# On the ESP32 a maintenance session may outlast the firmware's watchdog, which
# cannot be stopped once started; MicroPython lets it be re-armed with a longer
# timeout instead. A reset at the end of the session brings the normal one back.
MAINTENANCE_WDT_MS = 30 * 60 * 1000
CHUNK = 1024  # bytes per write command: small enough for the board's heap
EXEC_TIMEOUT_S = 10  # mpremote's own: the longest silence from the board


class BoardError(SpottyError):
    """The board refused or failed an operation."""


def port_exists(port: str) -> bool:
    if "://" in port:  # rfc2217://, socket://: reached over the network
        return True
    if os.path.exists(port):
        return True
    from serial.tools import list_ports

    return any(p.device == port for p in list_ports.comports())


def check_port(port: str, exists: Callable[[str], bool] = port_exists) -> None:
    """A port that is not there is said as such (`flash`, `deploy`, `provision`...)."""
    if not exists(port):
        raise BoardError(
            "serial port %s does not exist: is the board plugged in? (on Linux, look at "
            "`ls /dev/ttyUSB* /dev/ttyACM*`; `python -m serial.tools.list_ports` lists "
            "them all)" % port
        )


def serial_boards() -> list[str]:
    """The serial ports with a USB device behind them, as mpremote's `connect auto` sees
    boards (a port with a USB vendor and product id)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports() if p.vid is not None
                  and p.pid is not None)


def choose_port(port: str | None, say: Callable[[str], None]) -> str:
    """The port given, else the one serial board connected (said with `say`)."""
    from ..common.argparsing import PORT_ENV
    from ..common.errors import UsageError

    if port:
        return port
    boards = serial_boards()
    if len(boards) == 1:
        say("using the board on %s, the one serial board connected" % boards[0])
        return boards[0]
    if not boards:
        raise UsageError("no board found on a USB serial port: plug it in, or name its port "
                         "with --port or %s" % PORT_ENV)
    raise UsageError("%d serial boards are connected (%s): choose one with --port or %s"
                     % (len(boards), ", ".join(boards), PORT_ENV))


@dataclass(frozen=True)
class RemoteFile:
    size: int
    sha256: str  # hex


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Transport(Protocol):
    def list_files(self) -> dict[str, RemoteFile]:
        """Every file on the board, recursively, with its size and SHA-256."""
        ...

    def read_file(self, path: str) -> bytes:
        """The file's bytes; FileNotFoundError if it does not exist."""
        ...

    def write_file(self, path: str, data: bytes) -> None:
        """Replace the file atomically (temp file, then rename); the parent must exist."""
        ...

    def mkdir(self, path: str) -> None:
        """Create the directory and its parents; fine if it exists."""
        ...

    def remove(self, path: str) -> None:
        """Remove a file; fine if it does not exist."""
        ...

    def exec(self, code: str, timeout_s: float = EXEC_TIMEOUT_S) -> str:
        """Run a snippet on the board and return what it printed; give up when the board
        stays silent for timeout_s."""
        ...

    def soft_reset(self) -> None:
        """Restart MicroPython so that main.py runs."""
        ...


# -- snippets that run on the board ------------------------------------------------
# Plain MicroPython (os, hashlib, binascii): they also run on the unix port, which
# is how tests check them. ROOT is the flash root, "/" on the ESP32.

_LIST = """
import os, hashlib, binascii
_b = bytearray(512)
_m = memoryview(_b)
def _h(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(_b)
            if not n:
                break
            h.update(_m[:n])
    return binascii.hexlify(h.digest()).decode()
def _w(d, rel):
    for e in os.ilistdir(d):
        p = d.rstrip('/') + '/' + e[0]
        if e[1] & 0x4000:
            _w(p, rel + e[0] + '/')
        else:
            print('F', os.stat(p)[6], _h(p), rel + e[0])
_w(%r, '')
"""

_MKDIR = """
import os
_p = ''
for _part in %r.split('/'):
    _p = _p + '/' + _part if _p else _part
    try:
        os.mkdir(%r + _p)
    except OSError as e:
        if e.args[0] != 17:
            raise
"""

_REMOVE = """
import os
try:
    os.remove(%r)
except OSError as e:
    if e.args[0] != 2:
        raise
"""

# Rename replaces atomically on LittleFS; FAT refuses to rename over a file.
_RENAME = """
import os
try:
    os.rename(%r, %r)
except OSError:
    os.remove(%r)
    os.rename(%r, %r)
"""

_MAINTENANCE = """
import sys
if sys.platform == 'esp32':
    import machine
    machine.WDT(timeout=%d).feed()
"""


def parse_listing(text: str) -> dict[str, RemoteFile]:
    files = {}
    for line in text.splitlines():
        if not line.startswith("F "):
            continue
        _, size, digest, path = line.split(" ", 3)
        files[path] = RemoteFile(int(size), digest)
    return files


class MpremoteTransport:
    """A board on a serial port, through mpremote's Python API.

    Why the API (`mpremote.transport_serial.SerialTransport`) and not the `mpremote`
    command: one serial connection and one raw-REPL session serve a whole deploy, so
    the running firmware is interrupted and soft-reset once rather than per command;
    file contents go over as bytes without temp files; a failure on the board comes
    back as an exception carrying the board's traceback instead of text to scrape
    from stdout. mpremote is pinned in pyproject.toml, and only a handful of its
    calls are used (exec, fs_readfile, fs_writefile, enter/exit_raw_repl, close).

    `link` is any mpremote Transport (SerialTransport on hardware); `root` is the
    flash root ("/" on the ESP32, a directory when tests run the unix port).
    """

    def __init__(self, link, root: str = "/"):
        self._link = link
        self._root = root

    @classmethod
    def open(cls, port: str, baud: int = 115200) -> MpremoteTransport:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        try:
            link = SerialTransport(port, baudrate=baud)
        except TransportError as e:
            check_port(port)
            raise BoardError(
                "cannot open %s (%s): is another program, such as a serial monitor, "
                "using it?" % (port, e)
            ) from e
        try:
            # Ctrl-C stops the firmware; the soft reset in raw-REPL mode gives a clean
            # heap and does not start main.py again.
            link.enter_raw_repl(soft_reset=True)
        except TransportError as e:
            link.close()
            raise BoardError(
                "no MicroPython REPL answered on %s: is MicroPython flashed "
                "(`spotty flash`)?" % port
            ) from e
        transport = cls(link)
        transport.exec(_MAINTENANCE % MAINTENANCE_WDT_MS)
        return transport

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> MpremoteTransport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _abs(self, path: str) -> str:
        return self._root.rstrip("/") + "/" + path.strip("/")

    def exec(self, code: str, timeout_s: float = EXEC_TIMEOUT_S) -> str:
        from mpremote.transport import TransportError

        try:
            out, err = self._link.exec_raw(code, timeout=timeout_s)
        except TransportError as e:
            raise BoardError("the board did not answer: %s" % e) from e
        if err:
            raise BoardError("the board raised: %s" % _last_line(err.decode("utf-8", "replace")))
        return out.decode("utf-8", "replace")

    def list_files(self) -> dict[str, RemoteFile]:
        return parse_listing(self.exec(_LIST % self._root))

    def read_file(self, path: str) -> bytes:
        from mpremote.transport import TransportError

        try:
            return bytes(self._link.fs_readfile(self._abs(path), chunk_size=CHUNK))
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, "not on the board", path) from e
            raise BoardError("cannot read %s from the board: %s" % (path, e)) from e
        except TransportError as e:
            raise BoardError("cannot read %s from the board: %s" % (path, e)) from e

    def write_file(self, path: str, data: bytes) -> None:
        from mpremote.transport import TransportError

        target = self._abs(path)
        temp = target + ".tmp"
        try:
            self._link.fs_writefile(temp, data, chunk_size=CHUNK)
        except (OSError, TransportError) as e:
            raise BoardError("cannot write %s on the board: %s" % (path, e)) from e
        self.exec(_RENAME % (temp, target, target, temp, target))

    def mkdir(self, path: str) -> None:
        self.exec(_MKDIR % (path.strip("/"), self._root.rstrip("/") + "/"))

    def remove(self, path: str) -> None:
        self.exec(_REMOVE % self._abs(path))

    def soft_reset(self) -> None:
        # A soft reset runs main.py only from the friendly REPL, so leave raw mode first.
        self._link.exit_raw_repl()
        self._link.serial.write(b"\x04")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def read_json(transport: Transport, path: str) -> object | None:
    """A JSON file from the board, or None when it is missing or unreadable."""
    try:
        return json.loads(transport.read_file(path))
    except FileNotFoundError:
        return None
    except ValueError:
        return None
