# The app's side of the shadow link, on boards provisioned for AWS IoT: what it
# reports (config, status, stats, ota), how desired config is acknowledged, the
# token pushed on the device's own topic, and the one TLS connection it shares
# with Spotify on boards without PSRAM. Without a link every call does nothing.
import asyncio

from micropython import const

import log
import rare
from core import shadowdoc

_MQTT_KEEPALIVE_S = const(300)


class Cloud:
    def __init__(self, app, version, single_tls):
        self.app = app
        self.version = version
        self.single_tls = single_tls
        self.acknowledger = shadowdoc.Acknowledger()
        self.link = None

    def start(self, secrets, ctx):
        """The shadow link, on a board provisioned for AWS IoT (ctx: its TLS context)."""
        if ctx is None:
            return
        from net.mqtt import Client  # only boards with a shadow link pay for it
        from shadow import ShadowLink

        app = self.app
        thing = secrets["thing_name"]
        client = Client(secrets["iot_endpoint"], secrets.get("iot_port", 8883), thing, ctx,
                        keepalive_s=_MQTT_KEEPALIVE_S, max_message=8192)
        self.link = ShadowLink(client, thing, self.answer_desired, self.section,
                               answer_ota=app.answer_ota, on_up=app.health.healthy,
                               topics=(token_topic(thing),), on_message=self.token_pushed)
        if self.single_tls and app.spotify:
            app.spotify.api.close()  # the warm-up's connection: the link takes the slot
        asyncio.create_task(self.link.run())

    # -- out ----------------------------------------------------------------

    def report(self, *sections):
        if self.link:
            self.link.report(*sections)

    def ota_changed(self, clear_desired):
        self.report("ota")
        if clear_desired and self.link:
            self.link.set_desired("ota", None)

    async def flush(self):
        if self.link:
            await self.link.flush()

    def counts(self):
        """Cumulative MQTT traffic, for the benchmark's messages-per-session figures."""
        link = self.link
        if not link:
            return {}
        client = link.client
        return {"mqtt_sent": link.sent, "mqtt_received": link.received,
                "mqtt_bytes_out": link.bytes_out, "mqtt_bytes_in": link.bytes_in,
                "mqtt_connects": client.connects, "mqtt_subscribes": client.subscribes,
                "mqtt_pubacks": client.pubacks}

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
            "rate_limited_until": (app.spotify.rate_limited_until
                                   if app.spotify and app.spotify.banned_s() else None),
            "clock_synced": app.clock_synced,  # UTC of the last NTP sync
            "wifi_reconnects": app.wifi_reconnects,  # since boot
        }

    # -- in -----------------------------------------------------------------

    def answer_desired(self, desired):
        new, changed, state = self.acknowledger.answer(self.app.config, desired)
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
            if app.spotify:
                app.spotify.set_refresh_token(token)
            app.owner_acted()
        self.report("status")

    # -- the one TLS connection of a board without PSRAM --------------------

    async def take_tls(self):
        """Before a Spotify call: on a single-TLS board the shadow link yields its slot."""
        if self.link and self.single_tls:
            await self.link.suspend()

    def give_tls(self):
        if self.link and self.single_tls:
            if self.app.spotify:
                self.app.spotify.api.close()
            self.link.resume()


def token_topic(thing):
    """The device's own topic for a pushed refresh token (core.tokenpush)."""
    return "spotty/" + thing + "/token"
