# The simulated board: the esp32 board's interface on the MicroPython unix port.
# Never deployed. PIR edges come from a scenario file (SPOTTY_SIM names it) and
# are pushed into the same ring when they are due, by a thread of their own as by
# an interrupt, stamped with that tick as the real interrupt handler does; the
# other events come due in service(). Wall-clock time starts at the scenario's clock.
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
import _thread
import asyncio
import gc
import json
import os
import socket
import sys
import time

from micropython import const

import log

_MASK = const(0x3FFFFFFF)  # the ESP32's ticks period less one


class _EdgeFlag:
    """The PIR ring's flag here: asyncio.ThreadSafeFlag's set() (from the interrupt's
    thread) and wait() (which clears it), over a loopback datagram socket. The unix
    port polls an object without a file descriptor, as a ThreadSafeFlag is, in 1 ms
    steps (extmod/modselect.c), and that slowed a TLS connect and two requests here by
    some 85 ms in our measurement; the ESP32 port's poll makes no such difference."""

    def __init__(self):
        self._rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while True:  # MicroPython's sockets cannot tell which port bind(0) chose
            port = 49152 + int.from_bytes(os.urandom(2), "little") % 16384
            address = socket.getaddrinfo("127.0.0.1", port)[0][-1]
            try:
                self._rx.bind(address)
                break
            except OSError:
                pass
        self._rx.setblocking(False)
        self._tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._tx.connect(address)
        self._stream = asyncio.StreamReader(self._rx)

    def set(self):
        self._tx.send(b"!")

    async def wait(self):
        await self._stream.read(64)  # one datagram
        try:
            while self._rx.recv(64):  # and any more: one wake for them all
                pass
        except OSError:
            pass


class Board:
    name = "sim"

    def __init__(self, settings):
        # One line of settings, then the events in order, read as they come due: a
        # long scenario takes no room in the heap the firmware's figures come from.
        path = os.getenv("SPOTTY_SIM")
        with open(path) as feed:
            scenario = json.loads(feed.readline())
        self._clock_events = _events(path, False)
        self._upcoming = next(self._clock_events, None)
        self._edges = _events(path, True)
        self._next_edge = next(self._edges, None)
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

    def edge_flag(self):
        return _EdgeFlag()

    def attach_pir(self, ring):
        self._ring = ring
        now = self.ticks_ms()
        while self._next_edge is not None and self._next_edge["at"] < 0:
            self._edge(self._next_edge["pir"], now)  # motion during boot
            self._next_edge = next(self._edges, None)

    def _interrupts(self):
        """The thread that plays the pin's interrupt: each edge when it is due."""
        event = self._next_edge
        while event is not None:
            due = self._ready_ms + int(event["at"] * 1000)
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait > 0:
                time.sleep_ms(wait)
            self._edge(event["pir"], (self._offset + due) & _MASK)
            event = next(self._edges, None)

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
            event = self._upcoming
            self._upcoming = next(self._clock_events, None)
            # advance_s: both clocks on, as if idle so long; rtc_offset_s: drift
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
        _thread.start_new_thread(self._interrupts, ())
        log.start_clock(time.ticks_ms)  # "t": the scenario's time, which advance_s leaves

    def free_heap(self):
        gc.collect()  # what is free for good, not what garbage happens to hold
        return gc.mem_free()


def _events(path, edges):
    """The scenario's PIR edges (edges=True) or its other events, in order."""
    with open(path) as feed:
        feed.readline()  # the settings
        for line in feed:
            event = json.loads(line)
            if ("pir" in event) == edges:
                yield event
