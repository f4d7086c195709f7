"""A month in a minute (host_tools/bench/soak.py, whose heap trend `make bench` prints): 30
days of visits, two a day, the hours between them skipped with `advance_s`, Spotify
faults sprinkled in, the shadow link on. Every session must play and pause, the
statistics add up, the token's days left follow the calendar, and the free heap after the
last session is within 2 KB of the free heap after the first: nothing leaks."""

import datetime
import os
from pathlib import Path

from needs import needs_mosquitto

from host_tools.bench import soak
from host_tools.bench.board_figures import HEAP
from host_tools.sim.runtime import interpreter, wheel_micropython_path, word_bits

DAY = 86400
LEAK_BOUND = 2048  # bytes on a 32-bit board; twice that where pointers take 8 bytes
BESIDE = Path(__file__).resolve().parents[3] / "shared" / "tools" / "micropython-esp32like"


def board_like():
    """(interpreter, heap): the 32-bit one with a stock ESP32's heap where there is one (a
    month must also fit a board's heap), else the wheel."""
    for candidate in (os.environ.get("SPOTTY_MICROPYTHON"), str(BESIDE)):
        if candidate and os.access(candidate, os.X_OK) and word_bits(candidate) == 32:
            return candidate, HEAP
    return wheel_micropython_path(), None


@needs_mosquitto
def test_a_month_of_visits_plays_pauses_adds_up_and_leaks_nothing():
    binary, heapsize = board_like()
    with interpreter(binary):
        run = soak.run(heapsize=heapsize)
    result = run.result
    assert result.returncode == 0, "\n".join(result.console[-30:])
    assert not result.named("crash") and result.boots == 1
    sessions = 2 * soak.DAYS

    # Every visit played and paused, faults and all.
    assert not result.named("skip")
    assert len(result.named("play")) == len(result.named("pause")) == sessions
    ends = result.named("session_end")
    assert [e["why"] for e in ends] == ["paused"] * sessions
    assert len(run.injected) == sessions // soak.FAULT_EVERY - 1
    assert len(run.faulted) == len(run.injected)  # each fault was met, and got over
    assert {r["fault"] for r in run.faulted} == {"status", "drop"}

    # The statistics add up, in the shadow (with the last session's report).
    stats = run.reported["stats"]
    durations = [e["duration_s"] for e in ends]
    assert stats["sessions"] == stats["motions"] == sessions
    assert stats["play_s"] == sum(durations)
    assert [h for h, n in enumerate(stats["by_hour"]) if n] == [7, 19]
    assert stats["by_hour"][7] == stats["by_hour"][19] == soak.DAYS
    first = datetime.date.fromisoformat(soak.CLOCK[:10])
    last_days = [str(first + datetime.timedelta(days=d)) for d in range(soak.DAYS - 14,
                                                                          soak.DAYS)]
    assert [day[0] for day in stats["by_day"]] == last_days
    assert [day[1] for day in stats["by_day"]] == [2] * 14
    assert [day[2] for day in stats["by_day"]] == [
        a + b for a, b in zip(durations[-28::2], durations[-27::2], strict=True)]

    # The month went by on the device's clock: the token's days left, the clock synced.
    status = run.reported["status"]
    assert run.advanced_s == (sessions - 1) * soak.GAP_S
    assert status["token_days_left"] == 182 - run.advanced_s // DAY
    assert status["uptime_s"] >= run.advanced_s
    assert status["clock_synced"] >= soak.sim.parse_clock(soak.CLOCK) + run.advanced_s
    assert len(result.named("clock_sync")) >= soak.DAYS * 2

    # No leak: the heap after the last session is that after the first, within 2 KB. The
    # 14 days of statistics fill up in the first half; after that it stays put.
    heap = run.free_heap
    bound = LEAK_BOUND * word_bits(binary) // 32
    assert len(heap) == sessions
    assert abs(heap[-1] - heap[0]) <= bound, heap
    assert abs(heap[-1] - heap[soak.STATS_FULL]) <= bound // 4, heap
