# Wires board + core + net into one asyncio loop.
#
# The control task ticks every LOOP_MS: it drains PIR edges, runs the session
# state machine, feeds the watchdog and drives the LED. The worker task makes
# the network calls (boot, token refresh, play, pause) one at a time, so a slow
# server or a wait never holds up motion handling or the timeout. The shadow
# link (when the board is provisioned for AWS IoT) runs as a third task.
#
# Firmware updates run in the worker too, only while the session is idle. A new
# version is on trial (ota/boot.py) until it is healthy: its shadow link came up,
# which proves Wi-Fi, clock, TLS with the client certificate and MQTT work, i.e.
# that the next update can still reach it. Spotify's answers do not count: an
# outage or a revoked token there is no reason to throw a good version away. A
# board without AWS IoT is healthy once it has booted and warmed up.
# In safe mode (after repeated crashes) only Wi-Fi and the shadow link run: no
# Spotify, no motion sessions, so an update can still fix the device.
import asyncio
import random
import sys

from micropython import const

import certs
import log
import store
from core import config as config_schema
from core import otastate, shadowdoc, tokenpush, tz
from core import session as sess
from core.motion import Presence
from core.stats import Stats
from core.ticks import ticks_diff
from edges import EdgeRing
from net import https, tls
from net.spotify import FATAL, Spotify, SpotifyError
from ota import boot as ota_boot
from ota.updater import Updater
from player import Player

VERSION = "0.1.0"
LOOP_MS = const(20)
REFRESH_AHEAD_MS = const(600000)  # renew the access token this long before expiry, while idle
IDLE_POLL_MS = const(1000)
DEFAULT_GLITCH_MS = const(200)
TOKEN_LIFE_DAYS = const(182)  # Spotify refresh tokens live about six months
MAX_CRASHES = const(5)
HEARTBEAT_S = const(21600)  # a status report at least this often, even when nothing changes
MQTT_KEEPALIVE_S = const(300)
TRIAL_MS = const(600000)  # a new version not healthy by then has failed this boot
CALM_MS = const(600000)  # up this long without a crash: earlier crashes are forgiven
SAFE_RETRY_MS = const(3600000)  # safe mode tries a normal boot again after this long

API_URL = "https://api.spotify.com"
ACCOUNTS_URL = "https://accounts.spotify.com"


class App:
    def __init__(self, board, settings, boot=None):
        self.board = board
        self.started_ms = board.ticks_ms()
        mode = (boot or {}).get("mode")
        self.safe = mode == otastate.SAFE
        self.on_trial = mode == otastate.TRIAL
        self.ring = EdgeRing()
        board.attach_pir(self.ring)  # first of all, so motion during boot is kept
        self.presence = Presence(settings.get("glitch_ms", DEFAULT_GLITCH_MS))
        self.presence.edge(board.pir_level(), board.ticks_ms())
        self._overflows = 0
        self._arrivals_seen = 0
        self._occupied_seen = False
        self.session = sess.Session()
        self.clock_ok = False
        self.error = None  # last error state, for status and the LED
        self.job = None
        self.job_ready = asyncio.Event()
        self.spotify = None
        self.player = None
        self.token_issued_at = None
        self.config = self._load_config()
        self.zone = tz.parse(self.config["tz"])
        saved_stats, _ = store.load_json("stats.json", None)
        self.stats = Stats(saved_stats)
        self.acknowledger = shadowdoc.Acknowledger()
        self.link = None
        self.single_tls = settings.get("single_tls", True)
        self.boot_utc = None
        self.last_heartbeat = None
        self.ctx = None
        ota_state = ota_boot.load_state()
        self.crashes = ota_state.get("crashes") or 0
        self.updater = Updater(VERSION, ota_state, self._ota_changed, self._ota_flush)
        self.cert_expiry = (None, None)
        self.token_refused = None

    # -- boot ---------------------------------------------------------------

    def _load_config(self):
        stored, problem = store.load_json("config.json", {})
        if problem and problem != "missing":
            log.event("error", error="config_" + problem.split(":")[0])
        config, refused = config_schema.from_stored(stored)
        if refused:
            log.event("config_refused", refused=refused)
        return config

    async def _boot(self):
        secrets, problem = store.load_json("secrets.json", None)
        token, token_problem = store.load_json("token.json", None)
        if secrets is None or token is None:
            self._set_error("not_provisioned")
            log.event("error", error="not_provisioned", detail=problem or token_problem)
            return
        await self._connect(secrets)
        self.boot_utc = self.last_heartbeat = self.board.utc()
        roots = tls.load_ca_dir("ca")
        self.ctx = ctx = tls.context(roots)
        self.cert_expiry = certs.earliest_expiry(certs.files())
        self.token_issued_at = token.get("issued_at")
        if self.safe:
            log.event("safe_mode", crashes=self.crashes)
            self._start_link(secrets, roots)
            return
        api = https.Client(secrets.get("spotify_api_url", API_URL), ctx)
        accounts = https.Client(secrets.get("spotify_accounts_url", ACCOUNTS_URL), ctx)
        self.spotify = Spotify(
            api,
            accounts,
            secrets["spotify_client_id"],
            secrets.get("spotify_client_secret"),
            token["refresh_token"],
            self._store_rotated_token,
        )
        self.player = Player(self.spotify)
        # Token and speaker id now, so the motion path needs neither.
        await self._spotify_call(self._warm_up)
        self._start_link(secrets, roots)
        if self.link is None:
            self._healthy()  # no shadow link to wait for

    def _start_link(self, secrets, roots):
        thing, endpoint = secrets.get("thing_name"), secrets.get("iot_endpoint")
        if not thing or not endpoint:
            return  # not provisioned for AWS IoT: Spotify only
        try:
            with open("iot/cert.der", "rb") as f:
                cert = f.read()
            with open("iot/key.der", "rb") as f:
                key = f.read()
        except OSError:
            self._set_error("iot_not_provisioned")
            return
        from net.mqtt import Client  # only boards with a shadow link pay for it
        from shadow import ShadowLink

        client = Client(endpoint, secrets.get("iot_port", 8883), thing,
                        tls.context(roots, cert, key), keepalive_s=MQTT_KEEPALIVE_S,
                        max_message=8192)
        self.link = ShadowLink(client, thing, self._answer_desired, self._section,
                               answer_ota=self.updater.answer, on_up=self._healthy,
                               topics=(tokenpush.topic(thing),), on_message=self._token_pushed)
        if self.single_tls and self.spotify:
            self.spotify.api.close()  # the warm-up's connection: the link takes the slot
        asyncio.create_task(self.link.run())

    def _healthy(self):
        if self.on_trial:
            self.on_trial = False
            ota_boot.update_state(otastate.healthy)
            log.event("healthy", version=VERSION)

    # -- the shadow ---------------------------------------------------------

    def _answer_desired(self, desired):
        new, changed, state = self.acknowledger.answer(self.config, desired)
        errors = state["reported"]["config_errors"]
        if errors:
            log.event("config_refused", refused={k: v for k, v in errors.items() if v})
        if changed:
            self.config = new
            store.save_json("config.json", new)
            if "tz" in changed:
                self.zone = tz.parse(new["tz"])
            if "spotify_device" in changed and self.player:
                self.player.forget_device()
            log.event("config_applied", changed=changed)
        return state

    def _section(self, name):
        if name == "config":
            return self.config
        if name == "stats":
            return self.stats.as_dict()
        if name == "ota":
            return self.updater.section()
        return self.status()

    def status(self):
        utc = self.board.utc()
        return {
            "firmware": VERSION,
            "state": "safe_mode" if self.safe else self.session.phase(),
            "error": self.error or self.session.error,
            "uptime_s": utc - self.boot_utc if self.boot_utc else 0,
            "free_heap": self.board.free_heap(),
            "rssi": self.board.rssi(),
            "token_days_left": self.token_days_left(),
            "token_issued_at": self.token_issued_at,
            "cert_not_after": self.cert_expiry[0],
            "cert_earliest": self.cert_expiry[1],
            "reset_cause": self.board.reset_cause(),
            "safe_mode": self.safe,
            "crashes": self.crashes,
            "token_refused": self.token_refused,  # why the last pushed token was not taken
        }

    # -- token push ---------------------------------------------------------

    def _token_pushed(self, topic, payload):
        """A refresh token from the host (spotty/<thing>/token). Never logged."""
        utc = self.board.utc() if self.clock_ok else None
        record, reason = tokenpush.check(payload, self.token_issued_at, utc)
        if reason:
            self.token_refused = reason
            log.event("token_refused", reason=reason)
            self._report("status")
            return
        store.save_json("token.json", record)
        self.token_issued_at = record["issued_at"]
        self.token_refused = None
        if self.spotify:
            self.spotify.set_refresh_token(record["refresh_token"])
        self.session.clear_error()
        if self.error in FATAL:
            self._set_error(None)
        log.event("token_received", issued_at=self.token_issued_at)
        self._report("status")

    # -- updates ------------------------------------------------------------

    def _ota_changed(self, clear_desired):
        self._report("ota")
        if clear_desired and self.link:
            self.link.set_desired("ota", None)

    async def _ota_flush(self):
        if self.link:
            await self.link.flush()

    def _idle(self):
        """No music session under way (a session stopped by an error is none)."""
        return self.job is None and self.session.state in (sess.IDLE, sess.ERROR)

    def _busy(self):
        return not self._idle()

    async def _update_firmware(self, now):
        await self.updater.run(self.ctx, self._take_tls, self._give_tls, self._busy, now)

    def _housekeeping(self, now):
        """Trial deadline, forgiven crashes, and leaving safe mode now and then."""
        up_ms = ticks_diff(now, self.started_ms)
        if self.on_trial and up_ms >= TRIAL_MS:
            log.event("trial_failed", version=VERSION)
            self.board.reset()  # counts as a boot without health
        if self.crashes and up_ms >= CALM_MS and not self.safe:
            self.crashes = 0
            ota_boot.update_state(otastate.calm)
        if self.safe and up_ms >= SAFE_RETRY_MS:
            ota_boot.update_state(otastate.calm)
            log.event("safe_mode_retry")
            self.board.reset()

    def _link_counts(self):
        """Cumulative MQTT traffic, for the benchmark's messages-per-session figures."""
        link = self.link
        if not link:
            return {}
        return {"mqtt_sent": link.sent, "mqtt_received": link.received,
                "mqtt_bytes_out": link.bytes_out, "mqtt_bytes_in": link.bytes_in,
                "mqtt_connects": link.client.connects}

    def _report(self, *sections):
        if self.link:
            self.link.report(*sections)

    async def _take_tls(self):
        """Before a Spotify call: on a single-TLS board the shadow link yields its slot."""
        if self.link and self.single_tls:
            await self.link.suspend()

    def _give_tls(self):
        if self.link and self.single_tls:
            if self.spotify:
                self.spotify.api.close()
            self.link.resume()

    async def _connect(self, secrets):
        attempt = 0
        while True:
            try:
                await self.board.connect_network(
                    secrets.get("wifi_ssid"), secrets.get("wifi_password")
                )
                self.board.sync_clock()
                self.clock_ok = True
                return
            except OSError as e:
                attempt += 1
                log.event("error", error="network", detail=str(e), attempt=attempt)
                await asyncio.sleep_ms(min(60000, 1000 * attempt))

    async def _warm_up(self, now):
        await self.spotify.refresh(now)
        wanted = self.config["spotify_device"]
        if wanted and await self.player.resolve(now, wanted) is None:
            log.event("warning", warning="device_asleep", device=wanted)

    def _store_rotated_token(self, refresh_token):
        self.token_issued_at = self.board.utc()
        record = {"refresh_token": refresh_token, "issued_at": self.token_issued_at}
        store.save_json("token.json", record)
        log.event("token_rotated")

    def token_days_left(self):
        if self.token_issued_at is None:
            return None
        return TOKEN_LIFE_DAYS - (self.board.utc() - self.token_issued_at) // 86400

    # -- control task -------------------------------------------------------

    async def control(self):
        board = self.board
        while True:
            now = board.ticks_ms()
            board.service(now)
            self._read_pir(now)
            if self.clock_ok and not self.safe:
                utc = board.utc()
                decision = self.session.tick(now, utc, self.presence, self.config, self.zone)
                self._handle(decision)
            if self.on_trial or self.crashes or self.safe:
                self._housekeeping(now)
            board.feed_watchdog()
            board.set_led(self._led_mode())
            board.led_tick(now)
            await asyncio.sleep_ms(LOOP_MS)

    def _read_pir(self, now):
        while True:
            edge = self.ring.pop()
            if edge is None:
                break
            self.presence.edge(edge[0], edge[1])
        if self.ring.overflows != self._overflows:
            self._overflows = self.ring.overflows
            self.presence.edge(self.board.pir_level(), now)
        self.presence.update(now)
        p = self.presence
        if p.arrivals != self._arrivals_seen:
            self._arrivals_seen = p.arrivals
            self.stats.motion(self.board.utc() if self.clock_ok else None)
            log.event("motion", count=p.arrivals)
        if p.occupied != self._occupied_seen:
            self._occupied_seen = p.occupied
            if not p.occupied:
                log.event("vacant")

    def _led_mode(self):
        if self.error or self.safe or self.session.state == sess.ERROR:
            return "error"
        if not self.clock_ok:
            return "boot"
        return "playing" if self.session.state == sess.PLAYING else "idle"

    def _handle(self, decision):
        if not decision:
            return
        kind = decision[0]
        if kind in ("play", "pause"):
            self.job = kind
            self.job_ready.set()
        elif kind == "skip":
            log.event("skip", why=decision[1])
        elif kind == "end":
            duration_s = decision[2] // 1000
            log.event("session_end", why=decision[1], duration_s=duration_s, **self._link_counts())
            self.stats.session(self.zone, self.board.utc() - duration_s, duration_s)
            store.save_json("stats.json", self.stats.as_dict())  # the one write per session
            self._report("status", "stats")
        elif kind == "retry":
            log.event("retry", action=decision[1], wait_ms=decision[2], why=decision[3])
        elif kind == "error":
            self._set_error(decision[1])
        elif kind == "resume":
            log.event("resumed")

    def _set_error(self, error):
        if error != self.error:
            self.error = error
            self._report("status")
            if error:
                log.event("error", error=error)

    # -- worker task --------------------------------------------------------

    async def worker(self):
        await self._boot()
        log.start_clock(self.board.ticks_ms)
        log.event(
            "ready", version=VERSION, state=self.session.phase(), error=self.error,
            token_days_left=self.token_days_left(), safe_mode=self.safe,
        )
        self.board.ready()
        while True:
            try:
                await asyncio.wait_for_ms(self.job_ready.wait(), IDLE_POLL_MS)
            except asyncio.TimeoutError:
                pass
            now = self.board.ticks_ms()
            if self.boot_utc is None:
                continue  # not provisioned
            self.job_ready.clear()
            job, self.job = self.job, None
            if job and self.spotify:
                await self._take_tls()
                await self._run_job(job)
                self._give_tls()
            elif self.updater.staged_key and self._idle():
                log.event("ota_reboot")
                self.board.reset()  # at an idle moment; ota.boot swaps the files in
            elif self.updater.due(now) and self._idle():
                await self._update_firmware(now)
            elif self.spotify and self._should_refresh():
                await self._take_tls()
                await self._spotify_call(self.spotify.refresh)
                self._give_tls()
            elif self.board.utc() - self.last_heartbeat >= HEARTBEAT_S:
                self.last_heartbeat = self.board.utc()
                self._report("status")

    def _should_refresh(self):
        return (
            self.session.state == sess.IDLE
            and self.spotify.token_valid_for_ms(self.board.ticks_ms()) < REFRESH_AHEAD_MS
        )

    async def _spotify_call(self, fn):
        """Run fn(now) outside a session; fatal errors stop further calls."""
        try:
            await fn(self.board.ticks_ms())
            self._set_error(None)
        except SpotifyError as e:
            if e.kind in FATAL:
                self._handle(self.session.fail(e.kind))
            else:
                self._set_error(e.kind)
                log.event("error", error=e.kind, detail=e.detail)

    async def _run_job(self, job):
        started = self.board.ticks_ms()
        calls, connects = self.spotify.calls, self.spotify.api.connects
        try:
            if job == "play":
                outcome = await self.player.start(started, self.config)
            else:
                outcome = await self.player.stop(started, self.config)
        except SpotifyError as e:
            now = self.board.ticks_ms()
            if e.kind in FATAL:
                self._handle(self.session.done(job, sess.FATAL, now, error=e.kind))
            else:
                self._set_error(e.kind)
                self._handle(
                    self.session.done(
                        job, sess.RETRY, now, random.random(), e.retry_after_ms, e.kind
                    )
                )
            return
        now = self.board.ticks_ms()
        self._set_error(None)
        if job == "play" and outcome != sess.BUSY:
            log.event(
                "play" if outcome == sess.PLAYED else "adopt",
                device=self.config["spotify_device"],
                context=self.player.started_context,
                latency_ms=ticks_diff(now, self.presence.arrived_ms),
                calls=self.spotify.calls - calls,  # round trips on the motion path
                connects=self.spotify.api.connects - connects,
            )
        elif outcome == sess.PAUSED:
            log.event("pause", device=self.config["spotify_device"])
        elif job == "pause":
            log.event("no_pause", why=outcome)
        self._handle(self.session.done(job, outcome, now))

    async def run(self):
        await asyncio.gather(self.control(), self.worker())


def main(board, settings, boot=None):
    """board: a board.* Board; boot: what ota.boot.run said (None if it failed)."""
    board.start_watchdog()
    crashes = 0
    while True:
        try:
            asyncio.run(App(board, settings, boot).run())
        except Exception as e:  # the one top-level handler: log, count, restart
            crashes += 1
            log.event("crash", error=repr(e), crashes=crashes)
            sys.print_exception(e)
            ota_boot.crashed()  # across resets too: repeated crashes mean safe mode
            if crashes >= MAX_CRASHES:
                board.reset()
            asyncio.new_event_loop()
