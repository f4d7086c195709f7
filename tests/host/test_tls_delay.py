"""The AWS IoT stand-in with the ESP32's handshake cost: mosquitto terminates TLS itself, so
a front holds each new connection's first bytes; MQTT then flows through it untouched."""

import time

import pytest
from needs import needs_mosquitto
from test_shadow_service import Device

from host_tools.aws.iot_local import IotLocal

pytestmark = needs_mosquitto
DELAY_MS = 600


@pytest.fixture(scope="module")
def iot():
    with IotLocal(tls_delay_ms=DELAY_MS) as running:
        yield running


def test_each_device_connection_waits_the_delay_once_then_mqtt_flows(iot, tmp_path):
    assert iot.mqtt_port == iot.front.port != iot.broker.port
    opened = []
    for n in (1, 2):
        started = time.monotonic()
        device = Device(iot, "slow-%d" % n, tmp_path / str(n))
        opened.append(time.monotonic() - started)
        try:
            device.subscribe("%s/update/accepted" % device.prefix)
            started = time.monotonic()
            device.publish("%s/update" % device.prefix, {"state": {"reported": {"n": n}}})
            assert device.expect("update/accepted")["state"]["reported"] == {"n": n}
            assert time.monotonic() - started < DELAY_MS / 1000  # no delay once connected
        finally:
            device.close()
    assert all(seconds >= DELAY_MS / 1000 for seconds in opened), opened
    handshakes = iot.front.connections()
    assert len(handshakes) == 2
    for h in handshakes:
        assert h.released - h.opened >= DELAY_MS / 1000
        assert h.pending_at(h.opened + 0.1) and not h.pending_at(h.released + 0.01)

