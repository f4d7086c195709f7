"""The firmware's heap on the 32-bit interpreter, which has the ESP32's object sizes: the
full cycle (boot, play, timeout, pause, the session report on the shadow) and a whole
update cycle (push, download, verify, stage, reboot into it) must each run with the
shadow link on, as .mpy from the flash, under the required bound.

The binary is not on PyPI: it is ../shared/tools/micropython-esp32like beside the
repository (CI has it there), or SPOTTY_MICROPYTHON. Where it is missing the test is
skipped with that message, but in CI (CI=true) a missing binary fails.
"""

import os
from pathlib import Path

import pytest

from host_tools.bench.ota_cycle import OtaCycleProbe
from host_tools.bench.sessions import ESP32_HEAP_BOUND_KB, HeapProbe
from host_tools.sim.runtime import interpreter, word_bits

REPO = Path(__file__).resolve().parents[2]
BESIDE = REPO.parent / "shared" / "tools" / "micropython-esp32like"
# Held below the required bound (ESP32_HEAP_BOUND_KB, README "Memory on the board"), a few
# KB above what was measured (2026-12-03: the full cycle 78 KB, the update cycle 80), so
# that the room won stays won.
GUARD_KB = 82
OTA_GUARD_KB = 84
assert OTA_GUARD_KB <= ESP32_HEAP_BOUND_KB


def esp32_binary() -> str:
    chosen = os.environ.get("SPOTTY_MICROPYTHON")
    for candidate in ([chosen] if chosen else []) + [str(BESIDE)]:
        if os.access(candidate, os.X_OK) and word_bits(candidate) == 32:
            return candidate
    message = ("no 32-bit MicroPython: put micropython-esp32like at %s or name one in "
               "SPOTTY_MICROPYTHON" % BESIDE)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_full_cycle_with_the_shadow_link_fits_the_guard():
    with interpreter(esp32_binary()), HeapProbe(installed=True, iot=True) as probe:
        assert probe.works("%dK" % GUARD_KB), (
            "boot + play + pause + shadow report no longer fit %d KB on the 32-bit "
            "interpreter" % GUARD_KB)
        # And the probe can fail: far below, the same cycle must not run.
        assert not probe.works("%dK" % (GUARD_KB // 2))


def test_a_whole_update_cycle_fits_the_guard():
    with interpreter(esp32_binary()), OtaCycleProbe() as probe:
        assert probe.works("%dK" % OTA_GUARD_KB), (
            "an update (push, download, verify, stage, reboot into it) no longer fits %d KB "
            "on the 32-bit interpreter" % OTA_GUARD_KB)
        assert not probe.works("%dK" % (OTA_GUARD_KB // 2))
