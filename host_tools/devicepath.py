"""Import the device's pure `core` package from CPython (the CLI validates config with it)."""

import sys
import types

from .runtime import DEVICE_DIR


def install() -> None:
    if "micropython" not in sys.modules:
        shim = types.ModuleType("micropython")
        shim.const = lambda value: value
        sys.modules["micropython"] = shim
    if str(DEVICE_DIR) not in sys.path:
        sys.path.insert(0, str(DEVICE_DIR))
