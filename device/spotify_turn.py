# The worker's jobs at Spotify's turn at the TLS connection: the look-up that a raw
# PIR edge begins, play and pause with their outcome for the session, and calls
# outside a session (the token refresh, the boot's warm-up). Loaded with Spotify's
# client (app.spotify_turn) and dropped with it: on a board with one TLS connection
# the shadow link's turn needs the room.
import random

from micropython import const

import log
from core import session as sess
from core.ticks import ticks_diff
from spotify_account import FATAL, OWNER, SpotifyError

_LONGEST_RETRY_MS = const(60000)  # a play or pause waits no longer than this for a retry


async def run(app, job, fn):
    """"look" -> the job the filter's verdict brings; "call" -> whether fn() went well;
    "play" or "pause" -> None, the outcome handed to the session."""
    if job == "look":
        return await _look(app)
    if job == "call":
        return await _call(app, fn)
    await _session_job(app, job)


async def _look(app):
    """The motion path's first half, begun on a raw edge: the player state, kept for the
    play that the filter's verdict brings; a spike plays nothing."""
    spotify, player = app.spotify, app.player
    app.look_from = (spotify.calls, spotify.api.connects)
    try:
        player.looked = (await player.look(app.config["spotify_device"]),)
    except Exception as e:  # the play, if one comes, reports it without a second try
        player.looked = e
    presence = app.pir.presence
    while app.job is None and presence.rising():
        app.job_ready.clear()
        await app.job_ready.wait()
    job, app.job = app.job, None
    if job is None:  # a spike, or a visit that may not start music
        player.looked = app.look_from = None
        app.spike_utc = app.board.utc()
        log.event("look_wasted")
    return job


async def _call(app, fn):
    """fn() outside a session; fatal errors stop further calls."""
    try:
        await fn()
        app.set_error(None)
        return True
    except SpotifyError as e:
        if e.kind in FATAL:
            app.handle(app.session.fail(e.kind))
        else:
            app.set_error(e.kind)
            log.event("error", error=e.kind, detail=e.detail)
    except Exception as e:  # not Spotify's (memory, flash): tried again later
        log.error("internal", e)
    return False


async def _session_job(app, job):
    spotify, session = app.spotify, app.session
    calls, connects = app.look_from or (spotify.calls, spotify.api.connects)
    app.look_from = None
    try:
        if job == "play":
            outcome = await app.player.start(app.config)
        else:
            outcome = await app.player.stop()
    except SpotifyError as e:
        now = app.board.ticks_ms()
        if e.kind in FATAL:
            app.handle(session.done(job, sess.FATAL, now, error=e.kind))
        else:
            app.set_error(e.kind)
            # No retry within the visit when only the owner can help, or when Spotify
            # asks for a wait longer than anyone stays.
            stop = e.kind in OWNER or (e.retry_after_ms or 0) > _LONGEST_RETRY_MS
            app.handle(session.done(job, sess.STOP if stop else sess.RETRY, now,
                                    random.random(), e.retry_after_ms, e.kind))
        return
    except Exception as e:  # not Spotify's (flash, memory): the session is kept
        app.session_job_failed(job, e)
        return
    now = app.board.ticks_ms()
    app.set_error(None)
    config = app.config
    if job == "play" and outcome != sess.BUSY:
        log.event(
            "play" if outcome == sess.PLAYED else "adopt",
            device=config["spotify_device"],
            context=app.account.started_context,
            latency_ms=ticks_diff(now, app.pir.presence.arrived_ms),
            calls=spotify.calls - calls,  # round trips on the motion path
            connects=spotify.api.connects - connects,
        )
    elif outcome == sess.PAUSED:
        log.event("pause", device=config["spotify_device"])
    elif job == "pause":
        log.event("no_pause", why=outcome)
    app.handle(session.done(job, outcome, now))
