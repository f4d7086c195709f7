from core.backoff import BASE_MS, CAP_MS, delay_ms


def test_grows_exponentially_within_jitter_bounds():
    for attempt in range(1, 8):
        ceiling = min(CAP_MS, BASE_MS << (attempt - 1))
        low, high = delay_ms(attempt, 0.0), delay_ms(attempt, 0.999)
        assert low == ceiling // 2, (attempt, low)
        assert ceiling // 2 <= high <= ceiling, (attempt, high)


def test_is_capped_even_for_huge_attempts():
    assert delay_ms(1000, 0.999) <= CAP_MS
