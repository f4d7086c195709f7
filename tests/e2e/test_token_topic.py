"""A new Spotify refresh token pushed to the device on its own MQTT topic
(spotty/<thing>/token, not the shadow), through a real mosquitto with per-thing ACLs."""

import json
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest
from needs import needs_mosquitto

from conftest import api_calls, iot_target
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.sim import runner as sim
from host_tools.spotify import login as sl

pytestmark = needs_mosquitto
CLOCK = "2026-11-23T12:00:00Z"
NEW_TOKEN = "AQD-pushed.Token_42"


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as local:
        yield local


def publish(iot, directory, identity, topic, payloads):
    """Publish as the thing `identity` (its own certificate, its name as client id)."""
    iot.broker.issue_client(identity).write(directory, identity)
    (directory / "ca.pem").write_bytes(iot.ca.cert_pem)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=identity,
                         protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(directory / "ca.pem"),
                   certfile=str(directory / (identity + ".pem")),
                   keyfile=str(directory / (identity + ".key.pem")), cert_reqs=ssl.CERT_REQUIRED)
    client.connect(iot.mqtt_host, iot.mqtt_port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def run_visit(mock, target, flash, at, until, on_event):
    """The firmware on a new flash, with the shadow link, and one visit at `at` s."""
    flash.mkdir()
    scenario = sim.validate_scenario({
        "clock": CLOCK, "until": until,
        "config": {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0},
        "events": [{"at": at, "pir": 1}, {"at": at + 0.5, "pir": 0}]})
    result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash,
                     iot=target, on_event=on_event)
    assert result.returncode == 0, "\n".join(result.console[-30:])
    return result


def test_a_pushed_token_is_stored_reported_and_ends_the_reauth_state(mock, iot, tmp_path):
    thing = "tok-1"
    target = iot_target(iot, thing, tmp_path / "keys")
    clock = sim.parse_clock(CLOCK)
    mock.revoke_refresh_token()  # the stored token no longer works: needs_reauth
    topic = "spotty/%s/token" % thing

    def push():
        # Another thing may not write to this thing's topic: the broker drops it.
        publish(iot, tmp_path, "intruder", topic,
                [json.dumps({"refresh_token": "evil", "issued_at": clock + 90}).encode()])
        mock.accept_refresh_token(NEW_TOKEN)
        host = ShadowClient(thing, iot.endpoint_url)  # as `spotty spotify-login --thing` does
        host.publish(topic, b"{not json")
        sl.push_token(host.publish, thing, sl.SpotifyToken("older-one", clock - 60, "c", ""))
        sl.push_token(host.publish, thing, sl.SpotifyToken(NEW_TOKEN, clock + 60, "c", ""))
        sl.wait_for_device(host.get, thing, clock + 60, 10, poll_s=0.2)

    started = []

    def observe(event):
        if event["ev"] == "shadow_up" and not started:
            started.append(event)
            threading.Thread(target=push, daemon=True).start()

    flash = tmp_path / "flash"
    result = run_visit(mock, target, flash, 3.0, 5.0, observe)

    assert [e["error"] for e in result.named("error")][:1] == ["needs_reauth"]
    assert [e["reason"] for e in result.named("token_refused")] == [
        "not JSON", "older than the stored token (push it with replace)"]
    [received] = result.named("token_received")
    assert received["issued_at"] == clock + 60
    assert json.loads((flash / "token.json").read_text()) == {
        "refresh_token": NEW_TOKEN, "issued_at": clock + 60}
    assert len(result.named("play")) == 1 and api_calls(mock, "PUT", "/v1/me/player/play")
    # The pushed token refreshes as the login made it: PKCE, by client id, no secret.
    refreshes = [r for r in mock.requests() if r["path"] == "/api/token"
                 and r["body"]["refresh_token"] == NEW_TOKEN]
    assert refreshes and all(r["status"] == 200 and r["auth"] == "none" for r in refreshes)
    assert refreshes[0]["body"]["client_id"] == mock.client_id
    status = ShadowClient(thing, iot.endpoint_url).get()["state"]["reported"]["status"]
    assert status["token_issued_at"] == clock + 60
    assert status.get("error") is None  # a null in the shadow deletes the key
    assert "token_refused" not in status
    shown = json.dumps(result.events) + "\n".join(result.console) + json.dumps(
        ShadowClient(thing, iot.endpoint_url).get())
    for secret in (NEW_TOKEN, "older-one", "evil"):
        assert secret not in shown


def test_a_token_from_the_future_blocks_genuine_pushes_until_one_says_replace(
        mock, iot, tmp_path):
    """The attack: a push dated ten years ahead, taken while the clock was unset (by
    a firmware without the cap), makes every genuine push "older". A push with
    replace (`spotty spotify-login --thing ... --replace`) takes its place."""
    thing = "tok-future"
    target = iot_target(iot, thing, tmp_path / "keys")
    clock = sim.parse_clock(CLOCK)
    future = clock + 10 * 365 * 86400
    stored = {"refresh_token": "planted", "issued_at": future}
    mock.accept_refresh_token(NEW_TOKEN)

    def push():
        host = ShadowClient(thing, iot.endpoint_url)
        genuine = sl.SpotifyToken(NEW_TOKEN, clock + 60, "c", "")
        sl.push_token(host.publish, thing, genuine)
        sl.push_token(host.publish, thing, sl.SpotifyToken("later", future + 1, "c", ""))
        sl.push_token(host.publish, thing, genuine, replace=True)
        sl.wait_for_device(host.get, thing, clock + 60, 10, poll_s=0.2)

    def observe(event):
        if event["ev"] == "shadow_up" and not observe.started:
            observe.started = True
            threading.Thread(target=push, daemon=True).start()

    observe.started = False
    flash = tmp_path / "flash"
    flash.mkdir()
    scenario = sim.validate_scenario({"clock": CLOCK, "until": 3.0, "events": [],
                                      "config": {"spotify_device": "Bathroom"}})
    result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash,
                     iot=target, on_event=observe,
                     files={"token.json": json.dumps(stored).encode()})
    assert result.returncode == 0, "\n".join(result.console[-30:])

    assert [e["reason"] for e in result.named("token_refused")] == [
        "older than the stored token (push it with replace)", "issued_at: in the future"]
    [received] = result.named("token_received")
    assert received["issued_at"] == clock + 60
    assert json.loads((flash / "token.json").read_text()) == {
        "refresh_token": NEW_TOKEN, "issued_at": clock + 60}
    status = ShadowClient(thing, iot.endpoint_url).get()["state"]["reported"]["status"]
    assert status["token_issued_at"] == clock + 60 and "token_refused" not in status


def test_a_token_pushed_while_the_link_gives_way_to_a_spotify_call_arrives_after_it(
        mock, iot, tmp_path):
    """Single TLS: the link is down during the play call. The broker keeps the QoS 1
    token for the device's persistent session and hands it over on the reconnect."""
    thing = "tok-2"
    target = iot_target(iot, thing, tmp_path / "keys")
    clock = sim.parse_clock(CLOCK)
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "slow", "delay": 1.5})
    host = ShadowClient(thing, iot.endpoint_url)
    seen = {"up": False, "pushed_at": None}

    def observe(event):
        if event["ev"] == "shadow_up":
            seen["up"] = True
        elif event["ev"] == "shadow_down" and seen["up"] and seen["pushed_at"] is None:
            seen["pushed_at"] = event["t"]
            sl.push_token(host.publish, thing, sl.SpotifyToken(NEW_TOKEN, clock + 60, "c", ""))

    flash = tmp_path / "flash"
    result = run_visit(mock, target, flash, 1.0, 6.0, observe)

    [play] = result.named("play")
    [received] = result.named("token_received")
    assert seen["pushed_at"] is not None and seen["pushed_at"] < play["t"] < received["t"]
    assert json.loads((flash / "token.json").read_text()) == {
        "refresh_token": NEW_TOKEN, "issued_at": clock + 60}
