"""Answers the real Spotify gives and the mock gives only when asked (issue: the real
Spotify): 202 Accepted, 200 with a body that is not JSON, 403 in plain text, and a
Retry-After of a day, from the Web API or from the token endpoint."""

import pytest
from needs import needs_mosquitto

from conftest import api_calls, iot_target
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient

VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.5, "pir": 0}]
DAY_S = 86400


def statuses(mock, method, path):
    return [r["status"] for r in api_calls(mock, method, path)]


def test_202_means_the_command_did_not_run_and_it_is_sent_again_5_s_later(mock, run_sim):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 202})
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 8.0, "pir": 0}], 8.5)
    first, second = api_calls(mock, "PUT", "/v1/me/player/play")
    assert (first["status"], second["status"]) == (202, 204)
    assert second["t"] - first["t"] >= 4.5
    assert [(e["why"], e["wait_ms"]) for e in result.named("retry")] == [
        ("device_unavailable", 5000)]
    [play] = result.named("play")  # played once, when it did
    assert play["t"] >= 5000, play


def test_200_with_a_body_that_is_not_json_is_success_for_play_and_pause(mock, run_sim):
    for path in ("/v1/me/player/play", "/v1/me/player/pause"):
        mock.inject({"match": "PUT " + path, "kind": "body", "body": "7cb2f9e1-a1b0 ok"})
    result = run_sim(VISIT, 5.0)
    assert statuses(mock, "PUT", "/v1/me/player/play") == [200]
    assert statuses(mock, "PUT", "/v1/me/player/pause") == [200]
    assert len(result.named("play")) == 1 and len(result.named("pause")) == 1
    assert [e["why"] for e in result.named("session_end")] == ["paused"]
    assert not result.named("retry") and not result.named("error")


@pytest.mark.parametrize("text, kind", [
    ("User not registered in the Developer Dashboard", "user_not_registered"),
    ("Active premium subscription required for the owner of the app",
     "owner_premium_required"),
])
def test_a_plain_text_403_is_not_retried_in_the_visit_and_the_next_visit_tries_once(
        mock, run_sim, text, kind):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 403,
                 "body": text, "content_type": "text/plain"})
    result = run_sim(VISIT + [{"at": 4.0, "pir": 1}, {"at": 5.0, "pir": 0}], 5.5)
    assert statuses(mock, "PUT", "/v1/me/player/play") == [403, 204]
    [skip] = result.named("skip")
    assert skip["why"] == kind and skip["t"] < 2000
    assert kind in [e["error"] for e in result.named("error")]
    assert not result.named("retry")
    [play] = result.named("play")
    assert play["t"] > 4000


def test_a_day_long_retry_after_binds_the_device_not_the_request(mock, run_sim):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 429,
                 "headers": {"Retry-After": str(DAY_S)}})
    result = run_sim(VISIT + [{"at": 4.0, "pir": 1}, {"at": 5.0, "pir": 0}], 5.5)
    # One play, refused; the next visit makes no call of any kind.
    assert [(r["method"], r["path"], r["status"]) for r in mock.requests()] == [
        ("GET", "/v1/me/player", 204), ("PUT", "/v1/me/player/play", 429)]
    assert [e["why"] for e in result.named("skip")] == ["rate_limited", "rate_limited"]
    assert not result.named("retry") and not result.named("play")


def test_a_429_from_the_token_endpoint_binds_the_device_too(mock, run_sim):
    mock.inject({"match": "POST /api/token", "kind": "status", "status": 429,
                 "headers": {"Retry-After": str(DAY_S)}})
    result = run_sim(VISIT, 2.5)
    assert mock.requests() == []  # after the boot's refused refresh: nothing at all
    assert [e["why"] for e in result.named("skip")] == ["rate_limited"]


@needs_mosquitto
def test_the_status_says_until_when_spotify_may_not_be_called(mock, run_sim, tmp_path):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 429,
                 "headers": {"Retry-After": str(DAY_S)}})
    with IotLocal() as iot:
        target = iot_target(iot, "bath-ban", tmp_path / "keys")
        run_sim(VISIT, 4.5, iot=target, clock="2026-11-23T12:00:00Z")
        status = ShadowClient("bath-ban", iot.endpoint_url).get()["state"]["reported"]["status"]
    noon = 1795435200  # 2026-11-23T12:00:00Z
    assert noon + DAY_S <= status["rate_limited_until"] <= noon + DAY_S + 10, status
    assert status["error"] == "rate_limited"


# -- sessions that must end well ------------------------------------------------------------

def test_with_no_speaker_set_no_player_call_is_made_and_the_error_says_why(mock, run_sim):
    mock.set_playback("dev-phone-1", True)  # someone's phone plays: not ours to touch
    result = run_sim(VISIT, 2.5, config={"spotify_device": ""})
    assert result.named("ready")[0]["error"] == "no_speaker"
    assert api_calls(mock) == []
    assert [e["why"] for e in result.named("skip")] == ["no_speaker"]


def test_a_transfer_to_a_speaker_with_a_new_id_looks_it_up_again(mock, run_sim):
    mock.set_playback("dev-kitchen-1", True)

    def speaker_restarted(event):
        if event["ev"] == "ready":
            mock.rename_device_id("dev-bathroom-1", "dev-bathroom-2")

    run_sim(VISIT, 2.0, config={"if_busy": "transfer"}, on_event=speaker_restarted)
    calls = [(r["method"], r["path"], r["status"]) for r in api_calls(mock)]
    assert calls == [
        ("GET", "/v1/me/player", 200),
        ("PUT", "/v1/me/player", 404),
        ("GET", "/v1/me/player/devices", 200),
        ("PUT", "/v1/me/player", 204),
    ], calls
    assert api_calls(mock, "PUT", "/v1/me/player")[1]["body"]["device_ids"] == ["dev-bathroom-2"]


@needs_mosquitto
def test_music_started_on_the_old_speaker_is_paused_after_the_setting_changed(
        mock, run_sim, tmp_path):
    events = VISIT + [{"at": 1.0, "desired": {"spotify_device": "Kitchen"}}]
    with IotLocal() as iot:
        target = iot_target(iot, "bath-move", tmp_path / "keys")
        result = run_sim(events, 5.5, iot=target)
    assert result.named("config_applied")
    [pause] = api_calls(mock, "PUT", "/v1/me/player/pause")
    assert pause["query"].get("device_id") == "dev-bathroom-1" and pause["status"] == 204
    assert [e["why"] for e in result.named("session_end")] == ["paused"]


def test_a_flash_that_refuses_writes_loses_neither_the_session_nor_the_new_token(
        mock, run_sim, tmp_path):
    flash = tmp_path / "flash"

    def break_flash(event):
        if event["ev"] == "ready":
            # A directory where the atomic write puts its temporary file: even root
            # cannot open it for writing.
            (flash / "token.json.tmp").mkdir()
            (flash / "stats.json.tmp").mkdir()
            mock.rotate_refresh_tokens()
            mock.expire_access_tokens()
        elif event["ev"] == "session_end":
            mock.expire_access_tokens()  # the next visit refreshes with the rotated token

    result = run_sim(VISIT + [{"at": 4.0, "pir": 1}, {"at": 5.0, "pir": 0}], 8.0,
                     on_event=break_flash)
    flash_errors = [e["detail"] for e in result.named("error") if e["error"] == "flash"]
    assert any(d.startswith("token.json") for d in flash_errors), flash_errors
    assert any(d.startswith("stats.json") for d in flash_errors), flash_errors
    # Both visits played and paused: the rotated token, kept in memory, went on working
    # (Spotify refuses the one before it).
    assert [r["status"] for r in mock.requests() if r["path"] == "/api/token"] == [200, 200]
    assert len(result.named("play")) == 2 and len(result.named("pause")) == 2
    assert [e["why"] for e in result.named("session_end")] == ["paused", "paused"]
