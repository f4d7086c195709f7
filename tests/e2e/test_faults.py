"""Spotify errors, bad answers and bad certificates: the firmware copes and says why."""

from conftest import api_calls
from host_tools.common.pki import CertificateAuthority
from host_tools.sim import runner as sim

VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.5, "pir": 0}]


def test_expired_token_refreshes_once_and_retries(mock, run_sim):
    def expire(event):
        if event["ev"] == "ready":
            mock.expire_access_tokens()

    run_sim(VISIT, 2.0, on_event=expire)
    log = [(r["method"], r["path"], r["status"]) for r in mock.requests()]
    assert log == [
        ("GET", "/v1/me/player", 401),
        ("POST", "/api/token", 200),
        ("GET", "/v1/me/player", 204),
        ("PUT", "/v1/me/player/play", 204),
    ], log
    # One TLS connection at a time: the API's was closed before the token endpoint was
    # dialled, so the retry comes on a new one.
    first, token, retry, play = (r["conn"] for r in mock.requests())
    assert len({first, token, retry}) == 3 and play == retry


def test_rate_limit_retry_after_is_honoured(mock, run_sim):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 429,
                 "headers": {"Retry-After": "2"}, "times": 1})
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 4.0, "pir": 0}], 4.5)
    first, second = api_calls(mock, "PUT", "/v1/me/player/play")
    assert first["status"] == 429 and second["status"] == 204
    assert second["t"] - first["t"] >= 2.0
    assert [(e["why"], e["wait_ms"]) for e in result.named("retry")] == [("rate_limited", 2000)]


def test_waiting_for_retry_after_does_not_stop_the_timeout(mock, run_sim):
    # Spotify says wait 30 s; the visitor leaves at 1.5 s; the 2 s timeout ends the wait.
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 429,
                 "headers": {"Retry-After": "30"}, "times": 1})
    result = run_sim(VISIT, 5.0)
    assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 1
    [skip] = result.named("skip")
    assert skip["why"] == "left_before_start" and 3400 <= skip["t"] <= 4500


def test_slow_server_does_not_stop_motion_handling(mock, run_sim):
    mock.inject({"match": "GET /v1/me/player", "kind": "slow", "delay": 2.5, "times": 1})
    events = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}, {"at": 1.5, "pir": 1}]
    result = run_sim(events, 4.0)
    motions = result.named("motion")
    # The second motion is seen while the first play request is still waiting.
    assert len(motions) == 2 and motions[1]["t"] < 2000, motions
    assert len(result.named("play")) == 1


def test_speaker_with_new_id_is_found_by_name(mock, run_sim):
    def speaker_restarted(event):
        if event["ev"] == "ready":
            mock.rename_device_id("dev-bathroom-1", "dev-bathroom-2")

    run_sim(VISIT, 2.0, on_event=speaker_restarted)
    calls = [(r["method"], r["path"], r["query"].get("device_id"), r["status"])
             for r in api_calls(mock)]
    assert calls == [
        ("GET", "/v1/me/player", None, 204),
        ("PUT", "/v1/me/player/play", "dev-bathroom-1", 404),
        ("GET", "/v1/me/player/devices", None, 200),
        ("PUT", "/v1/me/player/play", "dev-bathroom-2", 204),
    ], calls


def test_speaker_not_listed_reports_device_asleep(mock, run_sim):
    def speaker_off(event):
        if event["ev"] == "ready":
            mock.set_devices([{"id": "dev-kitchen-1", "name": "Kitchen", "type": "Speaker",
                               "volume_percent": 50}])

    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 2.5, "pir": 0}], 3.0, on_event=speaker_off)
    assert "device_asleep" in [e["why"] for e in result.named("retry")]
    assert "device_asleep" in [e["error"] for e in result.named("error")]


def test_server_errors_back_off_and_are_bounded(mock, run_sim):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 503,
                 "times": 100})
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 9.0, "pir": 0}], 9.5)
    plays = api_calls(mock, "PUT", "/v1/me/player/play")
    assert len(plays) == 5  # MAX_START_ATTEMPTS
    gaps = [b["t"] - a["t"] for a, b in zip(plays, plays[1:], strict=False)]
    assert gaps[-1] > 2 * gaps[0] and max(gaps) < 30, gaps  # grows, and stays capped
    assert [e["why"] for e in result.named("skip")] == ["server_error"]


def test_invalid_grant_stops_all_calls(mock, run_sim):
    def revoke(event):
        if event["ev"] == "ready":
            mock.revoke_refresh_token()
            mock.expire_access_tokens()

    events = VISIT + [{"at": 2.5, "pir": 1}, {"at": 3.0, "pir": 0}]
    result = run_sim(events, 4.0, on_event=revoke)
    assert [(r["method"], r["path"], r["status"]) for r in mock.requests()] == [
        ("GET", "/v1/me/player", 401),
        ("POST", "/api/token", 400),
    ]
    assert [e["error"] for e in result.named("error")] == ["needs_reauth"]
    assert [e["why"] for e in result.named("skip")] == ["needs_reauth"]


def test_garbage_and_oversized_answers_do_not_crash(mock, run_sim):
    for kind in ("garbage", "oversized", "bad_json", "truncated"):
        mock.inject({"match": "GET /v1/me/player", "kind": kind, "times": 1})
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 14.0, "pir": 0}], 14.5)
    assert [e["why"] for e in result.named("retry")] == ["server_error"] * 4
    assert len(result.named("play")) == 1


def test_server_certificate_from_another_ca_is_refused(mock, tmp_path):
    stranger = CertificateAuthority.create("Not the mock's CA")
    scenario = sim.validate_scenario({"config": {"spotify_device": "Bathroom"},
                                      "events": VISIT, "until": 1.5})
    result = sim.run(scenario, sim.SpotifyTarget(mock.url, stranger.cert_der))
    assert mock.requests() == []  # no HTTP request ever reached the server
    assert result.named("error")[0]["error"] == "server_error"
    assert result.returncode == 0 and not result.named("crash")
