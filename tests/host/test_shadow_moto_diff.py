"""The same request sequences through boto3 against our HTTP API and against moto.

Compared: status codes, versions, and the desired/reported/delta state. Not compared:
timestamps and metadata (moto stamps every leaf with the latest update time), error
messages (moto's are its own), clientToken (moto does not echo it).

Where moto departs from the AWS documentation we keep AWS's behaviour; those sequences
are strict xfails that say why, so a moto fix shows up as an XPASS.
"""

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from host_tools.aws import local_token
from host_tools.aws.shadow import ShadowStore
from host_tools.aws.shadow_http import HttpApi
from host_tools.aws.shadow_service import ShadowService

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}


def up(state, **extra):
    return ("update", {"state": state, **extra})


GET = ("get", None)
DELETE = ("delete", None)

SEQUENCES = {
    "desired then reported converge": [
        GET,
        up({"desired": {"config": {"timeout_s": 300, "tz": "UTC0"}}}),
        GET,
        up({"reported": {"config": {"timeout_s": 300}}}),
        GET,
        up({"reported": {"config": {"tz": "UTC0"}, "status": {"state": "idle"}}}),
        GET,
    ],
    "nested merge": [
        up({"desired": {"a": {"b": {"c": 1}}}}),
        up({"desired": {"a": {"b": {"d": 2}}}}),
        up({"desired": {"a": {"e": 3}}}),
        up({"reported": {"a": {"b": {"c": 1, "d": 5}, "e": 3}}}),
        GET,
    ],
    "null deletes keys": [
        up({"desired": {"x": 1, "y": 2}}),
        up({"desired": {"x": None}}),
        GET,
        up({"reported": {"y": 2, "z": 3}}),
        up({"reported": {"z": None}}),
        GET,
    ],
    "arrays replace": [
        up({"desired": {"l": [1, 2, 3]}}),
        up({"desired": {"l": [4]}}),
        GET,
        up({"reported": {"l": [4]}}),
        GET,
    ],
    "type changes": [
        up({"desired": {"a": 1}}),
        up({"desired": {"a": {"b": 2}}}),
        up({"reported": {"a": {"b": 2}}}),
        GET,
        up({"desired": {"a": "s"}}),
        GET,
    ],
    "versions": [
        up({"reported": {"a": 1}}),
        up({"reported": {"a": 2}}, version=1),
        up({"reported": {"a": 3}}, version=1),
        up({"reported": {"a": 3}}, version=7),
        GET,
    ],
    "malformed requests change nothing": [
        up({"reported": {"a": 1}}),
        ("update", b'{"state": '),
        ("update", {"desired": {"a": 2}}),
        ("update", {"state": [1]}),
        ("update", {"state": {"delta": {"a": 3}}}),
        GET,
    ],
    "absent shadow": [GET, DELETE, ("update", b"{}"), GET],
    "delete": [up({"reported": {"a": 1}}), DELETE, GET],
    "null state clears everything": [
        up({"desired": {"a": 1}, "reported": {"b": 2}}),
        up(None),
        GET,
        up({"reported": {"c": 3}}),
        GET,
    ],
    "empty state still bumps the version": [up({"reported": {"a": 1}}), up({}), GET],
    "clientToken is accepted": [
        up({"desired": {"a": 1}}, clientToken="tok-1"),
        GET,
    ],
}

MOTO_DEVIATIONS = {
    "a null section clears it (moto ignores `desired: null`)": [
        up({"desired": {"a": 1}, "reported": {"b": 2}}),
        up({"desired": None}),
        GET,
    ],
    "desired subset of reported has no delta (moto reports `{'a': {}}`)": [
        up({"reported": {"a": {"x": 1, "y": 2}}}),
        up({"desired": {"a": {"x": 1}}}),
        GET,
    ],
    "accepted echoes nulls in a new object (moto strips them from its echo)": [
        up({"desired": {"config": {"volume": None, "tz": "UTC0"}}}),
    ],
    "true is not 1 (moto compares with Python ==)": [
        up({"desired": {"b": True}, "reported": {"b": 1}}),
        GET,
    ],
    "delete keeps the version, a new shadow follows it (moto bumps on delete)": [
        up({"reported": {"a": 1}}),
        DELETE,
        up({"reported": {"a": 2}}),
        GET,
    ],
    "deleting a deleted shadow is 404 (moto accepts it)": [
        up({"reported": {"a": 1}}),
        DELETE,
        DELETE,
    ],
    "desired must be an object (moto raises TypeError)": [
        up({"desired": 5}),
    ],
    "the 8 KB state limit (moto has none)": [
        up({"reported": {"a": "x" * 9000}}),
    ],
}


def observe(client, thing: str, steps) -> list:
    """What a caller can see of each step: status, version and state."""
    seen = []
    for op, body in steps:
        try:
            if op == "update":
                payload = body if isinstance(body, bytes) else json.dumps(body)
                answer = client.update_thing_shadow(thingName=thing, payload=payload)
            elif op == "get":
                answer = client.get_thing_shadow(thingName=thing)
            else:
                answer = client.delete_thing_shadow(thingName=thing)
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            seen.append((op, status, e.response["Error"]["Code"]))
            continue
        doc = json.loads(answer["payload"].read())
        if op == "delete":
            # moto answers with the next version; the deviation cases cover it.
            seen.append((op, 200))
        else:
            seen.append((op, 200, doc["version"], doc.get("state")))
    return seen


@pytest.fixture(scope="module")
def ours():
    api = HttpApi(ShadowService(ShadowStore()), token="diff-test-token")
    api.start()
    client = boto3.client("iot-data", endpoint_url=api.url, region_name=REGION, **CREDENTIALS)
    local_token.attach(client, api.token)
    yield client
    api.stop()


def run_on_moto(steps) -> list:
    with mock_aws():
        boto3.client("iot", region_name=REGION, **CREDENTIALS).create_thing(thingName="bath-1")
        client = boto3.client("iot-data", region_name=REGION, **CREDENTIALS)
        return observe(client, "bath-1", steps)


def compare(ours, steps) -> None:
    # A fresh thing per sequence: the module's one server keeps every shadow.
    expected = run_on_moto(steps)
    got = observe(ours, "bath-" + uuid.uuid4().hex[:8], steps)
    assert got == expected


@pytest.mark.parametrize("steps", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_same_as_moto(ours, steps):
    compare(ours, steps)


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(steps, marks=pytest.mark.xfail(strict=True, reason=why))
        for why, steps in MOTO_DEVIATIONS.items()
    ],
    ids=[why.split(" (")[0] for why in MOTO_DEVIATIONS],
)
def test_known_moto_deviation(ours, steps):
    compare(ours, steps)


def big(n: int) -> str:
    return json.dumps({"state": {"reported": {"a": "x" * n}}})


ERRORS = [
    ("get_thing_shadow", {"thingName": "bath-none"}, "ResourceNotFoundException"),
    ("delete_thing_shadow", {"thingName": "bath-none"}, "ResourceNotFoundException"),
    ("get_thing_shadow", {"thingName": "bath-x", "shadowName": "no"}, "ResourceNotFoundException"),
    ("update_thing_shadow", {"thingName": "bath-x", "payload": b"{"}, "InvalidRequestException"),
    ("update_thing_shadow", {"thingName": "bath-x", "payload": b'{"state": {}, "version": 9}'},
     "ConflictException"),
    ("update_thing_shadow", {"thingName": "bath-x", "payload": big(9000)},
     "RequestEntityTooLargeException"),
    ("update_thing_shadow", {"thingName": "bath-x", "payload": big(200_000)},
     "RequestEntityTooLargeException"),
]


@pytest.mark.parametrize("operation, arguments, code", ERRORS)
def test_boto3_sees_aws_error_codes(ours, operation, arguments, code):
    with pytest.raises(ClientError) as raised:
        getattr(ours, operation)(**arguments)
    assert raised.value.response["Error"]["Code"] == code


def test_named_shadows_over_http(ours):
    payload = json.dumps({"state": {"reported": {"sessions": 2}}})
    ours.update_thing_shadow(thingName="bath-n", shadowName="stats", payload=payload)
    answer = ours.get_thing_shadow(thingName="bath-n", shadowName="stats")
    assert json.loads(answer["payload"].read())["state"] == {"reported": {"sessions": 2}}
    with pytest.raises(ClientError):
        ours.get_thing_shadow(thingName="bath-n")
