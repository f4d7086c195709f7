"""The benchmark's workload: visits to the bathroom, as a scenario for the simulator."""

from ..sim import runner as sim

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
