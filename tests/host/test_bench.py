"""The benchmark's bisection of the smallest working heap, with a fake session cycle."""

import json

from host_tools.bench import sessions as bench


class FakeProbe:
    def __init__(self, threshold_kb, flaky_kb=()):
        self.threshold_kb = threshold_kb
        self.flaky_kb = set(flaky_kb)  # fail by chance (fragmentation) above the threshold
        self.tried = []

    def works(self, heapsize):
        kb = int(heapsize[:-1])
        self.tried.append(kb)
        return kb >= self.threshold_kb and kb not in self.flaky_kb


def test_the_smallest_working_heap_is_found_by_bisection():
    probe = FakeProbe(138)
    assert bench.min_heap_kb(probe) == 138
    assert len(probe.tried) <= 12


def test_a_size_that_works_by_chance_below_failing_ones_is_not_the_answer():
    # The bisection ends at 142, but 146 just above it fails: the answer lies above that.
    probe = FakeProbe(140, flaky_kb={141, 146})
    assert bench.min_heap_kb(probe) == 147
    assert {146, 151, 155} <= set(probe.tried)


class PhasedProbe:
    """A cycle whose phases each need their own heap, one failing by chance above it."""

    def __init__(self, needs_kb, flaky=None):
        self.needs_kb = needs_kb
        self.flaky = flaky or {}

    def phases(self):
        return tuple(self.needs_kb)

    def reached(self, heapsize):
        kb = int(heapsize[:-1])
        done = []
        for phase, need in self.needs_kb.items():
            if kb < need or kb in self.flaky.get(phase, ()):
                break
            done.append(phase)
        return done


def test_each_phase_needs_the_smallest_heap_from_which_it_always_gets_through():
    probe = PhasedProbe({"boot": 60, "idle": 80, "play": 84, "pause": 84, "report": 92},
                        flaky={"report": {96}})
    figures = bench.phase_heaps_kb(probe, 40, 104, 4)
    assert figures == {"boot": 60, "idle": 80, "play": 84, "pause": 84, "report": 100}
    assert bench.phase_heaps_kb(probe, 40, 56, 4)["boot"] is None  # never got through


def test_bench_without_mosquitto_runs_the_rest_and_names_what_it_skipped(
        monkeypatch, tmp_path, capsys):
    from host_tools.bench import __main__ as main
    from host_tools.bench import iot, modules, ota

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPOTTY_MICROPYTHON", raising=False)
    monkeypatch.setattr(main, "mosquitto_missing", lambda: "mosquitto is not installed")
    seen = []

    def heap(figures, prefix, iot, source=True, ota=True):
        seen.append(("heap", prefix, iot))
        figures[prefix + "heap_spotify_kb"] = 77

    monkeypatch.setattr(bench, "main", lambda figures: figures.update(latency_warm_median_ms=9))
    monkeypatch.setattr(bench, "heap_figures", heap)
    monkeypatch.setattr(modules, "module_costs", lambda: ([("app", 2048)], [("certs", 1024)]))
    monkeypatch.setattr(ota, "main", lambda figures: figures.update(ota_verify_ms=3.0))
    monkeypatch.setattr(iot, "main", lambda figures: seen.append("iot"))
    assert main.main() == 0
    out = capsys.readouterr().out
    assert seen == [("heap", "", False)]  # no shadow-link run, no ESP32 run
    assert "Skipped: the shadow link figures" in out and "mosquitto is not installed" in out
    assert "Skipped: the ESP32 figures" in out
    written = json.loads((tmp_path / ".sim" / "bench.json").read_text())
    assert written["heap_spotify_kb"] == 77 and written["resident_kb"] == 2.0
    assert written["module_bytes"] == {"app": 2048, "certs": 1024}


def test_the_modelled_esp32_figures_and_their_goals(capsys):
    from host_tools.bench import modelled

    figures = {}
    modelled._record(figures, 1000, idle=[1080, 1100, 1090],
                     reconnecting=[1500, 1380, 1300], back=[900], pause_ms=[1100, 1120])
    assert figures["esp32_tls_handshake_ms"] == 1000
    assert figures["esp32_motion_to_play_idle_ms"] == 1090
    assert figures["esp32_motion_to_play_reconnecting_ms"] == 1380
    assert figures["esp32_pause_after_timeout_p95_ms"] == 1120
    assert figures["esp32_goals_met"] is True
    modelled._record(figures, 1000, idle=[1200], reconnecting=[1600], back=[], pause_ms=[1100])
    assert figures["esp32_goals_met"] is False
    out = capsys.readouterr().out
    assert "(1150): NOT met" in out and "(1500): NOT met" in out
