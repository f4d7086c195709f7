"""What each firmware module costs in RAM once imported, as .mpy from the flash.

A stock ESP32 image copies an imported .mpy's bytecode into the GC heap, so every module
that stays imported takes heap for good: its bytecode, function objects, globals and the
names it interns. Each figure is the `gc.mem_alloc()` growth of importing the module
after everything it imports (leaf first), so a module is counted once, by itself.

Resident: what the boot imports (`main.py`'s modules and their import-time imports), and
on a board provisioned for AWS IoT the shadow link's modules, which stay once loaded.
On demand: what loads later, only when needed, and is dropped afterwards by `rare.drop`
(OTA, certificates, configuration schema, ...), and on a board with one TLS connection
the Spotify client (net.spotify, net.https, player, spotify_turn), loaded for each
Spotify call while the link's code is unloaded (cloud.py): the two never share the heap.
"""

import tempfile
from pathlib import Path

from ..common.devicepath import DEVICE_DIR
from ..common.errors import SpottyError
from ..common.imports import graph, load_order
from ..sim.runner import install
from ..sim.runtime import run_micropython

BOOT_ROOTS = ("store", "rare", "board.sim", "app", "startup")  # main.py on the simulated board
DROPPED_AFTER_BOOT = ("startup",)  # what it imports stays
LINK_ROOTS = ("net.mqtt", "shadow")  # what cloud.start imports on a board with a shadow link
NOT_ON_THE_SIM = {"main", "board.esp32", ""}

# The module names come in a file: the unix port dies ("uncaught NLR") on a command-line
# argument of over 255 characters (it interns each one).
_DRIVER = """
import gc, sys
with open(sys.argv[1]) as f:
    names = f.read().split()
for name in names:
    gc.collect()
    before = gc.mem_alloc()
    __import__(name)
    gc.collect()
    print(name, gc.mem_alloc() - before)
"""


def module_costs() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """([(module, bytes)] resident once booted with the link, [(module, bytes)] loaded on
    demand)."""
    edges = graph(DEVICE_DIR, top_level=True)
    resident = [name for name in load_order(edges, BOOT_ROOTS + LINK_ROOTS)
                if name not in DROPPED_AFTER_BOOT]
    rest = [name for name in load_order(edges, sorted(edges))
            if name not in resident and name not in NOT_ON_THE_SIM]
    with tempfile.TemporaryDirectory(prefix="spotty-modules-") as tmp:
        flash = Path(tmp)
        install(flash, DEVICE_DIR)
        (flash / "driver.py").write_text(_DRIVER)
        (flash / "modules.txt").write_text("\n".join(resident + rest))
        proc = run_micropython([str(flash / "driver.py"), str(flash / "modules.txt")],
                               extra_paths=[flash], capture_output=True, text=True,
                               timeout=120, cwd=flash)
    if proc.returncode != 0:
        raise SpottyError("module cost run failed:\n" + proc.stdout[-1500:] + proc.stderr[-1500:])
    costs = dict((name, int(size)) for name, size in
                 (line.split() for line in proc.stdout.splitlines()))
    return ([(n, costs[n]) for n in resident], [(n, costs[n]) for n in rest])


def table_lines(resident, on_demand, bits: int = 32) -> list[str]:
    lines = ["Firmware modules in RAM, %d-bit (.mpy imported; each after what it imports; a "
             "module that makes the interned-name pool grow carries that growth):" % bits]
    for title, rows in (("resident (booted, shadow link up)", resident),
                        ("loaded on demand (Spotify's turn, updates, ...), dropped after",
                         on_demand)):
        lines.append("  %s: %.1f KB in %d modules" % (
            title, sum(size for _, size in rows) / 1024, len(rows)))
        for name, size in sorted(rows, key=lambda row: -row[1]):
            lines.append("    %-22s %5.1f KB" % (name, size / 1024))
    return lines


