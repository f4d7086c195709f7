# Bounded exponential backoff with jitter. `rnd` is a number in [0, 1) from the
# caller (the core reads no random source), so results are reproducible in tests.
from micropython import const

BASE_MS = const(250)
CAP_MS = const(30000)


def delay_ms(attempt, rnd, base_ms=BASE_MS, cap_ms=CAP_MS):
    """Delay before retry number `attempt` (1 = first retry): half fixed, half jitter."""
    ceiling = min(cap_ms, base_ms << min(attempt - 1, 16))
    return ceiling // 2 + int(rnd * (ceiling - ceiling // 2))
