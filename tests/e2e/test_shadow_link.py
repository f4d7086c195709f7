"""The firmware's shadow link against real mosquitto (mutual TLS, per-thing ACL) and the
local shadow service: configuration in, status and statistics out."""

import itertools
import json
import threading
import time

import pytest
from needs import needs_mosquitto

from conftest import api_calls, iot_target
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient

pytestmark = needs_mosquitto
VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.5, "pir": 0}]
_names = itertools.count(1)


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as local:
        yield local


@pytest.fixture
def thing(iot, tmp_path):
    name = "bath-%d" % next(_names)
    target = iot_target(iot, name, tmp_path / "keys")
    return target, ShadowClient(name, iot.endpoint_url)


def run_with_iot(run_sim, target, events, until, **kwargs):
    return run_sim(events, until, iot=target, **kwargs)


def reported(shadow):
    return shadow.get()["state"]["reported"]


def service_publish(iot, topic, payload: bytes):
    """Publish as the shadow service would (it may write to every thing's topics)."""
    iot.publish(topic, payload)


def test_first_connect_creates_the_shadow_with_config_status_and_stats(mock, run_sim, thing):
    target, shadow = thing
    assert shadow.get() is None
    run_with_iot(run_sim, target, VISIT, 5.5)
    state = reported(shadow)
    assert state["config"]["spotify_device"] == "Bathroom" and state["config"]["timeout_s"] == 2
    assert state["status"]["firmware"] and state["status"]["token_days_left"] == 182
    assert state["stats"]["sessions"] == 1 and state["stats"]["motions"] == 1
    document = json.dumps(shadow.get())
    assert len(json.dumps(state)) < 4096, len(json.dumps(state))
    for secret in ("refresh-0", "sim-password", "BEGIN", "spotty-test-client"):
        assert secret not in document


def test_desired_change_is_applied_persisted_and_reported(mock, run_sim, thing, tmp_path):
    target, shadow = thing
    events = VISIT + [{"at": 2.0, "desired": {"timeout_s": 60, "volume": 25}}]
    result = run_with_iot(run_sim, target, events, 4.0)
    [applied] = result.named("config_applied")
    assert applied["changed"] == {"timeout_s": 60, "volume": 25}
    doc = shadow.get()
    assert doc["state"]["reported"]["config"]["timeout_s"] == 60
    assert "delta" not in doc["state"]
    stored = json.loads((tmp_path / "flash" / "config.json").read_text())
    assert stored["timeout_s"] == 60 and stored["volume"] == 25


def test_invalid_values_are_refused_with_reasons_and_the_old_value_stays(
        mock, run_sim, thing):
    target, shadow = thing
    events = [{"at": 1.0, "desired": {"timeout_s": 99999, "colour": "red", "motion_gap_s": 5}}]
    result = run_with_iot(run_sim, target, events, 3.0)
    [refused] = result.named("config_refused")
    assert refused["refused"] == {"timeout_s": "must be 1..7200", "colour": "unknown setting"}
    doc = shadow.get()
    state = doc["state"]
    assert state["reported"]["config"]["timeout_s"] == 2
    assert state["reported"]["config"]["motion_gap_s"] == 5
    assert state["reported"]["config_errors"] == {"timeout_s": "must be 1..7200",
                                                  "colour": "unknown setting"}
    assert "delta" not in state  # the refused wishes were removed from desired
    assert "timeout_s" not in state["desired"]["config"]


def test_a_change_made_while_the_device_is_off_applies_at_boot(mock, run_sim, thing):
    target, shadow = thing
    shadow.set_desired({"timeout_s": 30, "if_busy": "transfer"})
    result = run_with_iot(run_sim, target, [], 2.0)
    assert result.named("config_applied")[0]["changed"] == {"timeout_s": 30,
                                                             "if_busy": "transfer"}
    assert reported(shadow)["config"]["if_busy"] == "transfer"


def test_stale_and_malformed_messages_are_ignored_an_oversized_one_read(
        mock, run_sim, thing, iot):
    target, shadow = thing
    topic = "$aws/things/%s/shadow/update/delta" % target.thing

    def inject(event):
        if event["ev"] == "shadow_up" and not inject.done:
            inject.done = True
            service_publish(iot, topic, b"{not json")
            service_publish(iot, topic, b"[1, 2]")
            service_publish(iot, topic, json.dumps(
                {"version": 1, "state": {"config": {"timeout_s": 7}, "pad": "x" * 20000}}
            ).encode())
        elif event["ev"] == "config_applied":
            # Once the device holds a later version (the desired change at 2.5 s).
            service_publish(iot, topic, json.dumps(
                {"version": 1, "state": {"config": {"timeout_s": 9}}}).encode())

    inject.done = False
    result = run_with_iot(run_sim, target, [{"at": 2.5, "desired": {"volume": 30}}], 4.0,
                          on_event=inject)
    problems = [e["detail"] for e in result.named("error") if e["error"] == "shadow_message"]
    assert problems == ["not JSON", "not a JSON object"], result.named("error")
    assert result.named("shadow_stale"), "a delta older than the applied version was used"
    # The 20 KB delta streamed through the field scanner: its config applied, its pad skipped.
    assert result.named("config_applied")[0]["changed"] == {"timeout_s": 7}
    state = reported(shadow)
    assert state["config"]["timeout_s"] == 7 and state["config"]["volume"] == 30


def test_spotify_is_called_only_while_the_link_is_down(mock, run_sim, thing):
    """Boards without PSRAM: never two TLS connections at once (single_tls, the default)."""
    target, _ = thing
    result = run_with_iot(run_sim, target, VISIT, 5.5)
    ups = [e["t"] / 1000 for e in result.named("shadow_up")]
    downs = [e["t"] / 1000 for e in result.named("shadow_down")]
    # Up; down from the play to the session's end, one reconnect a visit; up again.
    assert len(ups) == 2 and len(downs) == 1, (ups, downs)
    intervals = list(zip(ups, downs + [float("inf")], strict=False))
    calls = api_calls(mock)
    assert len(calls) == 4
    for call in calls:
        t = call["t"] - result.ready_at
        assert not any(up <= t <= down for up, down in intervals), (t, intervals)
    [end] = result.named("session_end")
    assert downs[0] < end["t"] / 1000 < ups[1]


def test_a_spike_gives_the_slot_back_to_the_link(mock, run_sim, thing):
    """The look-up of a raw edge takes the one TLS slot; the filter rejects the spike,
    nothing plays, and the link comes back."""
    target, _ = thing
    result = run_with_iot(run_sim, target, [{"at": 0.5, "pir": 1}, {"at": 0.55, "pir": 0}],
                          3.0)
    assert [r["path"] for r in api_calls(mock)] == ["/v1/me/player"]
    assert len(result.named("shadow_down")) == 1 and len(result.named("shadow_up")) == 2
    assert result.named("play") == [] and result.named("motion") == []
    assert len(result.named("look_wasted")) == 1


def test_back_while_the_pause_is_on_its_way_the_music_resumes_on_the_same_connection(
        mock, run_sim, thing):
    """Single TLS: a visitor back while the pause is under way is the session going on.
    The link does not take the slot between the pause and the play, and the play uses
    Spotify's connection that the pause left open."""
    target, _ = thing
    mock.inject({"match": "PUT /v1/me/player/pause", "kind": "slow", "delay": 1.0})
    back = [{"at": 3.8, "pir": 1}, {"at": 4.0, "pir": 0}]  # the pause is due at 3.5
    result = run_with_iot(run_sim, target, VISIT + back, 9.0)
    first, again = result.named("play")
    assert again["connects"] == 0, again
    ups, downs = result.named("shadow_up"), result.named("shadow_down")
    assert len(ups) == 2 and len(downs) == 1, (ups, downs)
    assert ups[1]["t"] > result.named("session_end")[-1]["t"] > again["t"]


def test_a_change_sent_during_a_session_applies_when_it_ends(mock, run_sim, thing):
    """Single TLS: the link stays down for the whole visit, and its `get` after the
    reconnect brings what changed meanwhile: nothing is lost, it only waits."""
    target, shadow = thing
    events = VISIT + [{"at": 1.0, "desired": {"volume": 33}}]  # played at ~0.7 s
    result = run_with_iot(run_sim, target, events, 5.0)
    [end] = result.named("session_end")
    [applied] = result.named("config_applied")
    assert applied["changed"] == {"volume": 33} and applied["t"] > end["t"]
    assert reported(shadow)["config"]["volume"] == 33
    assert "delta" not in shadow.get()["state"]


def test_reconnects_find_their_kept_session_and_cost_no_subscribe_and_no_puback(
        mock, run_sim, thing):
    """Single TLS: the link reconnects once a visit, after it. The broker keeps the
    session, so only the first connect of a boot subscribes (all topics in one
    packet), and the shadow's answers at QoS 0 need no PUBACK from the device."""
    target, shadow = thing
    for boot in (1, 2):  # the second boot finds the first one's session: it subscribes anyway
        result = run_with_iot(run_sim, target, VISIT, 5.5)
        ups = result.named("shadow_up")
        assert len(ups) == 2, ups
        assert [up["subscribed"] for up in ups] == [True, False], boot
        [end] = result.named("session_end")  # counted before the reconnect
        assert end["mqtt_connects"] == 1 and end["mqtt_received"] >= 1, end
        assert end["mqtt_subscribes"] == 1 and end["mqtt_pubacks"] == 0, end
        assert reported(shadow)["stats"]["sessions"] == boot


def test_a_broker_restart_loses_the_session_and_the_link_subscribes_again(
        mock, run_sim, thing, iot):
    target, shadow = thing

    def change_later():
        time.sleep(1.0)  # after the get that follows the connect: only a delta brings it
        shadow.set_desired({"volume": 40})

    def observe(event):
        if event["ev"] == "shadow_up":
            observe.ups += 1
            action = {1: iot.broker.restart, 2: change_later}.get(observe.ups)
            if action:
                threading.Thread(target=action, daemon=True).start()

    observe.ups = 0
    result = run_with_iot(run_sim, target, [], 6.0, on_event=observe)
    assert [up["subscribed"] for up in result.named("shadow_up")][:2] == [True, True]
    assert [e["changed"] for e in result.named("config_applied")] == [{"volume": 40}]
    assert reported(shadow)["config"]["volume"] == 40


def test_with_psram_the_link_stays_up_during_calls(mock, run_sim, thing):
    target, _ = thing
    result = run_with_iot(run_sim, target, VISIT, 4.5, settings={"single_tls": False})
    assert len(result.named("shadow_up")) == 1 and result.named("shadow_down") == []
    assert len(result.named("pause")) == 1


def test_broker_down_mid_session_music_still_plays_and_pauses_then_reports(
        mock, run_sim, thing, iot):
    target, shadow = thing

    def outage(event):
        if event["ev"] == "motion":
            iot.broker.stop()
        if event["ev"] == "session_end":
            threading.Timer(1.0, iot.broker.start).start()

    result = run_with_iot(run_sim, target, VISIT, 14.0, on_event=outage)
    assert len(result.named("play")) == 1 and len(result.named("pause")) == 1
    [end] = result.named("session_end")
    assert 3400 <= end["t"] <= 4800  # left at 1.5 s, 2 s timeout: on time despite the outage
    assert any(e.get("error") == "shadow_link" for e in result.named("error"))
    assert reported(shadow)["stats"]["sessions"] == 1  # reported once the link was back
