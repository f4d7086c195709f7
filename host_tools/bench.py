"""`make bench`: figures from real runs of the firmware on the unix-port MicroPython.

- motion-to-play latency (PIR edge to Spotify's answer to the play request), median and
  p95 over 20+ sessions, with a warm (kept-alive) and a cold (new TLS) connection;
- network round trips on the motion path and Spotify calls per session;
- the smallest `-X heapsize` with which a full session cycle still works.
"""

import statistics
import sys

from . import sim
from .mock_spotify import MockSpotify

SESSIONS = 20
VISIT_EVERY_S = 2.5
CONFIG = {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0,
          "playlist_uri": "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"}


def visits(count, every=VISIT_EVERY_S):
    events = []
    for i in range(count):
        start = 0.5 + i * every
        events += [{"at": start, "pir": 1}, {"at": start + 0.3, "pir": 0}]
    return events


def scenario(count, every=VISIT_EVERY_S):
    return sim.validate_scenario({
        "config": CONFIG, "events": visits(count, every), "until": 0.5 + count * every + 0.5,
        "device": {"glitch_ms": 100},
    })


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_sessions(keepalive: bool):
    with MockSpotify(keepalive=keepalive) as mock:
        result = sim.run(scenario(SESSIONS), sim.SpotifyTarget(mock.url, mock.ca.cert_der))
        requests = mock.requests()
    plays = result.named("play")
    ends = result.named("session_end")
    if len(plays) != SESSIONS or len(ends) != SESSIONS:
        raise SystemExit("bench run incomplete: %d plays, %d ends\n%s" % (
            len(plays), len(ends), "\n".join(result.console[-20:])))
    return plays, requests


def latency_line(label, plays):
    values = [p["latency_ms"] for p in plays]
    return "  %-28s median %5d ms   p95 %5d ms   (n=%d, includes the %d ms glitch filter)" % (
        label, statistics.median(values), percentile(values, 0.95), len(values), 100)




def session_cycle_works(heapsize: str) -> bool:
    with MockSpotify() as mock:
        result = sim.run(scenario(1, every=3.0), sim.SpotifyTarget(mock.url, mock.ca.cert_der),
                         heapsize=heapsize)
    return (result.returncode == 0 and len(result.named("play")) == 1
            and len(result.named("session_end")) == 1 and not result.named("crash"))


def min_heap_kb(low=8, high=256):
    """Bisect the smallest heap (KB) with which boot, play, timeout and pause all work."""
    if not session_cycle_works("%dK" % high):
        raise SystemExit("a session cycle fails even with %d KB of heap" % high)
    while high - low > 1:
        mid = (low + high) // 2
        if session_cycle_works("%dK" % mid):
            high = mid
        else:
            low = mid
    return high


def main() -> int:
    print("SpottyPottySense benchmark (firmware on the unix-port MicroPython, mock Spotify "
          "over TLS on loopback)\n")
    warm, warm_requests = run_sessions(keepalive=True)
    cold, _ = run_sessions(keepalive=False)
    print("Motion-to-play latency (PIR edge -> answer to PUT /me/player/play), %d sessions:"
          % SESSIONS)
    print(latency_line("warm (connection kept alive)", warm[1:]))
    print(latency_line("cold (new TLS handshake)", cold))
    api = [r for r in warm_requests if r["path"] != "/api/token"]
    print("\nRound trips on the motion path: %d HTTP requests (GET player, PUT play); "
          "new TLS connections: %d warm, %d cold" % (
              statistics.median(p["calls"] for p in warm),
              statistics.median(p["connects"] for p in warm[1:]),
              statistics.median(p["connects"] for p in cold)))
    print("Spotify API calls per session: %.1f (play + pause, incl. ownership checks)"
          % (len(api) / SESSIONS))
    print("\nSmallest -X heapsize for boot + play + timeout + pause: %d KB (64-bit host; "
          "objects are smaller on the 32-bit ESP32)" % min_heap_kb())
    from . import bench_iot, ota_bench

    bench_iot.main()
    print()
    ota_bench.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
