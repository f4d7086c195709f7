from core.motion import Presence
from core.ticks import ticks_add

GLITCH = 200


def run(edges, until, start=0):
    """Feed (offset_ms, level) edges, updating every 10 ms like the control loop."""
    p = Presence(GLITCH)
    pending = sorted(edges)
    for offset in range(0, until + 1, 10):
        now = ticks_add(start, offset)
        while pending and pending[0][0] <= offset:
            at, level = pending.pop(0)
            p.edge(level, ticks_add(start, at))
        p.update(now)
    return p, ticks_add(start, until)


def test_spike_shorter_than_glitch_is_ignored():
    p, _ = run([(100, 1), (250, 0)], 1000)
    assert p.arrivals == 0 and not p.occupied and p.glitches == 1


def test_high_level_is_presence_and_timeout_counts_from_low():
    p, now = run([(100, 1), (5000, 0)], 6000)
    assert p.arrivals == 1 and not p.occupied
    assert p.quiet_for_ms(now) == 1000


def test_occupied_while_level_stays_high():
    p, now = run([(100, 1)], 60000)
    assert p.occupied and p.quiet_for_ms(now) == -1 and p.arrivals == 1


def test_short_dip_does_not_end_presence_or_count_motion():
    p, _ = run([(100, 1), (3000, 0), (3100, 1)], 5000)
    assert p.occupied and p.arrivals == 1 and p.glitches == 1


def test_each_separate_visit_counts():
    p, _ = run([(0, 1), (1000, 0), (2000, 1), (3000, 0)], 4000)
    assert p.arrivals == 2


def test_edges_processed_late_keep_their_time():
    # A slow loop: both edges are drained long after they happened.
    p = Presence(GLITCH)
    p.edge(1, 100)
    p.edge(0, 900)
    p.update(5000)
    assert p.arrivals == 1 and p.quiet_for_ms(5000) == 4100


def test_works_across_tick_wraparound():
    start = ticks_add(0, -500)
    p, now = run([(0, 1), (1000, 0)], 3000, start=start)
    assert p.arrivals == 1 and p.quiet_for_ms(now) == 2000
