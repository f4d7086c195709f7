"""`python -m host_tools.bench` (`make bench`): the sessions, the heap, the shadow link, a month's
soak (its heap trend), OTA.

Every figure printed also goes to `.sim/bench.json`, one key each. With SPOTTY_MICROPYTHON
naming a 32-bit interpreter (../shared/tools/micropython-esp32like), the heap figures are
measured on it too ("as on an ESP32", keys esp32_*) beside the wheel's. What cannot run
here (the shadow link without mosquitto) is named and skipped; the rest still runs.
"""

import json
import os
import sys
from pathlib import Path

from ..common.errors import SpottyError
from ..sim.runtime import interpreter, wheel_micropython_path, word_bits
from . import board_figures, iot, modelled, modules, ota, sessions, soak
from .board_lines import KEYS, format_lines

OUT = Path(".sim/bench.json")


def esp32_interpreter() -> str | None:
    chosen = os.environ.get("SPOTTY_MICROPYTHON")
    return chosen if chosen and word_bits(chosen) == 32 else None


def mosquitto_missing() -> str | None:
    from ..aws.broker import mosquitto_path

    try:
        mosquitto_path()
    except SpottyError as e:
        return str(e)
    return None


def main() -> int:
    figures: dict = {}
    skipped = []
    no_broker = mosquitto_missing()
    if no_broker:
        skipped.append("the shadow link figures (heap with the link, MQTT traffic, AWS cost, "
                       "the modelled ESP32): " + no_broker)
    esp32 = esp32_interpreter()
    if not esp32:
        skipped.append("the ESP32 figures: set SPOTTY_MICROPYTHON to a 32-bit interpreter, "
                       "e.g. ../shared/tools/micropython-esp32like")
    with interpreter(wheel_micropython_path()):
        sessions.main(figures)
    _heap(figures, esp32, iot_on=not no_broker)
    prefix = "esp32_" if esp32 else ""
    with interpreter(esp32 or wheel_micropython_path()):
        if not no_broker:
            _board(figures, prefix, esp32)
        _modules(figures, prefix, esp32)
    if not no_broker:
        iot.main(figures)
        with interpreter(wheel_micropython_path()):
            modelled.main(figures)
        _soak(figures, esp32)
    print()
    with interpreter(wheel_micropython_path()):
        ota.main(figures)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    print("\nFigures written to %s (%d keys)." % (OUT, len(figures)))
    for what in skipped:
        print("Skipped: " + what)
    return 0


def _heap(figures: dict, esp32: str | None, iot_on: bool) -> None:
    """The smallest heaps: on the wheel, then on the 32-bit interpreter with the OTA cycle
    and each phase of the session cycle (where it counts, as on an ESP32)."""
    with interpreter(wheel_micropython_path()):
        sessions.heap_figures(figures, "", iot=iot_on, ota=False)
    if esp32:
        with interpreter(esp32):
            sessions.heap_figures(figures, "esp32_", iot=iot_on, source=False)
            if iot_on:
                with sessions.HeapProbe(installed=True, iot=True) as probe:
                    phases = sessions.phase_heaps_kb(
                        probe, 40, figures["esp32_heap_cycle_kb"] + sessions.PHASE_STEP_KB)
                figures.update({"esp32_phase_%s_kb" % k: v for k, v in phases.items()})
    print()
    print("\n".join(sessions.heap_lines(figures)))
    print("\n".join(sessions.phase_line(figures, "esp32_" if esp32 else "")))


def _board(figures: dict, prefix: str, esp32: str | None) -> None:
    """hw-report's lines, measured on the current interpreter standing in for the board."""
    board = board_figures.measure(board_figures.HEAP if esp32 else None)
    print("\nA board's figures, as `make hw-report PORT=...` prints them (%s; TLS on "
          "loopback):" % ("32-bit interpreter as the board, %s heap" % board_figures.HEAP
                          if esp32 else "64-bit wheel as the board"))
    print("\n".join(format_lines(board)))
    for key in KEYS:
        figures[prefix + "board_" + key] = board[key]


def _soak(figures: dict, esp32: str | None) -> None:
    """The month's heap trend: on the 32-bit interpreter with a stock ESP32's heap (so a
    month that runs out of memory shows here), else on the wheel."""
    heapsize = board_figures.HEAP if esp32 else None
    label = ("32-bit interpreter, %s heap as on an ESP32" % heapsize if esp32
             else "64-bit wheel, its default heap")
    with interpreter(esp32 or wheel_micropython_path()):
        soak.main(figures, heapsize, label)


def _modules(figures: dict, prefix: str, esp32: str | None) -> None:
    resident, on_demand = modules.module_costs()
    figures[prefix + "resident_kb"] = round(sum(size for _, size in resident) / 1024, 1)
    figures[prefix + "on_demand_kb"] = round(sum(size for _, size in on_demand) / 1024, 1)
    figures[prefix + "module_bytes"] = dict(resident + on_demand)
    print()
    print("\n".join(modules.table_lines(resident, on_demand, 32 if esp32 else 64)))


if __name__ == "__main__":
    sys.exit(main())
