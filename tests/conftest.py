import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Core and case modules import as on the device: `from core import config`.
for p in (REPO / "device", REPO / "tests" / "unit"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
