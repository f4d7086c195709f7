# Wi-Fi, at boot and whenever the app finds the link gone (board.network_ok()):
# connect, waiting longer after each failed attempt, then set the clock by NTP (TLS
# and quiet hours need it, and it may have drifted while the board was offline).
# Loaded when needed and dropped afterwards (rare.py): a steady board never needs it.
import asyncio
import random

from micropython import const

import log
import store
from core import backoff

_RETRY_MS = const(1000)
_RETRY_CAP_MS = const(120000)


async def connect(app, secrets):
    attempt = 0
    while True:
        try:
            await app.board.connect_network(secrets.get("wifi_ssid"),
                                            secrets.get("wifi_password"))
            app.sync_clock()
            return
        except OSError as e:
            attempt += 1
            log.event("error", error="network", detail=str(e), attempt=attempt)
            await asyncio.sleep_ms(
                backoff.delay_ms(attempt, random.random(), _RETRY_MS, _RETRY_CAP_MS))


async def reconnect(app):
    """The link was lost: back on it, counted in status."""
    log.event("wifi_down")
    secrets, _ = store.load_json("secrets.json", {})
    await connect(app, secrets)
    app.wifi_reconnects += 1
    log.event("wifi_up", reconnects=app.wifi_reconnects)
    await app.cloud.stop()  # back at the worker's next idle round, without waiting
    app.cloud.report("status")
