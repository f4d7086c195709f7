"""Where the firmware lives, and importing its pure `core` package from CPython (the CLI
validates config with it)."""

import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVICE_DIR = REPO / "device"


def install() -> None:
    if "micropython" not in sys.modules:
        shim = types.ModuleType("micropython")
        shim.const = lambda value: value
        sys.modules["micropython"] = shim
    if str(DEVICE_DIR) not in sys.path:
        sys.path.insert(0, str(DEVICE_DIR))
