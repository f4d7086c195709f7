"""A month in a minute: the firmware through 30 days of visits, two a day (7:00 and 19:00),
the hours in between skipped with `advance_s`, Spotify faults sprinkled in, and the
shadow link on (single TLS, as a board without PSRAM). `make bench` prints the heap trend
(free heap after a collection at the end of each session: a leak shows as a drift);
tests/e2e/test_soak.py checks that everything adds up.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..sim import runner as sim
from ..spotify.mock import MockSpotify

DAYS = 30
CLOCK = "2026-11-01T07:00:00Z"  # in UTC0: the visits are at 7:00 and 19:00 local
GAP_S = 12 * 3600
# A visit's session ends some 1.3 s after its motion (the glitch filter, the 1 s timeout,
# the pause); the clocks move on at 1.45 s and the next visit comes at 1.6 s. The 1 s
# timeout, the shortest there is, bounds how fast a month can go: 60 sessions take 103 s.
VISIT_EVERY_S = 1.6
GLITCH_MS = 50
CONFIG = {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0,
          "playlist_uri": "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"}
# Every FAULT_EVERY-th visit meets one, planned as the visit before ends; each is
# answered once and got over within the visit (a retry after a backoff, a token
# refresh, a new connection), which takes up to half a second more.
FAULT_EVERY = 5
FAULT_EXTRA_S = 0.6
FAULTS = (
    {"match": "PUT /v1/me/player/play", "kind": "status", "status": 503},
    {"match": "GET /v1/me/player", "kind": "status", "status": 500},
    {"match": "PUT /v1/me/player/pause", "kind": "status", "status": 502},
    {"match": "PUT /v1/me/player/play", "kind": "status", "status": 401},
    {"match": "PUT /v1/me/player/pause", "kind": "drop"},
    {"match": "POST /api/token", "kind": "status", "status": 503},
)


def scenario(days: int = DAYS) -> dict:
    events = []
    at = 0.5
    visits = 2 * days
    for n in range(visits):
        every = VISIT_EVERY_S + (FAULT_EXTRA_S if n and n % FAULT_EVERY == 0 else 0)
        events += [{"at": at, "pir": 1}, {"at": at + 0.15, "pir": 0}]
        if n < visits - 1:
            events.append({"at": at + every - 0.15, "advance_s": GAP_S})
        at += every
    return sim.validate_scenario({"clock": CLOCK, "config": CONFIG, "events": events,
                                  "until": at + 1.0, "device": {"glitch_ms": GLITCH_MS}})


@dataclass
class Soak:
    result: sim.SimResult
    reported: dict  # the shadow's reported state at the end
    injected: list = field(default_factory=list)  # the faults planned, in order
    faulted: list = field(default_factory=list)  # the requests that got one

    @property
    def free_heap(self) -> list[int]:
        """Free heap (bytes, after a collection) at the end of each session."""
        return [e["free_heap"] for e in self.result.named("session_end")]

    @property
    def advanced_s(self) -> int:
        return sum(e["advance_s"] for e in self.result.named("clock"))


def run(days: int = DAYS, heapsize: str | None = None) -> Soak:
    """The month, against the mock Spotify and the local AWS IoT stand-in (mosquitto)."""
    from ..aws.iot_local import IotLocal
    from ..aws.shadow_client import ShadowClient

    with IotLocal() as iot, MockSpotify() as mock, tempfile.TemporaryDirectory() as keys:
        files = iot.issue_thing("soak-bath", Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, "soak-bath",
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        injected: list = []
        ended = []

        def sprinkle(event):
            if event["ev"] != "session_end":
                return
            ended.append(event)
            if len(ended) % FAULT_EVERY == 0 and len(ended) < 2 * days:
                rule = FAULTS[len(injected) % len(FAULTS)]
                mock.inject(dict(rule))  # for the next visit
                injected.append(rule)

        result = sim.run(scenario(days), sim.SpotifyTarget(mock.url, mock.ca.cert_der),
                         iot=target, install_firmware=True, heapsize=heapsize,
                         on_event=sprinkle)
        shadow = ShadowClient("soak-bath", iot.endpoint_url).get() or {}
        faulted = [r for r in mock.requests() if r["fault"]]
    return Soak(result, shadow.get("state", {}).get("reported", {}), injected, faulted)


STATS_FULL = 2 * 14  # sessions until the statistics hold their 14 days (core/stats.py)


def heap_figures(soak: Soak) -> dict:
    heap = soak.free_heap
    first, last = heap[0] / 1024, heap[-1] / 1024
    return {"soak_sessions": len(heap),
            "soak_heap_first_session_free_kb": round(first, 1),
            "soak_heap_last_session_free_kb": round(last, 1),
            "soak_heap_drift_kb": round(last - first, 1),
            "soak_heap_steady_drift_kb": round(last - heap[STATS_FULL] / 1024, 1),
            "soak_heap_min_free_kb": round(min(heap) / 1024, 1)}


def main(figures: dict, heapsize: str | None, label: str) -> None:
    soak = run(heapsize=heapsize)
    heap = soak.free_heap
    if len(heap) != 2 * DAYS:
        raise SystemExit("soak incomplete: %d sessions of %d\n%s" % (
            len(heap), 2 * DAYS, "\n".join(soak.result.console[-20:])))
    found = heap_figures(soak)
    figures.update(found)
    step = len(heap) // 6
    trend = ", ".join("%.1f" % (heap[i] / 1024) for i in range(0, len(heap), step))
    print("\nA month in a minute (%d days, %d sessions, %d Spotify faults, shadow link on; %s):"
          % (DAYS, len(heap), len(soak.faulted), label))
    print("  free heap after each session (KB, every %dth): %s, ... %.1f" % (
        step, trend, heap[-1] / 1024))
    print("  first session %.1f KB, last %.1f KB: drift %+.1f KB (required: within 2 KB), of "
          "which %+.1f KB after the statistics' 14 days filled up (session %d)" % (
              found["soak_heap_first_session_free_kb"], found["soak_heap_last_session_free_kb"],
              found["soak_heap_drift_kb"], found["soak_heap_steady_drift_kb"], STATS_FULL + 1))
