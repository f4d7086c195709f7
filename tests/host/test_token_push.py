"""The token push: iot-data Publish (botocore) against the local stand-in's
`POST /topics/{topic}`, and a paho client with the thing's certificate receiving it."""

import json
import threading

import pytest
from botocore.exceptions import ClientError
from needs import needs_mosquitto
from test_shadow_service import WAIT_S, Device

from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow import ShadowStore
from host_tools.aws.shadow_client import ShadowClient
from host_tools.aws.shadow_http import HttpApi
from host_tools.aws.shadow_service import ShadowService
from host_tools.common.errors import SpottyError
from host_tools.spotify import login as sl

THING = "bathroom-1"
TOKEN = sl.SpotifyToken("AQD-pushed-refresh-token", 1_760_000_000, "client", sl.SCOPES)


class Recorder:
    def __init__(self):
        self.sent: list[tuple[str, bytes, int]] = []

    def __call__(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.sent.append((topic, payload, qos))


@pytest.fixture
def api_with(request):
    """The HTTP API alone; its MQTT side is a recorder (or absent)."""
    apis = []

    def start(publish):
        api = HttpApi(ShadowService(ShadowStore(), publish), token="push-test-token")
        api.start()
        apis.append(api)
        return ShadowClient(THING, api.url, "eu-west-1")

    yield start
    for api in apis:
        api.stop()


def test_publish_passes_topic_payload_and_qos_to_mqtt(api_with):
    recorder = Recorder()
    client = api_with(recorder)
    sl.push_token(client.publish, THING, TOKEN)
    client.publish("spotty/%s/ping" % THING, b"\x00\xff", qos=0)
    assert recorder.sent == [
        ("spotty/bathroom-1/token", sl.token_message(TOKEN), 1),
        ("spotty/bathroom-1/ping", b"\x00\xff", 0),
    ]


@pytest.mark.parametrize("topic, qos, message", [
    ("spotty/+/token", 1, "Invalid topic name"),
    ("spotty/#", 1, "Invalid topic name"),
    ("t" * 257, 1, "Invalid topic name"),
    ("spotty/x/token", 2, "qos must be 0 or 1"),
])
def test_publish_refuses_what_aws_refuses(api_with, topic, qos, message):
    recorder = Recorder()
    client = api_with(recorder)
    with pytest.raises(SpottyError, match="%s .*InvalidRequestException" % message):
        client.publish(topic, b"{}", qos=qos)
    assert recorder.sent == []


def test_publish_refuses_retained_and_oversized_messages(api_with):
    recorder = Recorder()
    client = api_with(recorder)
    with pytest.raises(ClientError, match="retained messages are not supported"):
        client._client.publish(topic="spotty/x/token", qos=1, retain=True, payload=b"{}")
    with pytest.raises(SpottyError, match="RequestEntityTooLargeException"):
        client.publish("spotty/x/token", b"x" * (128 * 1024 + 1))
    assert recorder.sent == []


def test_a_push_without_the_mqtt_side_is_a_clear_error(api_with):
    client = api_with(None)
    with pytest.raises(SpottyError, match="cannot send the token to bathroom-1: .*"
                       "ServiceUnavailableException") as failure:
        sl.push_token(client.publish, THING, TOKEN)
    assert TOKEN.refresh_token not in str(failure.value)


# -- through mosquitto to the thing ---------------------------------------------------

TOPIC = "spotty/%s/token" % THING


class TokenListener:
    """A paho client with a thing's certificate, subscribed to bathroom-1's token topic.
    With `confirm`, it plays the firmware: reports the token's issue time in the shadow."""

    def __init__(self, iot: IotLocal, name: str, cert_dir, confirm: bool = False):
        self.device = Device(iot, name, cert_dir)
        self.confirm = confirm
        self.messages: list = []
        self.arrived = threading.Event()
        self.device.client.message_callback_add(TOPIC, self._on_token)
        self.device.subscribe(TOPIC)  # another thing's: mosquitto grants it, delivers nothing

    def _on_token(self, client, userdata, message) -> None:
        self.messages.append(message)
        if self.confirm:
            issued_at = json.loads(message.payload)["issued_at"]
            report = {"state": {"reported": {"status": {"token_issued_at": issued_at}}}}
            client.publish("$aws/things/%s/shadow/update" % THING, json.dumps(report), qos=1)
        self.arrived.set()

    def close(self) -> None:
        self.device.close()


@pytest.fixture
def iot():
    with IotLocal() as running:
        yield running


@needs_mosquitto
def test_the_token_reaches_only_its_thing_once_and_not_retained(iot, tmp_path):
    device = TokenListener(iot, THING, tmp_path / "a")
    other = TokenListener(iot, "kitchen-1", tmp_path / "b")
    try:
        sl.push_token(ShadowClient(THING, iot.endpoint_url).publish, THING, TOKEN)
        assert device.arrived.wait(WAIT_S)
        (message,) = device.messages
        assert json.loads(message.payload) == {"refresh_token": TOKEN.refresh_token,
                                               "issued_at": TOKEN.issued_at}
        assert message.qos == 1 and not message.retain
        assert not other.arrived.wait(0.5)
        assert iot.store.document(THING) is None  # the shadow never saw it
    finally:
        device.close()
        other.close()


@needs_mosquitto
def test_push_and_wait_for_the_device_to_confirm(iot, tmp_path):
    device = TokenListener(iot, THING, tmp_path, confirm=True)
    try:
        shadow = ShadowClient(THING, iot.endpoint_url)
        sl.push_token(shadow.publish, THING, TOKEN)
        sl.wait_for_device(shadow.get, THING, TOKEN.issued_at, WAIT_S, poll_s=0.1)
        assert len(device.messages) == 1
    finally:
        device.close()


def test_replace_is_sent_only_when_asked():
    assert json.loads(sl.token_message(TOKEN)) == {
        "refresh_token": TOKEN.refresh_token, "issued_at": TOKEN.issued_at}
    assert json.loads(sl.token_message(TOKEN, replace=True))["replace"] is True
