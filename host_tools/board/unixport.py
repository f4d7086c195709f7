"""A board that is the MicroPython unix port: `UnixPortLink` plays mpremote's raw REPL
with one long-lived `micropython` process that runs each snippet in the same globals, as
the raw REPL does, with a directory as its flash. Wrapped in `MpremoteTransport` it lets
the benchmark run `spotty hw-report`'s snippets on the 32-bit interpreter (figures to set
beside a real board's), and the tests check that what we send to boards really works
under MicroPython.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from mpremote.transport import Transport as MpremoteLinkBase
from mpremote.transport import TransportError, TransportExecError

from ..sim.runtime import micropython_path

# The raw REPL, in MicroPython: read a length line and that many bytes, run them
# in shared globals, then end the output with EOF, the error text and EOF.
_REPL = """
import sys, io, os
os.chdir(sys.argv[1])
sys.path[:] = ['', '.frozen', 'lib']  # as on the ESP32, with the flash as the cwd
g = {}
inp = sys.stdin.buffer
while True:
    line = inp.readline()
    if not line:
        break
    src = inp.read(int(line))
    err = ''
    try:
        exec(src.decode(), g)
    except Exception as e:
        buf = io.StringIO()
        sys.print_exception(e, buf)
        err = buf.getvalue()
    sys.stdout.write('\\x04' + err + '\\x04')
"""


class _SerialRecorder:
    def __init__(self):
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


class UnixPortLink(MpremoteLinkBase):
    """An mpremote link whose 'board' is the unix port with `flash` as its filesystem."""

    def __init__(self, flash: Path, heapsize: str | None = None):
        flash.mkdir(parents=True, exist_ok=True)
        script = flash.parent / (flash.name + "-repl.py")
        script.write_text(_REPL)
        self.serial = _SerialRecorder()
        self.in_raw_repl = True
        self.executed: list[str] = []
        self.timeouts: list[float] = []  # the longest silence each exec would allow a board
        self._proc = subprocess.Popen(
            [micropython_path(), *(["-X", "heapsize=" + heapsize] if heapsize else []),
             str(script), str(flash)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def exec_raw(self, command: str, timeout=10, data_consumer=None) -> tuple[bytes, bytes]:
        """Waits for the end however long the unix port runs (the timeout is recorded)."""
        self.executed.append(command)
        self.timeouts.append(timeout)
        source = command.encode()
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(b"%d\n" % len(source) + source)
        self._proc.stdin.flush()
        out = b""
        while out.count(b"\x04") < 2:
            byte = self._proc.stdout.read(1)
            if not byte:
                raise TransportError("the unix port exited: %r" % out[-200:])
            out += byte
        data, err, _ = out.split(b"\x04")
        return data, err

    def exec(self, command, data_consumer=None) -> bytes:
        data, err = self.exec_raw(command)
        if err:
            raise TransportExecError(data, err.decode())
        if data_consumer:
            data_consumer(data)
        return data

    def eval(self, expression, parse=True):
        out = self.exec("print(repr(%s))" % expression).strip()
        return ast.literal_eval(out.decode()) if parse else out

    def exit_raw_repl(self) -> None:
        self.in_raw_repl = False
        self.serial.write(b"\r\x02")

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
