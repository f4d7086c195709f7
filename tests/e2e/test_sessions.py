"""The firmware on the sim board against the mock Spotify over TLS: the session behaviour."""

from conftest import api_calls

VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.5, "pir": 0}]  # leaves at 1.5 s; timeout 2 s


def test_play_uses_configured_device_and_playlist(mock, run_sim):
    playlist = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
    result = run_sim(VISIT, 2.5, config={"playlist_uri": playlist})
    plays = api_calls(mock, "PUT", "/v1/me/player/play")
    assert len(plays) == 1
    assert plays[0]["query"] == {"device_id": "dev-bathroom-1"}
    assert plays[0]["body"] == {"context_uri": playlist}
    assert plays[0]["status"] == 204
    assert mock.playback()["is_playing"] and mock.playback()["context"]["uri"] == playlist
    [play] = result.named("play")
    assert play["context"] == playlist and play["latency_ms"] >= 100  # glitch filter is 100 ms
    # Token and speaker id were fetched at boot: the motion path is GET player + PUT play
    # on the connection the boot left open.
    assert play["calls"] == 2 and play["connects"] == 0, play


def test_more_motion_extends_without_calls_and_pauses_after_timeout(mock, run_sim):
    events = [
        {"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0},
        {"at": 2.0, "pir": 1}, {"at": 2.5, "pir": 0},
        {"at": 3.5, "pir": 1}, {"at": 4.0, "pir": 0},  # each return inside the 2 s timeout
    ]
    result = run_sim(events, 7.5)
    calls = [(r["method"], r["path"]) for r in api_calls(mock)]
    assert calls == [
        ("GET", "/v1/me/player"), ("PUT", "/v1/me/player/play"),
        ("GET", "/v1/me/player"), ("PUT", "/v1/me/player/pause"),
    ], calls
    assert len(result.named("motion")) == 3
    t_pause = api_calls(mock, "PUT", "/v1/me/player/pause")[0]["t"] - result.ready_at
    assert t_pause >= 4.0 + 2.0 - 0.05, t_pause  # not before: 2 s after leaving at 4.0
    assert t_pause < 4.0 + 2.0 + 1.0, t_pause
    [end] = result.named("session_end")
    assert end["why"] == "paused" and 5 <= end["duration_s"] <= 6
    assert not mock.playback()["is_playing"]


def test_presence_follows_level_so_a_still_person_keeps_music(mock, run_sim):
    # High from 0.5 s to 5 s: one long presence, the timeout counts from 5 s.
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 5.0, "pir": 0}], 6.5)
    assert api_calls(mock, "PUT", "/v1/me/player/pause") == []
    assert result.named("session_end") == []
    assert mock.playback()["is_playing"]


def test_no_pause_when_user_moved_playback_elsewhere(mock, run_sim):
    def moved(event):
        if event["ev"] == "play":
            mock.set_playback(device_id="dev-kitchen-1", is_playing=True,
                              context_uri="spotify:playlist:37i9dQZF1DXcBWIGoYBM5M")

    result = run_sim(VISIT, 5.0, on_event=moved)
    assert api_calls(mock, "PUT", "/v1/me/player/pause") == []
    assert [e["why"] for e in result.named("no_pause")] == ["moved_elsewhere"]
    assert mock.playback()["is_playing"]


def test_music_already_playing_here_is_adopted_not_restarted(mock, run_sim):
    mock.set_playback(device_id="dev-bathroom-1", is_playing=True, context_uri="spotify:album:x")
    result = run_sim(VISIT, 5.0)
    assert api_calls(mock, "PUT", "/v1/me/player/play") == []
    assert len(result.named("adopt")) == 1
    assert len(api_calls(mock, "PUT", "/v1/me/player/pause")) == 1


def test_busy_elsewhere_skip_or_transfer(mock, run_sim):
    mock.set_playback(device_id="dev-kitchen-1", is_playing=True, context_uri="spotify:album:x")
    result = run_sim(VISIT, 1.5, config={"if_busy": "skip"})
    assert [e["why"] for e in result.named("skip")] == ["busy_elsewhere"]
    assert api_calls(mock, "PUT") == []
    mock.clear_log()
    run_sim(VISIT, 1.5, config={"if_busy": "transfer"})
    [transfer] = api_calls(mock, "PUT", "/v1/me/player")
    assert transfer["body"] == {"device_ids": ["dev-bathroom-1"], "play": True}
    assert mock.playback()["device"]["id"] == "dev-bathroom-1"


def test_volume_is_set_when_configured(mock, run_sim):
    run_sim(VISIT, 1.5, config={"volume": 35})
    [volume] = api_calls(mock, "PUT", "/v1/me/player/volume")
    assert volume["query"] == {"volume_percent": "35", "device_id": "dev-bathroom-1"}


def test_motion_during_boot_is_not_lost(mock, run_sim):
    result = run_sim([{"at": -1, "pir": 1}, {"at": 1.0, "pir": 0}], 1.5)
    assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 1
    assert len(result.named("play")) == 1


def test_disabled_counts_motion_but_plays_nothing(mock, run_sim):
    result = run_sim(VISIT, 1.5, config={"enabled": False})
    assert api_calls(mock) == []
    assert [e["why"] for e in result.named("skip")] == ["disabled"]
    assert len(result.named("motion")) == 1


def test_the_pir_interrupt_wakes_the_firmware_at_once(mock, run_sim):
    """Each edge wakes the edge task (the interrupt sets a ThreadSafeFlag): without a
    glitch filter, presence begins within a few ms of the edge, not at the next 20 ms tick."""
    edges = [0.5 + 0.537 * n for n in range(8)]  # apart from any tick's phase
    events = []
    for at in edges:
        events += [{"at": at, "pir": 1}, {"at": at + 0.25, "pir": 0}]
    result = run_sim(events, edges[-1] + 0.5, device={"glitch_ms": 0},
                     config={"enabled": False})
    delays = sorted(m["t"] - round(at * 1000) for m, at in zip(
        result.named("motion"), edges, strict=True))
    # The median shows the wake; the worst edge may have waited for a busy machine's CPU.
    assert delays[len(delays) // 2] <= 3 and delays[-1] <= 100, delays


def test_the_raw_edge_fetches_the_player_state_while_the_filter_decides(mock, run_sim):
    """Start on the edge, commit on the filter: GET /me/player goes out at the raw edge,
    the play request once the 100 ms glitch filter has confirmed the arrival."""
    result = run_sim(VISIT, 2.5)
    [look] = api_calls(mock, "GET", "/v1/me/player")
    [play] = api_calls(mock, "PUT", "/v1/me/player/play")
    edge = result.ready_at + 0.5
    assert look["t"] - edge < 0.1 <= play["t"] - edge, (look["t"] - edge, play["t"] - edge)
    [event] = result.named("play")
    assert event["calls"] == 2 and event["latency_ms"] >= 100  # counted from the raw edge
    assert result.named("look_wasted") == []


def test_spikes_the_filter_rejects_play_nothing_and_cost_one_look_up_a_minute(mock, run_sim):
    spikes = [{"at": at + dt, "pir": level} for at in (0.5, 1.0, 1.5)
              for dt, level in ((0, 1), (0.05, 0))]  # 50 ms each, under the 100 ms filter
    visit = [{"at": 2.5, "pir": 1}, {"at": 3.0, "pir": 0}]
    result = run_sim(spikes + visit, 3.5)
    ready = result.ready_at
    looks = [r["t"] - ready for r in api_calls(mock, "GET", "/v1/me/player")]
    # One at the first spike; none at the next two; the visit's after its filter.
    assert len(looks) == 2 and looks[0] < 0.6 and looks[1] >= 2.6, looks
    [play] = api_calls(mock, "PUT", "/v1/me/player/play")
    assert play["t"] - ready >= 2.6  # the visit: after its filter, on the usual path
    assert len(result.named("motion")) == len(result.named("play")) == 1
    assert len(result.named("look_wasted")) == 1
