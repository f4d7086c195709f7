"""The local AWS IoT stand-in is no looser than AWS: a thing cannot take another thing's
place with its client id, no thing gets the shadow service's rights by its name, and the
data-plane HTTP API wants the stand-in's token. Real mosquitto, real HTTP."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError
from needs import needs_mosquitto
from test_shadow_service import QUIET_S, RESPONSES, Device, data_client

from host_tools.aws.broker import SERVICE_IDENTITY, identity_for
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.common.devicepath import REPO
from host_tools.common.errors import RefusedError

pytestmark = needs_mosquitto


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as running:
        yield running


@pytest.fixture
def opened():
    devices = []
    yield devices
    for device in devices:
        device.close()


def test_a_thing_sending_another_things_client_id_cannot_take_its_place(iot, tmp_path, opened):
    victim = Device(iot, "strict-a", tmp_path / "a", persistent=True)
    opened.append(victim)
    victim.subscribe(*(f"{victim.prefix}/{t}" for t in RESPONSES))
    log_start = len(iot.broker.log_text())

    intruder = Device(iot, "strict-b", tmp_path / "b", client_id="strict-a", persistent=True)
    opened.append(intruder)
    intruder.subscribe("$aws/things/strict-a/shadow/#")
    time.sleep(QUIET_S)

    # The broker took the intruder's client id from its certificate, not from its CONNECT.
    log = iot.broker.log_text()[log_start:]
    assert "as strict-b (p2, c0, k60, u'strict-b')" in log, log
    assert "already connected" not in log, log
    # The victim kept its connection, its session and its shadow; the intruder sees none of it.
    assert victim.disconnects == [] and victim.client.is_connected()
    data_client(iot).update_thing_shadow(
        thingName="strict-a", payload=json.dumps({"state": {"desired": {"volume": 5}}}))
    assert victim.expect("update/delta")["state"] == {"volume": 5}
    time.sleep(QUIET_S)
    assert intruder.received() == []


def test_no_thing_may_be_named_like_the_stand_ins_own_service(iot, tmp_path):
    with pytest.raises(RefusedError) as refused:
        iot.issue_thing(SERVICE_IDENTITY, tmp_path)
    assert str(refused.value) == (
        "thing name 'iot-local.shadow-service' is the local stand-in's own shadow service: "
        "a thing named so would have its rights to every thing")
    assert list(tmp_path.iterdir()) == []


def test_a_thing_named_as_the_service_once_was_gets_only_its_own_topics(iot, tmp_path, opened):
    owner = Device(iot, "strict-c", tmp_path / "c")
    impostor = Device(iot, "shadow-service", tmp_path / "s")
    opened.extend([owner, impostor])
    owner.subscribe(f"{owner.prefix}/update/delta", "spotty/strict-c/token")
    impostor.subscribe("$aws/things/+/shadow/#", "spotty/+/token")
    impostor.publish("$aws/things/strict-c/shadow/update",
                     {"state": {"desired": {"volume": 99}}})
    impostor.publish("spotty/strict-c/token", {"refresh_token": "evil", "issued_at": 1})

    client = ShadowClient("strict-c", iot.endpoint_url)
    client.update_desired({"config": {"volume": 7}})
    client.publish("spotty/strict-c/token", b'{"refresh_token": "good", "issued_at": 2}')
    assert owner.expect("update/delta")["state"] == {"config": {"volume": 7}}
    time.sleep(QUIET_S)
    assert client.get()["state"]["desired"] == {"config": {"volume": 7}}
    assert [json.loads(p)["refresh_token"] for t, p in owner.received()
            if t == "spotty/strict-c/token"] == ["good"]
    assert impostor.received() == []


def test_things_named_longer_than_a_certificate_cn_each_get_their_own_topics(
        iot, tmp_path, opened):
    """AWS takes thing names of 128 characters; a CN holds 64. Two such names alike in
    their first 64 characters get distinct certificate identities, each attached to its
    own thing only."""
    base = "strict:" + "long_" * 12
    one, two = [(base + name * 20)[:128] for name in ("-one", "-two")]
    assert identity_for(one) != identity_for(two) and len(identity_for(one)) == 64
    owner, sibling = Device(iot, one, tmp_path / "one"), Device(iot, two, tmp_path / "two")
    opened.extend([owner, sibling])
    owner.subscribe(f"{owner.prefix}/update/delta", f"spotty/{one}/token")
    sibling.subscribe("$aws/things/+/shadow/#", "spotty/+/token")
    sibling.publish(f"$aws/things/{one}/shadow/update", {"state": {"desired": {"volume": 99}}})

    client = ShadowClient(one, iot.endpoint_url)
    client.update_desired({"config": {"volume": 7}})
    client.publish(f"spotty/{one}/token", b'{"refresh_token": "good", "issued_at": 2}')
    assert owner.expect("update/delta")["state"] == {"config": {"volume": 7}}
    time.sleep(QUIET_S)
    assert client.get()["state"]["desired"] == {"config": {"volume": 7}}
    assert sibling.received() == []
    log = iot.broker.log_text()
    assert "u'%s'" % identity_for(one) in log and "u'%s'" % identity_for(two) in log
    # The identity is no thing's name, so no thing gets those topics by its name.
    with pytest.raises(RefusedError):
        iot.issue_thing(identity_for(one), tmp_path / "derived")


def test_attaching_a_certificate_takes_only_an_identity_and_a_thing_name(iot):
    for identity, thing in (("x\ntopic readwrite #", "strict-e"), ("strict-e", "a/b"),
                            ("", "strict-e"), ("x" * 65, "strict-e")):
        with pytest.raises(ValueError):
            iot.broker.attach(identity, thing)
    assert "topic readwrite #\n" not in (iot.broker.dir / "acl").read_text()
    request = urllib.request.Request(
        iot.endpoint_url + "/things/strict-e/principals", method="PUT",
        headers={"X-Spotty-Local-Token": iot.http_token, "x-amzn-principal": "a b"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400


def raw_request(iot, method, path, body=None, token=None):
    """(status, JSON answer) of a plain HTTP request, as any local program could send."""
    request = urllib.request.Request(iot.endpoint_url + path, data=body, method=method)
    if token is not None:
        request.add_header("X-Spotty-Local-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


UNAUTHORIZED = ("missing or wrong X-Spotty-Local-Token header: the local stand-in's token is "
                "the file http-token in its state dir (spotty sends it itself)")


def test_the_data_plane_wants_the_stand_ins_token(iot, tmp_path, opened):
    owner = Device(iot, "strict-d", tmp_path / "d")
    opened.append(owner)
    owner.subscribe("spotty/strict-d/token", f"{owner.prefix}/update/delta")
    ShadowClient("strict-d", iot.endpoint_url).update_desired({"config": {"volume": 1}})
    assert owner.expect("update/delta")["state"] == {"config": {"volume": 1}}

    update = json.dumps({"state": {"desired": {"config": {"volume": 100}}}}).encode()
    for token in (None, "", "wrong-" + iot.http_token):
        for method, path, body in (
                ("GET", "/things/strict-d/shadow", None),
                ("POST", "/things/strict-d/shadow", update),
                ("DELETE", "/things/strict-d/shadow", None),
                ("POST", "/topics/spotty/strict-d/token?qos=1", b'{"refresh_token": "x"}'),
                ("GET", "/no/such/path", None)):
            status, answer = raw_request(iot, method, path, body, token)
            assert (status, answer["message"]) == (401, UNAUTHORIZED), (method, path, token)
    with pytest.raises(ClientError) as raised:
        data_client(iot, token="not-the-token").get_thing_shadow(thingName="strict-d")
    assert raised.value.response["Error"]["Code"] == "UnauthorizedException"

    time.sleep(QUIET_S)
    assert owner.received() == []  # nothing reached the device
    status, answer = raw_request(iot, "GET", "/things/strict-d/shadow", token=iot.http_token)
    assert status == 200 and answer["state"]["desired"] == {"config": {"volume": 1}}


def test_spotty_iot_local_keeps_its_token_private_and_spotty_finds_it(tmp_path):
    home, state = tmp_path / "home", tmp_path / "state"
    env = dict(os.environ, HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "iot-local", "--state-dir", str(state),
         "--mqtt-port", "0", "--http-port", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        token_file = state / "http-token"
        assert info["token_file"] == str(token_file)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        port = int(info["endpoint_url"].rsplit(":", 1)[1])
        record = home / ".config" / "spotty" / "iot-local" / ("127.0.0.1_%d.token" % port)
        assert record.read_text() == token_file.read_text()
        assert stat.S_IMODE(record.stat().st_mode) == 0o600

        def config_get(home_dir):
            return subprocess.run(
                [sys.executable, "-m", "host_tools.cli", "config", "get", "--thing", "t1",
                 "--endpoint-url", info["endpoint_url"]],
                cwd=REPO, env=dict(env, HOME=str(home_dir)), capture_output=True, text=True,
                timeout=60)

        mine = config_get(home)
        assert mine.returncode == 0, mine.stderr
        stranger = config_get(tmp_path / "another-user")
        assert stranger.returncode == 1
        assert stranger.stderr == "spotty: shadow of t1: %s (UnauthorizedException)\n" % (
            UNAUTHORIZED)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not record.exists()  # withdrawn at exit; the token stays with the state
    assert token_file.exists()
