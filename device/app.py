# Wires board + core + net into one asyncio loop.
#
# The control task ticks every LOOP_MS: it drains PIR edges, runs the session
# state machine, feeds the watchdog and drives the LED. The PIR interrupt wakes
# the edge task (pir.EdgeRing's flag), which does the same at once; the ticks
# confirm an arrival after the glitch filter and run the timeout. The worker task
# makes the network calls (boot, token refresh, play, pause) one at a time, so a
# slow server or a wait never holds up motion handling or the timeout; their code
# loads for Spotify's turn (spotify_turn.py). A raw rising edge already starts the
# motion path: the worker fetches the player state while the filter decides, so
# the filter's wait hides in Spotify's TLS handshake. The shadow link (when the
# board is provisioned for AWS IoT, see cloud.py) runs as a fourth task. Firmware
# updates run in the worker too, only while the session is idle. In safe mode
# (after repeated crashes, see health.py) only Wi-Fi and the shadow link run: no
# Spotify, no motion sessions, so an update can still fix the device.
import asyncio
import gc
import random
import sys

from micropython import const

import log
import rare
import store
from cloud import Cloud
from core import backoff
from core import session as sess
from core.stats import Stats
from core.ticks import ticks_add, ticks_diff
from health import Health
from ota import state as ota_state
from pir import Pir
from refresh_token import RefreshToken
from spotify_account import FATAL, OWNER

VERSION = "0.1.0"
_LOOP_MS = const(20)
_REFRESH_AHEAD_S = const(600)  # renew the access token this long before expiry, while idle
_REFRESH_RETRY_MS = const(2000)  # then, after a failed renewal, wait at least this
_REFRESH_RETRY_CAP_MS = const(300000)  # and at most this
_IDLE_POLL_MS = const(1000)
_MAX_CRASHES = const(5)
_HEARTBEAT_S = const(21600)  # a status report at least this often, even when nothing changes
_SPIKE_PAUSE_S = const(60)  # after a look-up that a spike wasted, none for this long


class App:
    def __init__(self, board, settings, boot=None):
        import startup  # the boot's code, dropped once it has run (worker)

        self.board = board
        # First of all, so motion during boot is kept.
        self.pir = Pir(board, settings.get("glitch_ms"))
        saved_ota = ota_state.load()
        self.health = Health(board, boot, saved_ota, VERSION)
        self.session = sess.Session()
        self.clock_synced = None  # UTC of the last NTP sync: no visit judged before one
        self.error = None  # last error state, for status and the LED
        self.job = None
        self.job_ready = asyncio.Event()
        # While a look-up begun on a raw edge waits for the filter: Spotify's call and
        # connection counts at its start (() until the worker has begun it).
        self.look_from = None
        self.spike_utc = 0  # UTC of the last look-up a spike wasted
        self.account = None  # a spotify_account.Account, once provisioned
        self.spotify = None  # its client, player and jobs, while their code is loaded
        self.player = None
        self.token = RefreshToken()
        self.refresh_failures = 0
        self.refresh_at = None  # ticks before which an idle refresh waits (after failures)
        self.wifi_reconnects = 0  # since boot, for status
        self.config = startup.load_config()
        self.zone = _zone(self.config["tz"])
        saved_stats, _ = store.load_json("stats.json", None)
        self.stats = Stats(saved_stats)
        self.cloud = Cloud(self, VERSION, settings.get("single_tls", True))
        self.boot_utc = None
        self.last_heartbeat = None
        self.ota_job = None  # a download to ask for when idle (ota.updater.answer)
        self.ota_due = None  # ticks from which it may start
        self.ota_report = saved_ota.get("report")
        self.cert_expiry = (None, None)

    # -- configuration ------------------------------------------------------

    def apply_config(self, new, changed):
        """Configuration accepted from the shadow: applied at once, kept on flash."""
        self.config = new
        store.save_json("config.json", new)
        if "tz" in changed:
            self.zone = _zone(new["tz"])
        if "spotify_device" in changed and self.account:
            self.account.device_id = None
        log.event("config_applied", changed=changed)
        self.owner_acted()

    def owner_acted(self):
        """A new setting or a pushed token: an error only the owner could fix may be
        fixed, so the next visit tries again (and says so if it is not)."""
        self.session.clear_error()
        if self.error in FATAL or self.error in OWNER:
            self.set_error(None)

    def _idle(self):
        """No music session under way (a session stopped by an error is none, one whose
        visitor came back while its pause was on the way is)."""
        session = self.session
        return self.job is None and session.state in (sess.IDLE, sess.ERROR) \
            and not session.came_back

    # -- control task -------------------------------------------------------

    async def control(self):
        while True:
            self._step()
            await asyncio.sleep_ms(_LOOP_MS)

    async def edges(self):
        flag = self.pir.ring.flag
        while True:
            await flag.wait()
            self._step()

    def _step(self):
        board = self.board
        now = board.ticks_ms()
        board.service(now)
        if self.pir.read(now):
            self.stats.motion(board.utc() if self.clock_synced else None)
        if self.clock_synced and not self.health.safe:
            utc = board.utc()
            presence = self.pir.presence
            self.handle(self.session.tick(now, utc, presence, self.config, self.zone))
            if not presence.rising():
                if self.look_from is not None:
                    self.job_ready.set()  # the filter's verdict, for the look-up waiting on it
            elif (self.job is None and self.look_from is None and self.account
                    and utc - self.spike_utc >= _SPIKE_PAUSE_S
                    and self.session.may_start(utc, self.config, self.zone)):
                self.job, self.look_from = "look", ()
                self.job_ready.set()
        self.health.tick(now)
        board.feed_watchdog()
        board.set_led(self._led_mode())
        board.led_tick(now)

    def _led_mode(self):
        if self.error or self.health.safe or self.session.state == sess.ERROR:
            return "error"
        if not self.clock_synced:
            return "boot"
        return "playing" if self.session.state == sess.PLAYING else "idle"

    def handle(self, decision):
        if not decision:
            return
        kind = decision[0]
        if kind in ("play", "pause"):
            self.job = kind
            self.job_ready.set()
        elif kind == "skip":
            log.event("skip", why=decision[1])
        elif kind == "end":
            started = decision[2]
            duration_s = max(0, self.board.utc() - started)
            log.event("session_end", why=decision[1], duration_s=duration_s,
                      free_heap=self.board.free_heap(), **self.cloud.counts())
            self.stats.session(self.zone, started, duration_s)
            try:
                store.save_json("stats.json", self.stats.as_dict())  # the one write per session
            except OSError as e:  # the totals live on in memory and in the report
                log.event("error", error="flash", detail="stats.json: %s" % e)
            self.cloud.report("status", "stats")
        elif kind == "retry":
            log.event("retry", action=decision[1], wait_ms=decision[2], why=decision[3])
        elif kind == "error":
            self.set_error(decision[1])
        elif kind == "resume":
            log.event("resumed")

    def token_rotated(self, refresh_token):
        self.token.rotated(refresh_token, self.board.utc())

    def sync_clock(self):
        """The clock from NTP (OSError when no server answers): at boot, and with each
        heartbeat, as RTC drift adds up."""
        board = self.board
        before = board.utc()
        board.sync_clock()
        self.clock_synced = utc = board.utc()
        log.event("clock_sync", step_s=utc - before)

    def set_error(self, error):
        if error != self.error:
            self.error = error
            self.cloud.report("status")
            if error:
                log.event("error", error=error)

    # -- worker task --------------------------------------------------------

    async def worker(self):
        import startup

        link = await startup.run(self)
        del startup
        rare.drop("startup")
        if link:
            self.cloud.start(*link)
            if not self.cloud.provisioned() and not self.health.safe:
                self.health.healthy()  # no shadow link to wait for
        log.start_clock(self.board.ticks_ms)
        self.board.ready()  # before the line: a simulator's events count from here
        log.event(
            "ready", version=VERSION, state=self.session.phase(), error=self.error,
            token_days_left=self.token.days_left(self.board.utc()), safe_mode=self.health.safe,
        )
        while True:
            try:
                await asyncio.wait_for_ms(self.job_ready.wait(), _IDLE_POLL_MS)
            except asyncio.TimeoutError:
                pass
            now = self.board.ticks_ms()
            if self.boot_utc is None:
                continue  # not provisioned
            if not self.board.network_ok():  # a job waits for Wi-Fi: it would fail without
                import wifi  # rare: its code goes once the link is back

                await wifi.reconnect(self)
                del wifi
                rare.drop("wifi")
                self.job_ready.set()  # the next round at once: the link comes back with Wi-Fi
                continue
            self.job_ready.clear()
            if self._idle():
                # The link back once a session is over (or if it could not load before):
                # it stays down from the play to the session's end, one reconnect a visit.
                self.cloud.give_tls()
            job, self.job = self.job, None
            if not (job and self.account):
                job = None
                if self.ota_job and self._ota_due(now) and self._idle():
                    await self._start_update()
                    continue
                if self.account and self._should_refresh(now):
                    job = "refresh"
            if job:
                if await self.cloud.take_tls():
                    # The shadow link's code is dropped, but this task's frames may still
                    # point at it (the GC reads stale slots too) until the task has
                    # yielded once: then a collection here, in the task's own frame,
                    # finds the room for Spotify's code. Deeper down, it does not.
                    await asyncio.sleep_ms(0)
                    gc.collect()
                if job == "look":
                    job = await self.spotify_turn("look")
                if job == "refresh":
                    self._refreshed(await self.spotify_turn(
                        "call", lambda: self.spotify.refresh()))
                elif job:
                    await self.spotify_turn(job)
                if self._idle():
                    self.cloud.give_tls()
            # After whatever else this round did: a worker that never wakes idle (in a
            # busy spell) must still sync its clock. The motion path goes first.
            if self.board.utc() - self.last_heartbeat >= _HEARTBEAT_S:
                self._heartbeat()

    def _heartbeat(self):
        try:
            self.sync_clock()
        except OSError:
            pass  # tried again with the next heartbeat; status says when it last worked
        self.last_heartbeat = self.board.utc()
        self.cloud.report("status")

    # -- updates ------------------------------------------------------------

    def answer_ota(self, desired):
        """desired.ota from the shadow -> the shadow update that answers it, or None."""
        try:  # the import too: one that fails for want of memory must not stay half-loaded
            from ota import updater

            update, job, report = updater.answer(desired, VERSION, self.ota_job)
        finally:
            rare.drop("ota.updater", "core.otastate", "core.otadesired")
        if job is not self.ota_job:
            self.ota_job, self.ota_due = job, None
        if report is not None:
            self.ota_report = report
            self.cloud.ota_changed(True)
        return update

    def ota_section(self):
        return self.ota_report

    def _ota_due(self, now):
        if self.ota_due is None:
            self.ota_due = ticks_add(now, self.ota_job["wait_ms"])
        return ticks_diff(now, self.ota_due) >= 0

    async def _start_update(self):
        """At an idle moment: report the download, ask for it, reset into it (ota.fetch)."""
        job = self.ota_job
        self.ota_report = job["downloading"]
        self.cloud.ota_changed(False)
        await self.cloud.flush()
        ota_state.ask_fetch(job["fetch"])
        log.event("ota_reboot", version=job["fetch"]["request"]["version"])
        self.board.reset()

    def _should_refresh(self, now):
        return (
            self.session.state == sess.IDLE
            and self.account.token_valid_for() < _REFRESH_AHEAD_S
            and (self.refresh_at is None or ticks_diff(now, self.refresh_at) >= 0)
            and not self.account.banned_s()
        )

    def _refreshed(self, ok):
        """After an idle refresh: a failing token endpoint is tried again after a
        growing wait, so that the shadow link has the TLS slot in between."""
        self.refresh_failures = 0 if ok else self.refresh_failures + 1
        self.refresh_at = None if ok else ticks_add(self.board.ticks_ms(), backoff.delay_ms(
            self.refresh_failures, random.random(), _REFRESH_RETRY_MS, _REFRESH_RETRY_CAP_MS))

    def spotify_up(self):
        """The Spotify client and player, loaded for Spotify's turn at the connection."""
        if self.spotify is None:
            from net.https import Client
            from net.spotify import Spotify
            from player import Player

            account = self.account
            self.spotify = Spotify(Client(account.api_url, account.ctx),
                                   Client(account.accounts_url, account.ctx), account,
                                   self.token_rotated)
            self.player = Player(self.spotify)

    def spotify_down(self):
        """Close Spotify's connections and unload the client's code (cloud.give_tls: the
        shadow link needs the heap)."""
        if self.spotify is not None:
            self.spotify.close()
            self.spotify = self.player = None
            rare.drop("spotify_turn", "player", "core.playback", "net.spotify", "net.https")

    async def spotify_turn(self, job, fn=None):
        """A job at Spotify's turn (spotify_turn.run), its code loaded with the client:
        "look", "play", "pause", or "call" (fn()). A client that cannot load for want of
        memory is tried again: a play or pause with the session's retry."""
        try:
            self.spotify_up()
            import spotify_turn
        except Exception as e:  # not Spotify's: the heap, with the link's code just gone
            self.look_from = None
            if job in ("play", "pause"):
                self.session_job_failed(job, e)
            else:
                log.error("internal", e)
            return None
        return await spotify_turn.run(self, job, fn)

    def session_job_failed(self, job, error):
        """A play or pause that failed for want of memory or flash: the session is kept."""
        log.error("internal", error)
        self.handle(self.session.done(job, sess.RETRY, self.board.ticks_ms(),
                                      random.random(), None, "internal"))

    async def run(self):
        await asyncio.gather(self.control(), self.edges(), self.worker())


def _zone(text):
    """The zone of a TZ string the schema has accepted; the parser is dropped."""
    try:
        from core import tzparse

        return tzparse.parse(text)
    finally:
        rare.drop("core.tzparse")


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
            if crashes >= _MAX_CRASHES or isinstance(e, MemoryError):
                board.reset()
            asyncio.new_event_loop()
