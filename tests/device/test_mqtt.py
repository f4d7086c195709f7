"""device/net/mqtt.py under the real MicroPython against a real mosquitto with mutual TLS.

The device side runs tests/device/mqtt_rpc.py (one JSON command a line); a paho
client on the host, with the shadow service's or another thing's identity, is the peer.
"""

import json
import queue
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from needs import needs_mosquitto

from host_tools.aws import broker as broker_module
from host_tools.aws.broker import SERVICE_IDENTITY, Broker
from host_tools.common import pki
from host_tools.common.errors import SpottyError
from host_tools.sim.runtime import micropython_env, micropython_path

pytestmark = needs_mosquitto

HERE = Path(__file__).parent
THING = "dev1"
OTHER = "dev2"
DELTA = "$aws/things/%s/shadow/update/delta"
UPDATE = "$aws/things/%s/shadow/update"
TOKEN = "spotty/%s/token"


class Device:
    """net.mqtt in a MicroPython process, one RPC at a time."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.console = []
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(
            [micropython_path(), str(HERE / "mqtt_rpc.py")], env=micropython_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def init(self, port, identity: pki.Issued, ca_der: bytes, host="localhost", **options):
        stem = "client"
        identity.write(self.tmp_path, stem)
        (self.tmp_path / "ca.der").write_bytes(ca_der)
        return self.ok("init", host=host, port=port, client_id=options.pop("client_id", THING),
                       ca=str(self.tmp_path / "ca.der"), cert=str(self.tmp_path / (stem + ".der")),
                       key=str(self.tmp_path / (stem + ".key.der")), **options)

    def call(self, op, timeout=20, **args):
        self.proc.stdin.write(json.dumps(dict(args, op=op)) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    "no answer to %s:\n%s" % (op, "\n".join(self.console))) from None
            if line is None:
                raise AssertionError("micropython ended:\n" + "\n".join(self.console))
            if line.startswith("RPC "):
                return json.loads(line[4:])
            self.console.append(line)

    def ok(self, op, **args):
        reply = self.call(op, **args)
        assert "error" not in reply, (op, reply)
        return reply["ok"]

    def error(self, op, **args):
        reply = self.call(op, **args)
        assert "error" in reply, (op, reply)
        return reply

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Peer:
    """A paho client on the host with a certificate from the broker's CA."""

    def __init__(self, broker: Broker, name: str, tmp_path: Path):
        broker.issue_client(name).write(tmp_path, name)
        ctx = ssl.create_default_context(cafile=str(broker.dir / "ca.pem"))
        ctx.load_cert_chain(tmp_path / (name + ".pem"), tmp_path / (name + ".key.pem"))
        self.messages = queue.Queue()
        self._acks = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.tls_set_context(ctx)
        self.client.on_connect = lambda c, u, f, rc, p: self._acks.put(("connect", rc))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._acks.put(("subscribe", rcs))
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.qos))
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        kind, rc = self._acks.get(timeout=5)
        assert kind == "connect" and not rc.is_failure, rc

    def subscribe(self, topic, qos=1):
        self.client.subscribe(topic, qos)
        kind, codes = self._acks.get(timeout=5)
        assert kind == "subscribe" and not codes[0].is_failure, codes

    def publish(self, topic, payload, qos=1):
        self.client.publish(topic, payload, qos).wait_for_publish(timeout=5)

    def expect(self, timeout=5):
        return self.messages.get(timeout=timeout)

    def assert_nothing(self, within=0.3):
        time.sleep(within)
        assert self.messages.empty(), self.messages.get()

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker():
    with Broker() as running:
        yield running


@pytest.fixture
def own_broker():
    with Broker() as running:
        yield running


@pytest.fixture
def device(tmp_path):
    dev = Device(tmp_path)
    yield dev
    dev.stop()


@pytest.fixture
def peers(tmp_path):
    started = []

    def start(broker, name=SERVICE_IDENTITY):
        started.append(Peer(broker, name, tmp_path))
        return started[-1]

    yield start
    for peer in started:
        peer.stop()


def wait_for_log(broker, text, count, start=0, timeout=3.0):
    """The broker logs a little after it acts."""
    deadline = time.monotonic() + timeout
    while broker.log_text()[start:].count(text) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def connect_thing(device, broker, name=THING, **options):
    device.init(broker.port, broker.issue_client(name), broker.ca.cert_der, client_id=name,
                **options)
    assert device.ok("connect") is False  # clean session: nothing kept


def test_round_trips_both_ways_with_qos_0_and_1(broker, device, peers):
    service = peers(broker)
    service.subscribe(UPDATE % THING)
    device.init(broker.port, broker.issue_client(THING), broker.ca.cert_der)
    device.ok("connect")
    assert device.ok("subscribe", topic=DELTA % THING, qos=1) == 1
    assert device.ok("subscribe", topic="$aws/things/%s/shadow/get/accepted" % THING, qos=0) == 0

    device.ok("publish", topic=UPDATE % THING, payload='{"q": 0}', qos=0)
    device.ok("publish", topic=UPDATE % THING, payload='{"q": 1}', qos=1)
    assert service.expect() == (UPDATE % THING, b'{"q": 0}', 0)
    assert service.expect() == (UPDATE % THING, b'{"q": 1}', 1)

    service.publish(DELTA % THING, b'{"state": {"volume": 30}}', qos=1)
    service.publish("$aws/things/%s/shadow/get/accepted" % THING, b"{}", qos=0)
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, '{"state": {"volume": 30}}']
    assert device.ok("receive", timeout_ms=3000) == [
        "$aws/things/%s/shadow/get/accepted" % THING, "{}"]
    assert device.ok("receive", timeout_ms=100) is None


def test_all_topics_go_in_one_subscribe_packet_each_at_its_own_qos(broker, device, peers):
    log_start = len(broker.log_text())
    connect_thing(device, broker)
    topics = [[DELTA % THING, 0], [TOKEN % THING, 1]]
    assert device.ok("subscribe_all", topics=topics) == [0, 1]
    assert wait_for_log(broker, "Received SUBSCRIBE from %s" % THING, 1, log_start)
    log = broker.log_text()[log_start:]
    assert log.count("Received SUBSCRIBE from %s" % THING) == 1, log
    assert "%s (QoS 0)" % (DELTA % THING) in log and "%s (QoS 1)" % (TOKEN % THING) in log

    service = peers(broker)
    service.publish(DELTA % THING, b"delta", qos=1)  # delivered at the subscription's qos 0
    service.publish(TOKEN % THING, b"token", qos=1)
    assert device.ok("receive_all", window_ms=300) == [[DELTA % THING, "delta"],
                                                         [TOKEN % THING, "token"]]
    state = device.ok("status")
    assert state["subscribes"] == 1 and state["pubacks"] == 1, state  # PUBACK for qos 1 only

    # More than AWS IoT takes in one packet (8) goes out in as few packets as it takes.
    many = [["$aws/things/%s/t%d" % (THING, n), n % 2] for n in range(9)]
    assert device.ok("subscribe_all", topics=many) == [n % 2 for n in range(9)]
    assert device.ok("status")["subscribes"] == 3


def test_a_kept_session_holds_subscriptions_and_qos1_messages_while_the_device_is_away(
        own_broker, device, peers):
    device.init(own_broker.port, own_broker.issue_client(THING), own_broker.ca.cert_der)
    assert device.ok("connect", clean=False) is False  # a new session
    device.ok("subscribe_all", topics=[[DELTA % THING, 0], [TOKEN % THING, 1]])
    device.ok("disconnect")
    service = peers(own_broker)
    service.publish(DELTA % THING, b"missed", qos=1)  # qos 0 for the device: not kept
    service.publish(TOKEN % THING, b"kept", qos=1)
    assert device.ok("connect", clean=False) is True
    assert device.ok("receive_all", window_ms=300) == [[TOKEN % THING, "kept"]]
    service.publish(DELTA % THING, b"live", qos=1)  # no SUBSCRIBE since the first
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, "live"]
    assert device.ok("status")["subscribes"] == 1

    own_broker.restart()  # mosquitto keeps sessions in memory: a restart forgets them
    assert device.ok("connect", clean=False) is False


def test_one_task_publishes_while_another_receives(broker, device):
    connect_thing(device, broker, inbox_max=30)
    topic = "$aws/things/%s/loopback" % THING
    device.ok("subscribe", topic=topic, qos=1)
    got = device.ok("publish_while_receiving", topic=topic, count=20)
    assert got == [str(n) for n in range(20)]
    assert device.ok("status")["dropped"] == 0


def test_messages_that_arrive_while_waiting_for_an_ack_are_queued_up_to_a_bound(
        broker, device, peers):
    connect_thing(device, broker, inbox_max=2)
    device.ok("subscribe", topic=DELTA % THING, qos=1)
    service = peers(broker)
    for n in range(3):
        service.publish(DELTA % THING, b"%d" % n)
    time.sleep(0.2)  # all three wait in the socket; the PUBACK below comes after them
    device.ok("publish", topic=UPDATE % THING, payload="{}", qos=1)
    assert device.ok("receive_all", window_ms=200) == [[DELTA % THING, "1"], [DELTA % THING, "2"]]
    assert device.ok("status")["dropped"] == 1


def test_a_thing_can_use_only_its_own_topics(broker, device, peers):
    service = peers(broker)
    service.subscribe(UPDATE % "+")
    other = peers(broker, OTHER)
    other.subscribe("$aws/things/%s/#" % THING)  # denied silently: dev2 may not read dev1's
    connect_thing(device, broker)
    reply = device.call("subscribe", topic=DELTA % OTHER, qos=1)
    assert reply.get("ok") in (0, 1) or reply.get("error") == "refused", reply
    device.ok("subscribe", topic=DELTA % THING, qos=1)

    # Mosquitto denies without a word: the denied message would arrive before the allowed one.
    service.publish(DELTA % OTHER, b"for dev2")
    service.publish(DELTA % THING, b"for dev1")
    assert device.ok("receive_all", window_ms=300) == [[DELTA % THING, "for dev1"]]

    device.ok("publish", topic=UPDATE % OTHER, payload="forged", qos=1)
    device.ok("publish", topic=UPDATE % THING, payload="mine", qos=1)
    assert service.expect() == (UPDATE % THING, b"mine", 1)
    other.publish(UPDATE % THING, b"forged by dev2")
    service.assert_nothing()
    other.assert_nothing(0)


def test_certificates_from_another_ca_are_refused(broker, device):
    stranger_ca = pki.CertificateAuthority.create("Someone else's CA")
    device.init(broker.port, stranger_ca.issue_client(THING), broker.ca.cert_der,
                timeout_ms=3000)
    reply = device.error("connect")
    assert reply["error"] in ("tls", "closed") and reply["ms"] < 2500, reply

    # And the device refuses a broker its CA list does not vouch for.
    device.init(broker.port, broker.issue_client(THING), stranger_ca.cert_der, timeout_ms=3000)
    reply = device.error("connect")
    assert reply["error"] == "tls" and reply["ms"] < 2500, reply


def test_an_oversized_message_is_skipped_and_the_next_one_arrives(broker, device, peers):
    service = peers(broker)
    connect_thing(device, broker, max_message=1024)
    device.ok("subscribe", topic=DELTA % THING, qos=1)
    log_start = len(broker.log_text())
    service.publish(DELTA % THING, b"x" * 50000, qos=1)  # several TLS records
    service.publish(DELTA % THING, b"y" * 1024, qos=1)
    service.publish(DELTA % THING, b"z" * 1025, qos=0)
    service.publish(DELTA % THING, b"small", qos=0)
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, "y" * 1024]
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, "small"]
    state = device.ok("status")
    assert state["skipped"] == 2 and state["connected"], state
    # The skipped QoS 1 message was acknowledged too, or it would come again.
    assert wait_for_log(broker, "Received PUBACK from %s (Mid: 1," % THING, 1, log_start)
    device.ok("disconnect")
    assert device.ok("status")["connected"] is False
    assert wait_for_log(broker, "Received DISCONNECT from %s" % THING, 1, log_start)


def test_pings_keep_an_idle_link_alive_past_the_keepalive(broker, device, peers):
    log_start = len(broker.log_text())
    connect_thing(device, broker, keepalive_s=1)
    device.ok("subscribe", topic=DELTA % THING, qos=1)
    assert device.ok("receive", timeout_ms=3500) is None  # the broker cuts at 1.5 keepalives
    state = device.ok("status")
    assert state["connected"] and state["pings"] >= 3, state
    peers(broker).publish(DELTA % THING, b"still there")
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, "still there"]
    log = broker.log_text()[log_start:]
    assert "Received PINGREQ from %s" % THING in log
    assert "exceeded timeout" not in log


def test_a_stopped_broker_is_noticed_at_once_and_a_restarted_one_reconnects(
        own_broker, device, peers):
    connect_thing(device, own_broker, keepalive_s=30, timeout_ms=2000)
    device.ok("subscribe", topic=DELTA % THING, qos=1)
    own_broker.stop()
    reply = device.error("receive", timeout_ms=10000)
    assert reply["error"] == "closed" and reply["ms"] < 1000, reply
    assert device.ok("status")["connected"] is False
    reply = device.error("connect")
    assert reply["error"] == "closed" and reply["ms"] < 1000, reply

    own_broker.start()  # same port, same certificates
    assert device.ok("connect") is False
    device.ok("subscribe", topic=DELTA % THING, qos=1)
    peers(own_broker).publish(DELTA % THING, b"back")
    assert device.ok("receive", timeout_ms=3000) == [DELTA % THING, "back"]


def test_a_hung_broker_is_declared_dead_by_the_missing_pingresp(own_broker, device):
    connect_thing(device, own_broker, keepalive_s=1, timeout_ms=800)
    own_broker.freeze()
    try:
        reply = device.error("receive", timeout_ms=10000)
        # A ping is due after half a keepalive of silence, its answer within timeout_ms.
        assert reply["error"] == "timeout" and reply["detail"] == "no PINGRESP", reply
        assert reply["ms"] < 2500, reply
        reply = device.error("connect")  # the kernel accepts; the handshake never ends
        assert reply["error"] == "timeout" and reply["ms"] < 2000, reply
    finally:
        own_broker.thaw()
    assert device.ok("connect") is False


class FakeServer:
    """A TLS (or plain TCP) server that answers the first bytes it gets with `script`."""

    def __init__(self, broker, script, tls=True):
        self.script = script
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server = broker.ca.issue_server()
            server.write(broker.dir, "fake")
            self.ctx.load_cert_chain(broker.dir / "fake.pem", broker.dir / "fake.key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.listener.settimeout(10)
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True) if self.ctx else raw
            conn.settimeout(10)
            if self.ctx:
                conn.recv(1024)  # the CONNECT
            if self.script is not None:
                conn.sendall(self.script)
            if self.script != b"":  # b"": hang up at once
                self.done.wait(10)
            conn.close()
        except OSError:
            pass

    def close(self):
        self.done.set()
        self.listener.close()


CONNACK_OK = b"\x20\x02\x00\x00"


@pytest.mark.parametrize("script, tls, step, kind", [
    (b"\x16\x03\x03\x00\x02garbage" * 8, False, "connect", "tls"),  # not TLS at all
    (None, True, "connect", "timeout"),  # handshake done, no CONNACK
    (b"\x30\x00", True, "connect", "protocol"),  # not a CONNACK
    (b"\x20\x03\x00\x00\x00", True, "connect", "protocol"),  # malformed CONNACK
    (b"\x20\x02\x00\x05", True, "connect", "refused"),  # not authorized
    (b"", True, "connect", "closed"),  # hangs up
    (CONNACK_OK + b"\x30\xff\xff\xff\xff\x01", True, "receive", "protocol"),  # length > 4 bytes
    (CONNACK_OK + b"\x30\x04\x00\x10ab", True, "receive", "protocol"),  # topic past the end
    (CONNACK_OK + b"\x30\x10\x00\x03abc", True, "receive", "timeout"),  # cut short
    (CONNACK_OK + b"\x36\x05\x00\x01a\x00\x01", True, "receive", "protocol"),  # qos 3
    (CONNACK_OK + b"\xf0\x00", True, "receive", "protocol"),  # reserved packet type
    # An unasked SUBACK is ignored, but a server never sends DISCONNECT in MQTT 3.1.1.
    (CONNACK_OK + b"\x90\x03\x00\x07\x00\xe0\x00", True, "receive", "protocol"),
])
def test_garbage_from_a_fake_server_fails_cleanly_within_the_timeout(
        broker, device, script, tls, step, kind):
    server = FakeServer(broker, script, tls)
    try:
        device.init(server.port, broker.issue_client(THING), broker.ca.cert_der,
                    timeout_ms=600, keepalive_s=60)
        if step == "receive":
            device.ok("connect")
        reply = device.error(step, **({"timeout_ms": 3000} if step == "receive" else {}))
        assert reply["error"] == kind and reply["ms"] < 1500, reply
        if kind == "refused":
            assert reply["code"] == 5 and reply["detail"] == "not authorized", reply
        assert device.ok("status")["connected"] is False
    finally:
        server.close()



def test_a_missing_mosquitto_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(broker_module.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(SpottyError, match="apt-get install mosquitto"):
        broker_module.mosquitto_path()
