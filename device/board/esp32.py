# The ESP32 board: PIR interrupt, Wi-Fi, NTP, watchdog, status LED, reset cause.
# Thin on purpose: everything that decides lives in core/. Type-checked on the
# host against the MicroPython ESP32 stubs (make typecheck), as it cannot run here.
import asyncio
import gc
import time

import machine
import network
import ntptime
from micropython import const

import log

_WDT_TIMEOUT_MS = const(30000)  # above the longest blocking call (NTP, a TLS handshake)
_EPOCH_2000 = const(946684800)  # seconds from 1970 to 2000: the ESP32's time.time() epoch
# LED patterns: (on ms, period ms); on >= period means steady.
_PATTERNS = {"boot": (500, 1000), "idle": (50, 5000), "playing": (1, 1), "error": (100, 250)}
_RESET_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard_reset",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep_sleep",
    machine.SOFT_RESET: "soft_reset",
}


class Board:
    name = "esp32"

    def __init__(self, settings):
        self._pir = machine.Pin(settings.get("pir_pin", 14), machine.Pin.IN)
        self._led = machine.Pin(settings.get("led_pin", 2), machine.Pin.OUT, value=0)
        self._led_active_low = bool(settings.get("led_active_low", False))
        self._pattern = _PATTERNS["boot"]
        self._wlan = network.WLAN(network.STA_IF)
        self._wdt = None
        self._epoch_offset = _EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0

    def edge_flag(self):
        return asyncio.ThreadSafeFlag()

    def attach_pir(self, ring):
        # Bound methods are looked up once here: a lookup inside the handler would
        # allocate, and the handler runs in interrupt context.
        push, level, ticks = ring.push, self._pir.value, time.ticks_ms

        def on_edge(pin):
            push(level(), ticks())

        self._pir.irq(handler=on_edge, trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

    def pir_level(self):
        return self._pir.value()

    def ticks_ms(self):
        return time.ticks_ms()

    async def connect_network(self, ssid, password, timeout_ms=20000):
        wlan = self._wlan
        wlan.active(True)
        if wlan.isconnected():
            return
        wlan.connect(ssid, password)
        started = time.ticks_ms()
        while not wlan.isconnected():
            if time.ticks_diff(time.ticks_ms(), started) > timeout_ms:
                wlan.disconnect()
                raise OSError("wifi: no connection to %s" % ssid)
            await asyncio.sleep_ms(200)

    def network_ok(self):
        return self._wlan.isconnected()

    def rssi(self):
        try:
            return self._wlan.status("rssi")
        except (OSError, ValueError):
            return None

    def sync_clock(self):
        ntptime.settime()  # raises OSError when no server answers; the caller retries

    def utc(self):
        return int(time.time()) + self._epoch_offset

    def start_watchdog(self):
        self._wdt = machine.WDT(timeout=_WDT_TIMEOUT_MS)

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def set_led(self, mode):
        self._pattern = _PATTERNS.get(mode, _PATTERNS["error"])

    def led_tick(self, now_ms):
        on_ms, period_ms = self._pattern
        lit = on_ms >= period_ms or now_ms % period_ms < on_ms
        self._led.value(int(lit) ^ int(self._led_active_low))

    def reset_cause(self):
        return _RESET_CAUSES.get(machine.reset_cause(), "unknown")

    def reset(self):
        log.event("reset")
        machine.reset()

    def service(self, now_ms):
        pass

    def ready(self):
        pass

    def free_heap(self):
        gc.collect()  # what is free for good, not what garbage happens to hold
        return gc.mem_free()
