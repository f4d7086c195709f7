# Whether this firmware version is good, across resets (ota/state.json).
#
# A new version is on trial (ota/boot.py) until it is healthy: its shadow link came
# up, which proves Wi-Fi, clock, TLS with the client certificate and MQTT work, i.e.
# that the next update can still reach it. Spotify's answers do not count: an
# outage or a revoked token there is no reason to throw a good version away. A
# board without AWS IoT is healthy once it has booted and warmed up.
# Crashes are counted across resets; enough of them start safe mode (only Wi-Fi
# and the shadow link run, so an update can still fix the device), a calm spell
# forgives them.
from micropython import const

import log
import rare
from core.ticks import ticks_diff
from ota.state import update

_TRIAL_MS = const(600000)  # a new version not healthy by then has failed this boot
_CALM_MS = const(600000)  # up this long without a crash: earlier crashes are forgiven
_SAFE_RETRY_MS = const(3600000)  # safe mode tries a normal boot again after this long


class Health:
    def __init__(self, board, boot, ota_state, version):
        """boot: what ota.boot.run said (None if it failed); ota_state: ota/state.json."""
        self.board = board
        self.version = version
        self.started_ms = board.ticks_ms()
        mode = (boot or {}).get("mode")
        self.safe = mode == "safe"  # core.otastate's modes: it is not kept loaded
        self.on_trial = mode == "trial"
        self.crashes = ota_state.get("crashes") or 0

    def healthy(self):
        if self.on_trial:
            self.on_trial = False
            _record("healthy")
            log.event("healthy", version=self.version)

    def tick(self, now):
        """Trial deadline, forgiven crashes, and leaving safe mode now and then."""
        if not (self.on_trial or self.crashes or self.safe):
            return
        up_ms = ticks_diff(now, self.started_ms)
        if self.on_trial and up_ms >= _TRIAL_MS:
            log.event("trial_failed", version=self.version)
            self.board.reset()  # counts as a boot without health
        if self.crashes and up_ms >= _CALM_MS and not self.safe:
            self.crashes = 0
            _record("calm")
        if self.safe and up_ms >= _SAFE_RETRY_MS:
            _record("calm")
            log.event("safe_mode_retry")
            self.board.reset()


def _record(change):
    update(change)
    rare.drop("core.otastate", "core.otadesired")
