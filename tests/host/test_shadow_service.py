"""The shadow service end to end: real mosquitto (mutual TLS, per-thing ACL), a paho
client per thing, and boto3 on the HTTP API."""

import json
import stat
import threading
import time

import boto3
import paho.mqtt.client as mqtt
import pytest
from botocore.exceptions import ClientError
from needs import needs_mosquitto

from host_tools.aws import local_token
from host_tools.aws.iot_local import IotLocal

pytestmark = needs_mosquitto

WAIT_S = 5.0
QUIET_S = 0.5


class Device:
    """A paho client with the thing's certificate, recording what it receives (and its
    disconnections). It sends the thing name as client id unless told another, and keeps a
    persistent session as the firmware does when asked."""

    def __init__(self, iot: IotLocal, name: str, cert_dir, client_id: str | None = None,
                 persistent: bool = False):
        files = iot.issue_thing(name, cert_dir)
        self.name = name
        self.prefix = f"$aws/things/{name}/shadow"
        self._received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self._acks: dict[int, threading.Event] = {}
        self.disconnects: list = []
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or name,
            protocol=mqtt.MQTTv311, clean_session=not persistent,
        )
        client.tls_set(
            ca_certs=str(files.ca_pem), certfile=str(files.cert_pem), keyfile=str(files.key_pem)
        )
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.append(rc)
        connected = threading.Event()
        client.on_connect = lambda *args: connected.set()
        client.connect(iot.mqtt_host, iot.mqtt_port)
        client.loop_start()
        assert connected.wait(WAIT_S), "device %s did not connect" % name
        self.client = client

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            self._received.append((message.topic, message.payload))
            self._changed.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._acks.setdefault(mid, threading.Event()).set()

    def subscribe(self, *topics: str) -> None:
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert self._acks.setdefault(mid, threading.Event()).wait(WAIT_S)

    def publish(self, topic: str, payload: bytes | dict) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def expect(self, suffix: str) -> dict:
        """The next message on this thing's shadow topic `suffix`, consumed."""
        topic = f"{self.prefix}/{suffix}"
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while True:
                for i, (got, payload) in enumerate(self._received):
                    if got == topic:
                        del self._received[i]
                        return json.loads(payload)
                left = deadline - time.monotonic()
                assert left > 0, "nothing on %s; got %s" % (topic, self._received)
                self._changed.wait(left)

    def received(self) -> list[tuple[str, bytes]]:
        with self._changed:
            return list(self._received)


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as running:
        yield running


def data_client(iot: IotLocal, token: str | None = None):
    """boto3's iot-data client on the stand-in, with its token unless given another."""
    client = boto3.client("iot-data", endpoint_url=iot.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    local_token.attach(client, token or iot.http_token)
    return client


@pytest.fixture
def iot_data(iot):
    return data_client(iot)


@pytest.fixture
def devices(iot, tmp_path):
    opened: list[Device] = []

    def connect(name: str) -> Device:
        device = Device(iot, name, tmp_path / name)
        device.subscribe(*(f"{device.prefix}/{t}" for t in RESPONSES))
        opened.append(device)
        return device

    yield connect
    for device in opened:
        device.close()


RESPONSES = (
    "get/accepted", "get/rejected", "update/accepted", "update/rejected",
    "update/delta", "update/documents", "delete/accepted", "delete/rejected",
)


def test_device_round_trip_with_http_config(devices, iot_data):
    bath = devices("bath-1")
    bath.publish(f"{bath.prefix}/get", {"clientToken": "g1"})
    assert bath.expect("get/rejected") == {
        "code": 404,
        "message": "No shadow exists with name: 'bath-1'",
        "timestamp": pytest.approx(time.time(), abs=5),
        "clientToken": "g1",
    }

    bath.publish(f"{bath.prefix}/update", {"state": {"reported": {"config": {"volume": 20}}}})
    assert bath.expect("update/accepted")["version"] == 1
    assert bath.expect("update/documents")["current"]["version"] == 1

    # `spotty config set` goes through the HTTP API and reaches the board as a delta.
    iot_data.update_thing_shadow(
        thingName="bath-1",
        payload=json.dumps({"state": {"desired": {"config": {"volume": 40, "tz": "UTC0"}}}}),
    )
    delta = bath.expect("update/delta")
    assert delta["state"] == {"config": {"volume": 40, "tz": "UTC0"}}
    assert delta["version"] == 2
    assert bath.expect("update/accepted")["state"] == {
        "desired": {"config": {"volume": 40, "tz": "UTC0"}}
    }

    bath.publish(f"{bath.prefix}/update", {"state": {"reported": {"config": {"volume": 40}}}})
    assert bath.expect("update/accepted")["version"] == 3
    got = json.loads(iot_data.get_thing_shadow(thingName="bath-1")["payload"].read())
    assert got["state"]["delta"] == {"config": {"tz": "UTC0"}}
    assert got["version"] == 3


def test_malformed_update_is_rejected_over_mqtt(devices):
    bath = devices("bath-3")
    bath.publish(f"{bath.prefix}/update", b'{"state": {"reported": ')
    assert bath.expect("update/rejected")["code"] == 400
    bath.publish(f"{bath.prefix}/update", {"state": {"reported": {"a": 1}}, "version": 5})
    rejected = bath.expect("update/rejected")
    assert (rejected["code"], rejected["message"]) == (409, "Version conflict")


def test_http_rejections_are_not_published(devices, iot_data):
    bath = devices("bath-4")
    with pytest.raises(ClientError) as raised:
        iot_data.update_thing_shadow(thingName="bath-4", payload=b"{nope")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestException"
    time.sleep(QUIET_S)
    assert bath.received() == []


def test_a_thing_cannot_see_or_touch_another_things_shadow(devices, iot_data):
    bath1 = devices("bath-5")
    bath2 = devices("bath-6")
    bath1.subscribe("$aws/things/bath-6/shadow/#")  # granted by mosquitto, never delivered
    bath1.publish("$aws/things/bath-6/shadow/update", {"state": {"reported": {"x": 1}}})
    time.sleep(QUIET_S)  # time for the service to act on it, had it been let through
    with pytest.raises(ClientError) as raised:
        iot_data.get_thing_shadow(thingName="bath-6")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    iot_data.update_thing_shadow(
        thingName="bath-6", payload=json.dumps({"state": {"desired": {"a": 1}}})
    )
    assert bath2.expect("update/delta")["state"] == {"a": 1}
    time.sleep(QUIET_S)
    assert [t for t, _ in bath1.received() if "bath-6" in t] == []


def test_named_shadows_over_mqtt(devices):
    bath = devices("bath-7")
    named = f"{bath.prefix}/name/stats"
    bath.subscribe(f"{named}/update/accepted")
    bath.publish(f"{named}/update", {"state": {"reported": {"sessions": 3}}})
    assert bath.expect("name/stats/update/accepted")["state"] == {"reported": {"sessions": 3}}
    bath.publish(f"{bath.prefix}/get", b"")
    assert bath.expect("get/rejected")["code"] == 404  # the classic shadow is separate


def test_service_resubscribes_after_a_broker_restart(iot, devices):
    iot.broker.restart()
    bath = devices("bath-8")
    deadline = time.monotonic() + 15
    while True:
        bath.publish(f"{bath.prefix}/get", b"")
        try:
            assert bath.expect("get/rejected")["code"] == 404
            break
        except AssertionError:
            assert time.monotonic() < deadline, "shadow service did not come back"


def test_shadows_survive_a_restart(tmp_path):
    payload = json.dumps({"state": {"reported": {"a": 1}}})
    with IotLocal(tmp_path / "iot") as first:
        data_client(first).update_thing_shadow(thingName="bath-1", payload=payload)
    with IotLocal(tmp_path / "iot") as second:
        answer = data_client(second).get_thing_shadow(thingName="bath-1")
        got = json.loads(answer["payload"].read())
    assert got["state"] == {"reported": {"a": 1}}
    assert got["version"] == 1
    # The token is kept with the state, so a client set up with it keeps working.
    assert second.http_token == first.http_token
    token_file = tmp_path / "iot" / "http-token"
    assert token_file.read_text() == first.http_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_list_things_names_the_things_with_a_shadow(iot, iot_data):
    """boto3's `iot` client (ListThings) against the stand-in: its registry is its shadows."""
    iot_data.update_thing_shadow(thingName="listed-1", payload=b'{"state":{"reported":{"a":1}}}')
    iot_data.update_thing_shadow(thingName="listed-2", payload=b'{"state":{"desired":{"b":1}}}')
    iot_data.update_thing_shadow(thingName="listed-3", payload=b'{"state":{"reported":{"c":1}}}')
    iot_data.delete_thing_shadow(thingName="listed-3")
    control = boto3.client("iot", endpoint_url=iot.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
    local_token.attach(control, iot.http_token)
    names = [t["thingName"] for t in control.list_things()["things"]]
    assert "listed-1" in names and "listed-2" in names and "listed-3" not in names
    assert names == sorted(names)
