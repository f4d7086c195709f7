import sys
from pathlib import Path

from host_tools.common import devicepath

devicepath.install()  # `micropython.const` shim + device/ on sys.path, as on the device
sys.path.insert(0, str(Path(__file__).resolve().parent / "unit"))
