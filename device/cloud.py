# The app's side of the shadow link, on boards provisioned for AWS IoT: what it
# reports (config, status, stats, ota), how desired config is acknowledged, the
# token pushed on the device's own topic, and the one TLS connection it shares
# with Spotify on boards without PSRAM. Without a link every call does nothing.
#
# On a board with one TLS connection the link's code (shadow, net.mqtt and what
# they import, about 15 KB) is not even loaded during a Spotify call: the link
# and Spotify never need it at the same time, and the heap is too small for both
# (README, "Memory on the board"). What the link must remember meanwhile is in
# LinkMemory, here.
import asyncio

from micropython import const

import log
import rare

_MQTT_KEEPALIVE_S = const(300)
SECTIONS = ("config", "status", "stats", "ota")
_LINK_MODULES = ("shadow", "net.mqtt", "net.mqtt_wire", "core.shadowdoc")
_FLUSH_POLL_MS = const(50)


class LinkMemory:
    """What the shadow link keeps across its reconnects, and while it is unloaded."""

    def __init__(self):
        self.due = set(SECTIONS)  # reported sections to send; all after the first connect
        self.desired_due = {}  # desired keys to set (None deletes) with the next update
        self.version = None  # of the last desired state applied
        self.subscribed = False  # in the broker's session, by this boot
        self.token = 0  # the last clientToken's number
        self.config_errors = {}  # config keys refused before (core.shadowdoc.acknowledge)
        # Traffic, for the benchmark's messages-per-session figures.
        self.sent = self.received = self.bytes_out = self.bytes_in = 0
        self.connects = self.subscribes = self.pubacks = 0  # of the clients unloaded

    def all_due(self):
        self.due.update(SECTIONS)


class Cloud:
    def __init__(self, app, version, single_tls):
        self.app = app
        self.version = version
        self.single_tls = single_tls
        self.memory = LinkMemory()
        self.link = None  # the ShadowLink while its code is loaded
        self._runner = None  # its task
        self._reach = None  # (endpoint, port, thing, TLS context)
        self._load_failed = False

    def start(self, secrets, ctx):
        """The shadow link, on a board provisioned for AWS IoT (ctx: its TLS context)."""
        if ctx is None:
            return
        self._reach = (secrets["iot_endpoint"], secrets.get("iot_port", 8883),
                       secrets["thing_name"], ctx)
        if self.single_tls:
            self.app.spotify_down()  # the warm-up's connection: the link takes the slot
        self._load()

    def provisioned(self):
        return self._reach is not None

    def _load(self):
        try:  # the imports too: a module that fails for want of memory must not stay
            from net.mqtt import Client  # only boards with a shadow link pay for it
            from shadow import ShadowLink

            endpoint, port, thing, ctx = self._reach
            client = Client(endpoint, port, thing, ctx, keepalive_s=_MQTT_KEEPALIVE_S,
                            max_message=8192)
            self.link = ShadowLink(
                client, thing, self.memory, self.answer_desired, self.section,
                answer_ota=self.app.answer_ota, on_up=self.app.health.healthy,
                topics=(token_topic(thing),), on_message=self.token_pushed)
            self._runner = asyncio.create_task(self.link.run())
            self._load_failed = False
        except MemoryError as e:  # tried again at the worker's next idle round (give_tls)
            self.link = self._runner = client = None
            rare.drop(*_LINK_MODULES)
            if not self._load_failed:
                log.error("shadow_link", e)
            self._load_failed = True

    async def _unload(self):
        link, runner = self.link, self._runner
        self.link = self._runner = None
        runner.cancel()
        try:
            await runner  # until it has ended, its task holds the link and its code
        except asyncio.CancelledError:
            pass
        runner = None
        await link.close()
        memory, client = self.memory, link.client
        memory.connects += client.connects
        memory.subscribes += client.subscribes
        memory.pubacks += client.pubacks
        link = client = None
        rare.drop(*_LINK_MODULES)

    # -- out ----------------------------------------------------------------

    def report(self, *sections):
        """Send these sections with the link's next update (coalesced)."""
        if self._reach:
            self.memory.due.update(sections)

    def ota_changed(self, clear_desired):
        self.report("ota")
        if clear_desired and self._reach:
            self.memory.desired_due["ota"] = None

    async def flush(self, timeout_ms=15000):
        """Wait until everything due has gone out, or timeout_ms: a caller makes one
        state visible before the next replaces it."""
        memory = self.memory
        waited = 0
        while self._reach and (memory.due or memory.desired_due) and waited < timeout_ms:
            await asyncio.sleep_ms(_FLUSH_POLL_MS)
            waited += _FLUSH_POLL_MS

    def counts(self):
        """Cumulative MQTT traffic, for the benchmark's messages-per-session figures."""
        if not self._reach:
            return {}
        memory = self.memory
        client = self.link.client if self.link else None
        return {"mqtt_sent": memory.sent, "mqtt_received": memory.received,
                "mqtt_bytes_out": memory.bytes_out, "mqtt_bytes_in": memory.bytes_in,
                "mqtt_connects": memory.connects + (client.connects if client else 0),
                "mqtt_subscribes": memory.subscribes + (client.subscribes if client else 0),
                "mqtt_pubacks": memory.pubacks + (client.pubacks if client else 0)}

    def section(self, name):
        app = self.app
        if name == "config":
            return app.config
        if name == "stats":
            return app.stats.as_dict()
        if name == "ota":
            return app.ota_section()
        return self.status()

    def status(self):
        app = self.app
        board = app.board
        utc = board.utc()
        return {
            "firmware": self.version,
            "state": "safe_mode" if app.health.safe else app.session.phase(),
            "error": app.error or app.session.error,
            "uptime_s": utc - app.boot_utc if app.boot_utc else 0,
            "free_heap": board.free_heap(),
            "rssi": board.rssi(),
            "token_days_left": app.token.days_left(utc),
            "token_issued_at": app.token.issued_at,
            "cert_not_after": app.cert_expiry[0],
            "cert_earliest": app.cert_expiry[1],
            "reset_cause": board.reset_cause(),
            "safe_mode": app.health.safe,
            "crashes": app.health.crashes,
            "token_refused": app.token.refused,  # why the last pushed token was not taken
            # After a 429: no Spotify call of any kind before this (UTC seconds).
            "rate_limited_until": (app.account.rate_limited_until
                                   if app.account and app.account.banned_s() else None),
            "clock_synced": app.clock_synced,  # UTC of the last NTP sync
            "wifi_reconnects": app.wifi_reconnects,  # since boot
        }

    # -- in -----------------------------------------------------------------

    def answer_desired(self, desired):
        from core.shadowdoc import acknowledge  # loaded with the link

        memory = self.memory
        new, changed, state, memory.config_errors = acknowledge(
            self.app.config, desired, memory.config_errors)
        rare.drop("core.config", "core.tzparse")  # the schema: loaded for this answer only
        errors = state["reported"]["config_errors"]
        if errors:
            log.event("config_refused", refused={k: v for k, v in errors.items() if v})
        if changed:
            self.app.apply_config(new, changed)
        return state

    def token_pushed(self, topic, payload):
        """A refresh token from the host (spotty/<thing>/token). Never logged."""
        app = self.app
        token = app.token.pushed(payload, app.board.utc() if app.clock_synced else None)
        if token is not None:
            if app.account:
                app.account.set_refresh_token(token)
            app.owner_acted()
        self.report("status")

    # -- the one TLS connection of a board without PSRAM --------------------

    async def take_tls(self):
        """Before a Spotify call: on a single-TLS board the shadow link closes at once
        (the motion path waits for no MQTT round trip) and its code is unloaded. True
        if it was."""
        if self.link and self.single_tls:
            await self._unload()
            return True
        return False

    def give_tls(self):
        """After it (and whenever the worker is idle, in case the link could not load):
        the link comes back in the background; its `get` fetches whatever desired state
        changed meanwhile."""
        if self._reach and self.link is None:
            if self.single_tls:
                self.app.spotify_down()
            self._load()

    async def stop(self):
        """Close the link (until give_tls()): for a measuring script that ends the app,
        and after Wi-Fi came back, so that the link connects now and not after the
        backoff its failures built up while the network was gone."""
        if self.link:
            await self._unload()


def token_topic(thing):
    """The device's own topic for a pushed refresh token (core.tokenpush)."""
    return "spotty/" + thing + "/token"
