from core.ticks import ticks_add, ticks_diff

PERIOD = 1 << 30


def test_diff_forward_and_backward():
    assert ticks_diff(1500, 1000) == 500
    assert ticks_diff(1000, 1500) == -500


def test_diff_across_wrap():
    before_wrap = ticks_add(0, -100)
    assert ticks_diff(ticks_add(before_wrap, 250), before_wrap) == 250
    assert ticks_diff(150, before_wrap) == 250


def test_add_wraps_into_range():
    t = ticks_add(PERIOD - 10, 30)
    assert ticks_diff(t, PERIOD - 10) == 30


def test_the_esp32_period_on_every_port():
    # The same answers as MicroPython's C code on an ESP32, whatever this port's period.
    half = PERIOD >> 1
    for new, old in ((0, half), (half, 0), (PERIOD - 1, 0), (0, PERIOD - 1), (5, 5),
                     (half - 1, 0), (0, half - 1), (123456789, 987654321)):
        assert ticks_diff(new, old) == ((new - old + half) % PERIOD) - half, (new, old)
    assert ticks_add(PERIOD - 1, 1) == 0
    assert ticks_add(0, -1) == PERIOD - 1
    # A value kept for more than half the period compares the wrong way round: why no
    # tick value is kept for long (7 days: "ahead" of now).
    week = 7 * 86400 * 1000
    assert ticks_diff(ticks_add(1000, week), 1000) < 0
