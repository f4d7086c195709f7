"""The shadow's limits the device must live with (issue 9): a thing name of 128 characters
(AWS's longest; a certificate's CN holds 64, a clientToken 64 bytes), and shadow messages
over 8 KB (AWS counts desired and reported against its 8 KB, not the metadata that comes
with them, nor the delta)."""

import json
import subprocess
import sys

import pytest
from needs import needs_mosquitto

from conftest import iot_target
from host_tools.aws.broker import identity_for
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.common.devicepath import REPO

pytestmark = needs_mosquitto
LONG = ("bathroom:upstairs_" + "guest-suite-" * 10 + "x" * 128)[:128]


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as local:
        yield local


def watch_tokens(iot, thing):
    """The clientToken of each update the stand-in accepts for `thing`."""
    tokens: list[str] = []
    iot.watch("$aws/things/%s/shadow/update/accepted" % thing,
              lambda topic, payload: tokens.append(json.loads(payload).get("clientToken")))
    return tokens


def test_a_thing_name_of_128_characters_gets_its_config_and_acknowledges_it(
        mock, run_sim, iot, tmp_path):
    assert len(LONG) == 128 and len(identity_for(LONG)) == 64
    tokens = watch_tokens(iot, LONG)
    shadow = ShadowClient(LONG, iot.endpoint_url)
    result = run_sim([{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0},
                      {"at": 2.0, "desired": {"motion_gap_s": 45, "volume": 20}}], 4.5,
                     iot=iot_target(iot, LONG, tmp_path / "keys"))
    assert [e["changed"] for e in result.named("config_applied")] == [
        {"motion_gap_s": 45, "volume": 20}]
    assert not [e for e in result.named("error") if e["error"].startswith("shadow")], \
        result.named("error")
    state = shadow.get()["state"]
    assert state["reported"]["config"]["motion_gap_s"] == 45 and "delta" not in state
    assert state["reported"]["stats"]["sessions"] == 1
    device = [t for t in tokens if t]  # the host's updates (the desired event) send none
    assert device and all(t.startswith(LONG[:48]) and len(t.encode()) <= 64 for t in device)
    assert len(set(device)) == len(device)  # each request its own token


def test_a_config_too_big_for_the_board_is_refused_in_reported_and_cleared_from_desired(
        mock, run_sim, iot, tmp_path):
    target = iot_target(iot, "bath-big", tmp_path / "keys")
    shadow = ShadowClient("bath-big", iot.endpoint_url)
    big = {"playlist_uri": "spotify:playlist:" + "A" * 2000, "notes": "n" * 3000}
    shadow.set_desired(big)  # while the device is off: the get at boot brings it, > 8 KB
    result = run_sim([], 3.0, iot=target)
    assert result.named("config_refused")[0]["refused"] == {"config": "too big for the device"}
    state = shadow.get()["state"]
    assert state["reported"]["config_errors"] == {"config": "too big for the device"}
    assert "config" not in state.get("desired", {}) and "delta" not in state  # not stuck
    assert state["reported"]["config"]["timeout_s"] == 2  # what applied stays


def test_documents_over_8_kb_are_read_and_their_config_applied(mock, run_sim, iot, tmp_path):
    """A get/accepted and a delta, each well over 8 KB with their metadata: the device
    streams them through its field scanner, keeping only what it reads."""
    target = iot_target(iot, "bath-wide", tmp_path / "keys")
    shadow = ShadowClient("bath-wide", iot.endpoint_url)
    # Another app's section in desired: 2 KB of state, its metadata, and the same in delta.
    shadow.update_desired({"config": {"timeout_s": 30},
                           "labels": {"k%03d" % i: "v" * 8 for i in range(160)}})
    sizes: list[int] = []
    iot.watch("$aws/things/bath-wide/shadow/#", lambda topic, payload: sizes.append(
        len(payload)) if topic.endswith(("get/accepted", "update/delta")) else None)

    def change_with_a_big_delta(event):
        # 200 more leaves in desired: their delta, with its metadata, is over 8 KB too.
        if event["ev"] == "config_applied" and len(sizes) < 3:
            shadow.update_desired({"config": {"volume": 25},
                                   "more": {"m%03d" % i: i for i in range(200)}})

    result = run_sim([], 4.0, iot=target, on_event=change_with_a_big_delta)
    changed = [e["changed"] for e in result.named("config_applied")]
    assert changed[:2] == [{"timeout_s": 30}, {"volume": 25}], changed
    assert len(sizes) >= 2 and min(sizes[:2]) > 8192, sizes
    reported = shadow.get()["state"]["reported"]
    assert reported["config"]["timeout_s"] == 30 and reported["config"]["volume"] == 25
    assert not [e for e in result.named("error") if e["error"] == "shadow_message"]


def test_sim_iot_json_ends_with_the_shadow_of_a_thing_named_with_128_characters(tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({
        "clock": "2026-11-23T07:00:00Z",
        "config": {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0},
        "events": [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0},
                   {"at": 2.0, "desired": {"volume": 35}}],
        "until": 4.0}))
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", str(scenario),
                           "--iot", "--json", "--thing", LONG], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    last = lines[-1]
    assert set(last) == {"ev", "document"} and last["ev"] == "shadow"
    document = last["document"]
    assert {"state", "metadata", "version", "timestamp"} <= set(document)  # get_thing_shadow's
    assert document["state"]["reported"]["config"]["volume"] == 35
    assert document["state"]["reported"]["stats"]["sessions"] == 1
    assert "delta" not in document["state"]
    assert [e["ev"] for e in lines].count("shadow") == 1
