# Wires board + core + net into one asyncio loop.
#
# The control task ticks every LOOP_MS: it drains PIR edges, runs the session
# state machine, feeds the watchdog and drives the LED. The worker task makes
# the network calls (boot, token refresh, play, pause) one at a time, so a slow
# server or a wait never holds up motion handling or the timeout.
import asyncio
import random
import sys

from micropython import const

import log
import store
from core import config as config_schema
from core import session as sess
from core import tz
from core.motion import Presence
from core.ticks import ticks_diff
from edges import EdgeRing
from net import https, tls
from net.spotify import FATAL, Spotify, SpotifyError
from player import Player

VERSION = "0.1.0"
LOOP_MS = const(20)
REFRESH_AHEAD_MS = const(600000)  # renew the access token this long before expiry, while idle
IDLE_POLL_MS = const(1000)
DEFAULT_GLITCH_MS = const(200)
TOKEN_LIFE_DAYS = const(182)  # Spotify refresh tokens live about six months
MAX_CRASHES = const(5)

API_URL = "https://api.spotify.com"
ACCOUNTS_URL = "https://accounts.spotify.com"


class App:
    def __init__(self, board, settings):
        self.board = board
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
        ctx = tls.context(tls.load_ca_dir("ca"))
        api = https.Client(secrets.get("spotify_api_url", API_URL), ctx)
        accounts = https.Client(secrets.get("spotify_accounts_url", ACCOUNTS_URL), ctx)
        self.token_issued_at = token.get("issued_at")
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
            if self.clock_ok:
                utc = board.utc()
                decision = self.session.tick(now, utc, self.presence, self.config, self.zone)
                self._handle(decision)
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
            log.event("motion", count=p.arrivals)
        if p.occupied != self._occupied_seen:
            self._occupied_seen = p.occupied
            if not p.occupied:
                log.event("vacant")

    def _led_mode(self):
        if self.error or self.session.state == sess.ERROR:
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
            log.event("session_end", why=decision[1], duration_s=decision[2] // 1000)
        elif kind == "retry":
            log.event("retry", action=decision[1], wait_ms=decision[2], why=decision[3])
        elif kind == "error":
            self._set_error(decision[1])
        elif kind == "resume":
            log.event("resumed")

    def _set_error(self, error):
        if error != self.error:
            self.error = error
            if error:
                log.event("error", error=error)

    # -- worker task --------------------------------------------------------

    async def worker(self):
        await self._boot()
        log.start_clock(self.board.ticks_ms)
        log.event(
            "ready", version=VERSION, state=self.session.phase(), error=self.error,
            token_days_left=self.token_days_left(),
        )
        self.board.ready()
        while True:
            try:
                await asyncio.wait_for_ms(self.job_ready.wait(), IDLE_POLL_MS)
            except asyncio.TimeoutError:
                pass
            if self.spotify is None:
                continue
            self.job_ready.clear()
            job, self.job = self.job, None
            if job:
                await self._run_job(job)
            elif self._should_refresh():
                await self._spotify_call(self.spotify.refresh)

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
                calls=self.spotify.calls,
                connects=self.spotify.api.connects,
            )
        elif outcome == sess.PAUSED:
            log.event("pause", device=self.config["spotify_device"])
        elif job == "pause":
            log.event("no_pause", why=outcome)
        self._handle(self.session.done(job, outcome, now))

    async def run(self):
        await asyncio.gather(self.control(), self.worker())


def main(board_class):
    settings, _ = store.load_json("device.json", {})
    board = board_class(settings)
    board.start_watchdog()
    crashes = 0
    while True:
        try:
            asyncio.run(App(board, settings).run())
        except Exception as e:  # the one top-level handler: log, count, restart
            crashes += 1
            log.event("crash", error=repr(e), crashes=crashes)
            sys.print_exception(e)
            if crashes >= MAX_CRASHES:
                board.reset()
            asyncio.new_event_loop()
