"""`spotty flash`, `spotty deploy` and `spotty hw-report`, and opening the board a subcommand
works on."""

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..common.devicepath import DEVICE_DIR
from .transport import Transport

# After esptool resets it, a freshly flashed board boots and formats its filesystem:
# keystrokes sent before its REPL runs are lost.
FIRST_BOOT_S = 3.0


@contextlib.contextmanager
def open_board(port: str, attempts: int = 1) -> Iterator[Transport]:
    from .transport import BoardError, MpremoteTransport

    for attempt in range(1, attempts + 1):
        try:
            transport = MpremoteTransport.open(port)
            break
        except BoardError:
            if attempt == attempts:
                raise
            time.sleep(FIRST_BOOT_S)
    try:
        yield transport
    finally:
        transport.close()


def _deploy(port: str, reset: bool, attempts: int = 1) -> int:
    from .deploy import deploy

    with open_board(port, attempts) as board:
        deploy(board, DEVICE_DIR, sys.stdout)
        if reset:
            board.soft_reset()
            print("soft reset: the firmware is starting")
    return 0


def board_port(args) -> str:
    """--port (or $SPOTTY_PORT), else the one serial board connected."""
    from .transport import choose_port

    return choose_port(args.port, lambda text: print(text, file=sys.stderr))


def cmd_flash(args) -> int:
    from .flash import flash

    args.port = board_port(args)
    flash(args.port, args.firmware, args.chip, args.baud)
    print("MicroPython is on the board; the flash was erased, so provision it again.")
    if args.no_deploy:
        return 0
    time.sleep(FIRST_BOOT_S)
    return _deploy(args.port, reset=True, attempts=2)


def cmd_deploy(args) -> int:
    return _deploy(board_port(args), reset=not args.no_reset)


def cmd_hw_report(args) -> int:
    from .report import check_window, report

    check_window(args.session_s)
    with open_board(board_port(args)) as board:
        report(board, args.session_s, Path(args.json), sys.stdout, sys.stderr)
        board.soft_reset()
        print("soft reset: the firmware is starting", file=sys.stderr)
    return 0
