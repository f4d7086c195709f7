"""The device's shadow through the AWS IoT data-plane API (boto3 `iot-data`).

Real AWS by default (the account's ATS data endpoint is looked up); any endpoint
with `endpoint_url`, e.g. the local stand-in from `spotty iot-local`, whose token is
sent when spotty knows it (local_token.py).
"""

import json
import os

from ..common.errors import SpottyError
from . import local_token


def _boto3():
    import boto3

    return boto3


def _local_credentials(endpoint_url: str | None) -> dict:
    """The local stand-in checks no signature; boto3 still wants some credentials."""
    if not endpoint_url or os.environ.get("AWS_ACCESS_KEY_ID"):
        return {}
    session = _boto3().session.Session()
    if session.get_credentials() is not None:
        return {}
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def _region(region: str | None) -> str:
    return region or _boto3().session.Session().region_name or "us-east-1"


class NoShadow(SpottyError):
    """The thing has no shadow yet (the device has never reported)."""


class ShadowClient:
    def __init__(self, thing: str, endpoint_url: str | None = None, region: str | None = None):
        from botocore.config import Config

        self.thing = thing
        region = _region(region)
        named_url = endpoint_url  # a stand-in's token only for an endpoint the user names
        self.region = region
        if endpoint_url is None:
            endpoint_url = _ats_endpoint(region)
        self._client = _boto3().client(
            "iot-data", endpoint_url=endpoint_url, region_name=region,
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10),
            **_local_credentials(endpoint_url),
        )
        local_token.attach_known(self._client, named_url)

    def on_aws(self) -> bool:
        return self._client.meta.endpoint_url.rstrip("/").endswith(".amazonaws.com")

    def registered(self) -> bool | None:
        """Whether the thing is in the AWS IoT registry; None where there is no registry to
        ask (the local stand-in) or it cannot be asked."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.on_aws():
            return None
        try:
            self._registry().describe_thing(thingName=self.thing)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            return None
        except BotoCoreError:
            return None
        return True

    def thing_names(self) -> list[str]:
        """The first page of the registry's thing names (for a "did you mean")."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._registry().list_things(maxResults=250)
        except (BotoCoreError, ClientError):
            return []
        return [t["thingName"] for t in answer.get("things", [])]

    def _registry(self):
        return _boto3().client("iot", region_name=self.region)

    @classmethod
    def from_args(cls, args) -> "ShadowClient":
        """The shadow a subcommand names with --thing, --endpoint-url and --region."""
        return cls(args.thing, args.endpoint_url, args.region)

    def get(self) -> dict | None:
        """The shadow document, or None when the thing has no shadow yet."""
        try:
            answer = self._call("get_thing_shadow", thingName=self.thing)
        except NoShadow:
            return None
        return json.loads(answer["payload"].read())

    def set_desired(self, config: dict) -> int:
        """Merge `config` into desired.config; returns the new shadow version."""
        return self.update_desired({"config": config})

    def update_desired(self, sections: dict) -> int:
        """Merge whole sections into desired, e.g. {"ota": {...}} (None deletes one);
        returns the new shadow version."""
        payload = json.dumps({"state": {"desired": sections}}).encode()
        answer = self._call("update_thing_shadow", thingName=self.thing, payload=payload)
        return json.loads(answer["payload"].read()).get("version", 0)

    def _call(self, operation: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            message = e.response.get("Error", {}).get("Message", str(e))
            kind = NoShadow if code == "ResourceNotFoundException" else SpottyError
            raise kind("shadow of %s: %s (%s)" % (self.thing, message, code)) from e
        except BotoCoreError as e:
            raise SpottyError("cannot reach the AWS IoT endpoint: %s" % e) from e

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """One MQTT message through the data plane (iot-data Publish), not retained."""
        self._call("publish", topic=topic, qos=qos, payload=payload)


def _ats_endpoint(region: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = _boto3().client("iot", region_name=region).describe_endpoint(
            endpointType="iot:Data-ATS")
    except (BotoCoreError, ClientError) as e:
        raise SpottyError("cannot look up the AWS IoT endpoint: %s" % e) from e
    return "https://" + answer["endpointAddress"]
