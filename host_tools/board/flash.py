"""Put stock MicroPython on a board with esptool (erase, then write); `deploy` follows."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..common.errors import SpottyError
from .transport import check_port, port_exists

# Where MicroPython's own instructions (micropython.org/download) put the image:
# after the ROM's 4 KB on the classic ESP32 and the S2, at 0 on the newer chips.
IMAGE_OFFSETS = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
}
IMAGE_MAGIC = 0xE9  # first byte of every ESP application/bootloader image
DEFAULT_BAUD = 460800

Runner = Callable[[list[str]], None]


def run_esptool(argv: list[str]) -> None:
    """esptool's documented entry point for scripts; failures become SpottyError."""
    import esptool
    from serial import SerialException

    try:
        esptool.main(argv)
    except esptool.FatalError as e:
        raise SpottyError("esptool: %s" % e) from e
    except SerialException as e:
        raise SpottyError(
            "esptool could not use the serial port (%s): is another program, such as a "
            "serial monitor or mpremote, using it?" % e
        ) from e
    except SystemExit as e:  # a usage error: esptool has already said why
        raise SpottyError("esptool stopped with status %s" % e.code) from e


def check_image(firmware_path: Path) -> None:
    if not firmware_path.is_file():
        raise SpottyError(
            "firmware image %s not found: download the ESP32_GENERIC .bin from "
            "https://micropython.org/download/ESP32_GENERIC/" % firmware_path
        )
    with firmware_path.open("rb") as f:
        first = f.read(1)
    if not first or first[0] != IMAGE_MAGIC:
        raise SpottyError(
            "%s is not an ESP32 firmware image (it should start with byte 0x%02X): "
            "take the .bin file, not the .elf, .uf2 or .app-bin" % (firmware_path, IMAGE_MAGIC)
        )


def esptool_commands(port: str, firmware_path: Path, chip: str, baud: int) -> list[list[str]]:
    """The two esptool runs: erase the whole flash, then write the image at its offset."""
    common = ["--chip", chip, "--port", port, "--baud", str(baud)]
    offset = "0x%x" % IMAGE_OFFSETS[chip]
    return [
        common + ["erase-flash"],
        common + ["write-flash", offset, str(firmware_path)],
    ]


def flash(
    port: str,
    firmware_path: str | os.PathLike,
    chip: str = "esp32",
    baud: int = DEFAULT_BAUD,
    *,
    run: Runner = run_esptool,
    exists: Callable[[str], bool] = port_exists,
) -> None:
    """Erase the board and write stock MicroPython; the caller deploys the firmware next.

    Erasing also wipes the filesystem (secrets, token, certificates): provision again.
    """
    if chip not in IMAGE_OFFSETS:
        raise SpottyError(
            "unknown chip %r: one of %s" % (chip, ", ".join(sorted(IMAGE_OFFSETS)))
        )
    path = Path(firmware_path)
    check_image(path)
    check_port(port, exists)
    for argv in esptool_commands(port, path, chip, baud):
        run(argv)
