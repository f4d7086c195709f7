# Wires board + core + net into one asyncio loop.
#
# The control task ticks every LOOP_MS: it drains PIR edges, runs the session
# state machine, feeds the watchdog and drives the LED. The worker task makes
# the network calls (boot, token refresh, play, pause) one at a time, so a slow
# server or a wait never holds up motion handling or the timeout. The shadow
# link (when the board is provisioned for AWS IoT, see cloud.py) runs as a third
# task. Firmware updates run in the worker too, only while the session is idle.
# In safe mode (after repeated crashes, see health.py) only Wi-Fi and the shadow
# link run: no Spotify, no motion sessions, so an update can still fix the device.
import asyncio
import random
import sys

from micropython import const

import log
import rare
import store
from cloud import Cloud
from core import session as sess
from core import tz
from core.stats import Stats
from core.ticks import ticks_diff
from health import Health
from net import https, tls
from net.spotify import FATAL, Spotify, SpotifyError
from ota import state as ota_state
from pir import Pir
from player import Player
from refresh_token import RefreshToken

VERSION = "0.1.0"
LOOP_MS = const(20)
REFRESH_AHEAD_MS = const(600000)  # renew the access token this long before expiry, while idle
IDLE_POLL_MS = const(1000)
MAX_CRASHES = const(5)
HEARTBEAT_S = const(21600)  # a status report at least this often, even when nothing changes

API_URL = "https://api.spotify.com"
ACCOUNTS_URL = "https://accounts.spotify.com"


class App:
    def __init__(self, board, settings, boot=None):
        self.board = board
        # First of all, so motion during boot is kept.
        self.pir = Pir(board, settings.get("glitch_ms"))
        saved_ota = ota_state.load()
        self.health = Health(board, boot, saved_ota, VERSION)
        self.session = sess.Session()
        self.clock_ok = False
        self.error = None  # last error state, for status and the LED
        self.job = None
        self.job_ready = asyncio.Event()
        self.spotify = None
        self.player = None
        self.token = RefreshToken()
        self.config = self._load_config()
        self.zone = tz.parse(self.config["tz"])
        saved_stats, _ = store.load_json("stats.json", None)
        self.stats = Stats(saved_stats)
        self.cloud = Cloud(self, VERSION, settings.get("single_tls", True))
        self.boot_utc = None
        self.last_heartbeat = None
        self.updater = None  # ota.updater, loaded while an update is under way
        self.ota_report = saved_ota.get("report")  # reported.ota while there is none
        self.cert_expiry = (None, None)

    # -- configuration ------------------------------------------------------

    def _load_config(self):
        from core import config as schema  # not kept loaded: see cloud.answer_desired

        stored, problem = store.load_json("config.json", {})
        if problem and problem != "missing":
            log.event("error", error="config_" + problem.split(":")[0])
        config, refused = schema.from_stored(stored)
        del schema
        rare.drop("core.config")
        if refused:
            log.event("config_refused", refused=refused)
        return config

    def apply_config(self, new, changed):
        """Configuration accepted from the shadow: applied at once, kept on flash."""
        self.config = new
        store.save_json("config.json", new)
        if "tz" in changed:
            self.zone = tz.parse(new["tz"])
        if "spotify_device" in changed and self.player:
            self.player.forget_device()
        log.event("config_applied", changed=changed)

    # -- boot ---------------------------------------------------------------

    async def _boot(self):
        secrets, problem = store.load_json("secrets.json", None)
        token, token_problem = self.token.load()
        if secrets is None or token is None:
            self.set_error("not_provisioned")
            log.event("error", error="not_provisioned", detail=problem or token_problem)
            return
        await self._connect(secrets)
        self.boot_utc = self.last_heartbeat = self.board.utc()
        roots, iot_roots, self.cert_expiry = _certs()
        ctx = tls.context(roots)
        roots = None
        if self.health.safe:
            log.event("safe_mode", crashes=self.health.crashes)
            self.cloud.start(secrets, iot_roots)
            return
        api = https.Client(secrets.get("spotify_api_url", API_URL), ctx)
        accounts = https.Client(secrets.get("spotify_accounts_url", ACCOUNTS_URL), ctx)
        self.spotify = Spotify(
            api,
            accounts,
            secrets["spotify_client_id"],
            secrets.get("spotify_client_secret"),
            token["refresh_token"],
            lambda refresh_token: self.token.rotated(refresh_token, self.board.utc()),
        )
        self.player = Player(self.spotify)
        # Token and speaker id now, so the motion path needs neither.
        await self._spotify_call(self._warm_up)
        self.cloud.start(secrets, iot_roots)
        if self.cloud.link is None:
            self.health.healthy()  # no shadow link to wait for

    def _idle(self):
        """No music session under way (a session stopped by an error is none)."""
        return self.job is None and self.session.state in (sess.IDLE, sess.ERROR)

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

    # -- control task -------------------------------------------------------

    async def control(self):
        board = self.board
        while True:
            now = board.ticks_ms()
            board.service(now)
            if self.pir.read(now):
                self.stats.motion(board.utc() if self.clock_ok else None)
            if self.clock_ok and not self.health.safe:
                utc = board.utc()
                decision = self.session.tick(now, utc, self.pir.presence, self.config, self.zone)
                self._handle(decision)
            self.health.tick(now)
            board.feed_watchdog()
            board.set_led(self._led_mode())
            board.led_tick(now)
            await asyncio.sleep_ms(LOOP_MS)

    def _led_mode(self):
        if self.error or self.health.safe or self.session.state == sess.ERROR:
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
            log.event("session_end", why=decision[1], duration_s=duration_s,
                      **self.cloud.counts())
            self.stats.session(self.zone, self.board.utc() - duration_s, duration_s)
            store.save_json("stats.json", self.stats.as_dict())  # the one write per session
            self.cloud.report("status", "stats")
        elif kind == "retry":
            log.event("retry", action=decision[1], wait_ms=decision[2], why=decision[3])
        elif kind == "error":
            self.set_error(decision[1])
        elif kind == "resume":
            log.event("resumed")

    def set_error(self, error):
        if error != self.error:
            self.error = error
            self.cloud.report("status")
            if error:
                log.event("error", error=error)

    # -- worker task --------------------------------------------------------

    async def worker(self):
        await self._boot()
        log.start_clock(self.board.ticks_ms)
        log.event(
            "ready", version=VERSION, state=self.session.phase(), error=self.error,
            token_days_left=self.token.days_left(self.board.utc()), safe_mode=self.health.safe,
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
            cloud = self.cloud
            if job and self.spotify:
                await cloud.take_tls()
                await self._run_job(job)
                cloud.give_tls()
            elif self.updater and self.updater.due(now) and self._idle():
                await self.updater.prepare()
                log.event("ota_reboot", version=self.updater.job[0]["version"])
                self.board.reset()  # at an idle moment, into the download (ota.fetch)
            elif self.spotify and self._should_refresh():
                await cloud.take_tls()
                await self._spotify_call(self.spotify.refresh)
                cloud.give_tls()
            elif self.board.utc() - self.last_heartbeat >= HEARTBEAT_S:
                self.last_heartbeat = self.board.utc()
                cloud.report("status")

    # -- updates ------------------------------------------------------------

    def answer_ota(self, desired):
        """desired.ota from the shadow -> the shadow update that answers it, or None."""
        if self.updater is None:
            from ota.updater import Updater

            self.updater = Updater(VERSION, ota_state.load(), self.cloud.ota_changed,
                                   self.cloud.flush)
        answer = self.updater.answer(desired)
        self._drop_idle_updater()
        return answer

    def ota_section(self):
        return self.updater.section() if self.updater else self.ota_report

    def _drop_idle_updater(self):
        if self.updater and self.updater.idle():
            self.ota_report = self.updater.section()
            self.updater = None
            rare.drop("ota.updater", "core.otastate", "core.otadesired")

    def _should_refresh(self):
        return (
            self.session.state == sess.IDLE
            and self.spotify.token_valid_for_ms(self.board.ticks_ms()) < REFRESH_AHEAD_MS
        )

    async def _spotify_call(self, fn):
        """Run fn(now) outside a session; fatal errors stop further calls."""
        try:
            await fn(self.board.ticks_ms())
            self.set_error(None)
        except SpotifyError as e:
            if e.kind in FATAL:
                self._handle(self.session.fail(e.kind))
            else:
                self.set_error(e.kind)
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
                self.set_error(e.kind)
                self._handle(
                    self.session.done(
                        job, sess.RETRY, now, random.random(), e.retry_after_ms, e.kind
                    )
                )
            return
        now = self.board.ticks_ms()
        self.set_error(None)
        if job == "play" and outcome != sess.BUSY:
            log.event(
                "play" if outcome == sess.PLAYED else "adopt",
                device=self.config["spotify_device"],
                context=self.player.started_context,
                latency_ms=ticks_diff(now, self.pir.presence.arrived_ms),
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


def _certs():
    """(Spotify's roots, AWS IoT's roots, (notAfter, path) of the certificate that
    expires first); the reader is dropped."""
    import certs

    try:
        return certs.roots("spotify"), certs.roots("iot"), certs.earliest_expiry(certs.files())
    finally:
        rare.drop("certs", "core.x509")


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
            ota_state.crashed()  # across resets too: repeated crashes mean safe mode
            # Out of memory, a restart in place would start beside what the old App
            # still holds (tasks, the PIR handler): only a reset gives a clean heap.
            if crashes >= MAX_CRASHES or isinstance(e, MemoryError):
                board.reset()
            asyncio.new_event_loop()
