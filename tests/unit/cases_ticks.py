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
