"""Where the dashboard reads and writes: the things and their shadows, through boto3 (AWS
IoT, or the local stand-in with an endpoint URL)."""

import threading
import time

from ..aws import local_token
from ..aws.shadow_client import ShadowClient, _ats_endpoint, _boto3, _local_credentials, _region
from ..common.errors import SpottyError

LIST_TTL_S = 10.0  # the registry changes rarely; the shadows are read at every refresh


class ShadowSource:
    def __init__(self, endpoint_url: str | None = None, region: str | None = None,
                 things: list[str] | None = None, clock=time.monotonic):
        self.endpoint_url = endpoint_url
        self.region = _region(region)
        self._only = sorted(set(things)) if things else None
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, ShadowClient] = {}
        self._data_url: str | None = endpoint_url
        self._listed: tuple[float, list[str]] | None = None

    def things(self, fresh: bool = False) -> list[str]:
        """The things to show: those named with --thing, else the registry's (AWS IoT's
        ListThings; the stand-in's things with a shadow), listed again every LIST_TTL_S."""
        if self._only is not None:
            return list(self._only)
        with self._lock:
            if self._listed and not fresh and self._clock() - self._listed[0] < LIST_TTL_S:
                return list(self._listed[1])
        names = self._list_things()
        with self._lock:
            self._listed = (self._clock(), names)
        return list(names)

    def has(self, thing: str) -> bool:
        """Whether the thing is one to show; a new one is found without waiting for the list
        to expire."""
        return thing in self.things() or thing in self.things(fresh=True)

    def shadow(self, thing: str) -> dict | None:
        return self._client(thing).get()

    def set_desired(self, thing: str, config: dict) -> int:
        return self._client(thing).set_desired(config)

    def _client(self, thing: str) -> ShadowClient:
        with self._lock:
            client = self._clients.get(thing)
        if client is None:
            if self._data_url is None:
                self._data_url = _ats_endpoint(self.region)  # looked up once, not per thing
            client = ShadowClient(thing, self._data_url, self.region)
            with self._lock:
                self._clients[thing] = client
        return client

    def _list_things(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        control = _boto3().client("iot", endpoint_url=self.endpoint_url, region_name=self.region,
                                  **_local_credentials(self.endpoint_url))
        local_token.attach_known(control, self.endpoint_url)
        try:
            pages = control.get_paginator("list_things").paginate()
            return sorted(t["thingName"] for page in pages for t in page.get("things", []))
        except ClientError as e:
            raise SpottyError("cannot list the things (%s): %s; name them with --thing" % (
                e.response.get("Error", {}).get("Code", "?"), e)) from e
        except BotoCoreError as e:
            raise SpottyError("cannot reach AWS IoT to list the things: %s" % e) from e
