from core import config, session, tzparse
from core.session import Session
from core.ticks import ticks_add, ticks_diff

UTC = tzparse.parse("UTC0")
NOON = 1795348800  # 2026-11-22T12:00:00Z


class Room:
    """A fake presence: the session only reads arrivals and quiet_for_ms."""

    def __init__(self):
        self.arrivals = 0
        self.left_at = None

    def enter(self):
        self.arrivals += 1
        self.left_at = None

    def leave(self, now):
        self.left_at = now

    def quiet_for_ms(self, now):
        return -1 if self.left_at is None else ticks_diff(now, self.left_at)


def cfg(**changes):
    merged, _, refused = config.apply(config.DEFAULTS, changes)
    assert not refused, refused
    return merged


def playing_session(conf, room, now=1000):
    s = Session()
    room.enter()
    assert s.tick(now, NOON, room, conf, UTC) == ("play",)
    assert s.done("play", session.PLAYED, now + 300) is None
    assert s.state == session.PLAYING
    return s


def test_motion_starts_and_more_motion_makes_no_calls():
    room, conf = Room(), cfg(timeout_s=60)
    s = playing_session(conf, room)
    for t in range(2000, 60000, 1000):
        if t % 5000 == 0:
            room.enter()
        assert s.tick(t, NOON, room, conf, UTC) is None


def test_pause_exactly_at_timeout_not_before():
    room, conf = Room(), cfg(timeout_s=60)
    s = playing_session(conf, room)
    room.leave(5000)
    assert s.tick(5000 + 59999, NOON, room, conf, UTC) is None
    assert s.tick(5000 + 60000, NOON, room, conf, UTC) == ("pause",)
    assert s.tick(5000 + 60100, NOON, room, conf, UTC) is None  # in flight: nothing twice
    assert s.done("pause", session.PAUSED, 66000) == ("end", "paused", NOON)  # its start
    assert s.state == session.IDLE


def test_refusals_are_reported_as_skips():
    room = Room()
    cases = [
        (cfg(enabled=False), "disabled"),
        (cfg(quiet_start="11:00", quiet_end="13:00"), "quiet_hours"),
    ]
    for conf, why in cases:
        s = Session()
        room.enter()
        assert s.tick(1000, NOON, room, conf, UTC) == ("skip", why)
        assert s.state == session.IDLE


def test_motion_gap_between_start_attempts():
    room, conf = Room(), cfg(timeout_s=1, motion_gap_s=120)
    s = playing_session(conf, room)
    room.leave(2000)
    assert s.tick(3000, NOON, room, conf, UTC) == ("pause",)
    s.done("pause", session.PAUSED, 3100)
    room.enter()
    assert s.tick(60000, NOON, room, conf, UTC) == ("skip", "motion_gap")
    room.enter()
    assert s.tick(121000, NOON, room, conf, UTC) == ("skip", "motion_gap")  # UTC counts
    room.enter()
    assert s.tick(121000, NOON + 120, room, conf, UTC) == ("play",)


def test_a_week_away_across_a_tick_wrap():
    # The last start's tick would be ancient: 7 to 14 days is more than half the ESP32's
    # 2**30 ms tick period, after which ticks compare the wrong way round.
    conf = cfg(timeout_s=1, motion_gap_s=3600)
    for days in (7, 11, 14):
        room = Room()
        s = playing_session(conf, room, now=ticks_add(0, -500))  # just before a wrap
        room.leave(ticks_add(0, -400))
        assert s.tick(ticks_add(0, 700), NOON, room, conf, UTC) == ("pause",)
        assert s.done("pause", session.PAUSED, ticks_add(0, 800)) == ("end", "paused", NOON)
        later = ticks_add(800, days * 86400000)
        room.enter()
        assert s.tick(later, NOON + days * 86400, room, conf, UTC) == ("play",), days


def test_retry_waits_for_retry_after_while_ticks_go_on():
    room, conf = Room(), cfg()
    s = Session()
    room.enter()
    assert s.tick(1000, NOON, room, conf, UTC) == ("play",)
    event = s.done("play", session.RETRY, 1200, retry_after_ms=2000, error="rate_limited")
    assert event == ("retry", "play", 2000, "rate_limited")
    assert s.phase() == "backoff"
    assert s.tick(3199, NOON, room, conf, UTC) is None
    assert s.tick(3200, NOON, room, conf, UTC) == ("play",)


def test_start_attempts_are_bounded():
    room, conf = Room(), cfg()
    s = Session()
    room.enter()
    now, sent = 0, 0
    while now < 600000:
        if s.tick(now, NOON, room, conf, UTC) == ("play",):
            sent += 1
            event = s.done("play", session.RETRY, now, rnd=0.0, error="server_error")
            if event[0] == "skip":
                assert event == ("skip", "server_error")
                break
        now += 50
    assert sent == session.MAX_START_ATTEMPTS
    assert s.state == session.IDLE


def test_leaving_during_backoff_gives_up_after_timeout():
    room, conf = Room(), cfg(timeout_s=2)
    s = Session()
    room.enter()
    s.tick(0, NOON, room, conf, UTC)
    s.done("play", session.RETRY, 100, retry_after_ms=60000)
    room.leave(500)
    assert s.tick(2499, NOON, room, conf, UTC) is None
    assert s.tick(2500, NOON, room, conf, UTC) == ("skip", "left_before_start")


def test_motion_while_pause_retries_keeps_music():
    room, conf = Room(), cfg(timeout_s=1)
    s = playing_session(conf, room)
    room.leave(2000)
    assert s.tick(3000, NOON, room, conf, UTC) == ("pause",)
    s.done("pause", session.RETRY, 3100, retry_after_ms=5000)
    room.enter()
    assert s.tick(3200, NOON, room, conf, UTC) == ("resume",)
    assert s.state == session.PLAYING


def test_fatal_error_stops_calls_until_cleared():
    room, conf = Room(), cfg()
    s = Session()
    room.enter()
    s.tick(0, NOON, room, conf, UTC)
    assert s.done("play", session.FATAL, 100, error="needs_reauth") == ("error", "needs_reauth")
    room.enter()
    assert s.tick(200, NOON, room, conf, UTC) == ("skip", "needs_reauth")
    s.clear_error()
    room.enter()
    assert s.tick(300000, NOON + 300, room, conf, UTC) == ("play",)


def test_busy_elsewhere_ends_the_attempt():
    room, conf = Room(), cfg()
    s = Session()
    room.enter()
    s.tick(0, NOON, room, conf, UTC)
    assert s.done("play", session.BUSY, 100) == ("skip", "busy_elsewhere")
    assert s.state == session.IDLE


def test_pause_verdicts_end_the_session():
    for verdict in ("moved_elsewhere", "context_changed", "not_playing"):
        room, conf = Room(), cfg(timeout_s=1)
        s = playing_session(conf, room)
        room.leave(2000)
        s.tick(3000, NOON, room, conf, UTC)
        assert s.done("pause", verdict, 3100)[:2] == ("end", verdict)


def test_a_failing_pause_is_tried_for_30_minutes_with_waits_of_at_most_2():
    room, conf = Room(), cfg(timeout_s=1)
    s = playing_session(conf, room)
    room.leave(2000)
    now = 3000
    assert s.tick(now, NOON, room, conf, UTC) == ("pause",)
    waits, event = [], None
    while True:
        event = s.done("pause", session.RETRY, now + 100, rnd=0.99, error="network")
        if event[0] != "retry":
            break
        waits.append(event[2])
        now += 100 + event[2]
        assert s.tick(now, NOON, room, conf, UTC) == ("pause",)
    assert event[:2] == ("end", "pause_failed")
    assert now - 3000 >= session.PAUSE_PATIENCE_MS > now - 3000 - 121000
    assert max(waits) <= 120000 and waits[-1] > 60000 and len(waits) > 15


def test_someone_back_while_the_pause_is_on_its_way_gets_music_again():
    room, conf = Room(), cfg(timeout_s=1, motion_gap_s=600)
    s = playing_session(conf, room)
    room.leave(2000)
    assert s.tick(3000, NOON, room, conf, UTC) == ("pause",)
    room.enter()  # the pause request is still with Spotify
    assert s.tick(3100, NOON, room, conf, UTC) is None
    assert s.done("pause", session.PAUSED, 3500)[:2] == ("end", "paused")
    # Their arrival was not lost, and the gap between starts does not hold it back.
    assert s.tick(3520, NOON, room, conf, UTC) == ("play",)


def test_back_while_a_failed_pause_is_on_its_way_keeps_the_music():
    room, conf = Room(), cfg(timeout_s=1)
    s = playing_session(conf, room)
    room.leave(2000)
    assert s.tick(3000, NOON, room, conf, UTC) == ("pause",)
    room.enter()
    assert s.tick(3100, NOON, room, conf, UTC) is None
    s.done("pause", session.RETRY, 3500, retry_after_ms=5000)
    assert s.tick(3520, NOON, room, conf, UTC) == ("resume",)
    assert s.state == session.PLAYING
