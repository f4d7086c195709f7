# The simulated board: the esp32 board's interface on the MicroPython unix port.
# Never deployed. PIR edges come from a scenario file (SPOTTY_SIM names it) and
# are pushed into the same ring, stamped with the tick they were due at, as the
# real interrupt handler does. Wall-clock time starts at the scenario's clock.
# Ticks wrap as an ESP32's do (2**30 ms), from the scenario's "ticks_ms" (by
# default 3 s before a wrap: host_tools/sim/runner.py). The scenario's time
# (`at`, `until`, the log's "t") is real time since ready; "advance_s" moves the
# board's clocks on (ticks and UTC: as if it had idled that long) and
# "rtc_offset_s" its wall clock alone (drift, until the next sync_clock()).
# Wi-Fi is down while the file named by "wifi_flag" exists: the runner cuts the
# network outside (host_tools/sim/network.py) and says so with that file.
# reset() ends the process with code 3: the runner (host_tools/sim/runner.py) starts the
# firmware again from the same flash, as a rebooting board would. With
# SPOTTY_CUT=<name>, checkpoint(<name>) stops dead there so that the runner can
# kill -9 the process at exactly that point (a power cut).
import asyncio
import gc
import json
import os
import sys
import time

from micropython import const

import log

_MASK = const(0x3FFFFFFF)  # the ESP32's ticks period less one


class Board:
    name = "sim"

    def __init__(self, settings):
        # One line of settings, then the events in order, read as they come due: a
        # long scenario takes no room in the heap the firmware's figures come from.
        self._feed = open(os.getenv("SPOTTY_SIM"))
        scenario = json.loads(self._feed.readline())
        self._upcoming = None
        self._take()
        self._clock_utc = scenario["clock_utc"]
        self._until_ms = int(scenario["until"] * 1000)
        # Board ticks = (offset + the port's own ticks, real time) & _MASK; an offset
        # below 0 keeps the sum a small int on a 32-bit port (no allocation a tick).
        self._offset = ((scenario["ticks_ms"] - time.ticks_ms()) & _MASK) - _MASK - 1
        self._drift_s = 0
        self._wifi_flag = scenario.get("wifi_flag")
        self._ready_ms = None  # the port's ticks at ready
        self._ring = None
        self._level = 0
        self._led = None

    def attach_pir(self, ring):
        self._ring = ring
        now = self.ticks_ms()
        while self._upcoming is not None and self._upcoming["at"] < 0:
            self._edge(self._take()["pir"], now)  # motion during boot

    def _take(self):
        """The upcoming event, and the next one read in its place."""
        event = self._upcoming
        line = self._feed.readline()
        self._upcoming = json.loads(line) if line else None
        return event

    def _edge(self, level, ticks):
        self._level = 1 if level else 0
        if self._ring is not None:
            self._ring.push(self._level, ticks)

    def pir_level(self):
        return self._level

    def ticks_ms(self):
        return (self._offset + time.ticks_ms()) & _MASK

    async def connect_network(self, ssid, password, timeout_ms=20000):
        started = time.ticks_ms()
        while not self.network_ok():  # as the esp32 board waits for its WLAN
            if time.ticks_diff(time.ticks_ms(), started) > timeout_ms:
                raise OSError("wifi: no connection to %s" % ssid)
            await asyncio.sleep_ms(200)

    def network_ok(self):
        if self._wifi_flag:
            try:
                os.stat(self._wifi_flag)
                return False
            except OSError:
                pass
        return True

    def rssi(self):
        return -55

    def sync_clock(self):
        self._drift_s = 0

    def utc(self):
        if self._ready_ms is None:
            return self._clock_utc
        up_ms = time.ticks_diff(time.ticks_ms(), self._ready_ms)
        return self._clock_utc + up_ms // 1000 + self._drift_s

    def start_watchdog(self):
        pass

    def feed_watchdog(self):
        pass

    def set_led(self, mode):
        if mode != self._led:
            self._led = mode
            log.event("led", mode=mode)

    def led_tick(self, now_ms):
        pass

    def reset_cause(self):
        return "power_on"

    def reset(self):
        uptime = 0 if self._ready_ms is None else time.ticks_diff(time.ticks_ms(), self._ready_ms)
        log.event("reset", uptime_ms=uptime)
        sys.exit(3)

    def checkpoint(self, name):
        if os.getenv("SPOTTY_CUT") == name:
            log.event("cut", point=name)
            for _ in range(600):  # the runner kills us now; never hang for good
                time.sleep(0.1)
            sys.exit(9)

    def service(self, now_ms):
        if self._ready_ms is None:
            return
        elapsed = time.ticks_diff(time.ticks_ms(), self._ready_ms)
        while self._upcoming is not None and self._upcoming["at"] * 1000 <= elapsed:
            event = self._take()
            if "pir" in event:
                due = self._ready_ms + int(event["at"] * 1000)
                self._edge(event["pir"], (self._offset + due) & _MASK)
            else:  # advance_s: both clocks on, as if idle so long; rtc_offset_s: drift
                jump = event.get("advance_s", 0)
                self._offset = ((self._offset + jump * 1000) & _MASK) - _MASK - 1
                self._clock_utc += jump
                self._drift_s += event.get("rtc_offset_s", 0)
                del event["at"]
                log.event("clock", **event)
        if elapsed >= self._until_ms:
            log.event("stop")
            sys.exit(0)

    def ready(self):
        self._ready_ms = time.ticks_ms()
        log.start_clock(time.ticks_ms)  # "t": the scenario's time, which advance_s leaves

    def free_heap(self):
        gc.collect()  # what is free for good, not what garbage happens to hold
        return gc.mem_free()
