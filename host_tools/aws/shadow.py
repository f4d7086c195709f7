"""Classic and named AWS IoT device shadows, as the Device Shadow service keeps them.

Pure logic: every operation takes the request payload as the device would publish it
and returns the messages the service would publish, as (topic suffix, document) pairs,
e.g. ("update/accepted", {...}). The MQTT and HTTP bindings only move bytes.

Semantics follow the AWS IoT developer guide (device shadow documents, data flow,
error messages, diagnosing shadows):
- an update merges `state.desired` / `state.reported` into the shadow; nested objects
  merge, arrays are values, `null` deletes a key, a `null` section clears the section
  and `"state": null` clears both;
- every accepted update increments `version`; a request carrying `version` is applied
  only when it equals the current one (409 otherwise);
- `delta` holds the desired leaves that differ from reported;
- `/update/delta` is published when the request sets desired state and a delta
  remains; it carries the whole delta (not only this request's keys);
- the 8 KB limit counts the desired and reported state only, never metadata;
- a deleted shadow keeps its version for 48 hours: a new shadow of that name follows
  on from it, later ones start again.

The documents and the state algebra are in shadow_doc.py; here is the store.
"""

import copy
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common.errors import SpottyError
from .shadow_doc import (
    MAX_STATE_BYTES,
    PAYLOAD_TOO_LARGE,
    SECTIONS,
    VERSION_CONFLICT,
    Message,
    Shadow,
    ShadowError,
    accepted_metadata,
    check_common,
    check_update,
    compute_delta,
    error_document,
    merge,
    parse_request,
    project_metadata,
    shown_sections,
    snapshot,
    state_size,
    with_token,
)

TOMBSTONE_SECONDS = 48 * 3600


class ShadowStore:
    """All shadows of all things, by (thing name, shadow name); "" is the classic shadow.

    Thread-safe. With `path`, the shadows are loaded from that JSON file and saved to
    it atomically after every change, so a local service keeps them across restarts.
    """

    def __init__(self, clock: Callable[[], float] = time.time, path: Path | None = None):
        self._clock = clock
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        self._shadows: dict[tuple[str, str], Shadow] = {}
        if self._path and self._path.exists():
            try:
                self.restore(json.loads(self._path.read_text()))
            except (ValueError, KeyError, TypeError) as e:
                raise SpottyError("%s is not a shadow store: %s" % (self._path, e)) from e

    # -- the three operations -------------------------------------------------

    def update(self, thing: str, payload: Any, shadow_name: str = "") -> list[Message]:
        return self._run("update", self._update, thing, shadow_name, payload)

    def get(self, thing: str, payload: Any = None, shadow_name: str = "") -> list[Message]:
        return self._run("get", self._get, thing, shadow_name, payload)

    def delete(self, thing: str, payload: Any = None, shadow_name: str = "") -> list[Message]:
        return self._run("delete", self._delete, thing, shadow_name, payload)

    def document(self, thing: str, shadow_name: str = "") -> dict | None:
        """The shadow as a get would return it, or None; for tests and the CLI."""
        suffix, doc = self.get(thing, shadow_name=shadow_name)[0]
        return doc if suffix == "get/accepted" else None

    def things(self) -> list[str]:
        """The things that have a shadow, classic or named, by name: the stand-in's registry."""
        with self._lock:
            ts = int(self._clock())
            return sorted({key[0] for key in list(self._shadows) if self._live(key, ts)})

    # -- persistence ------------------------------------------------------------

    def dump(self) -> dict:
        with self._lock:
            return self._dump()

    def restore(self, data: dict) -> None:
        with self._lock:
            self._shadows = {
                (thing, name): Shadow.from_json(doc)
                for thing, named in data.get("things", {}).items()
                for name, doc in named.items()
            }

    def _dump(self) -> dict:
        things: dict[str, dict] = {}
        for (thing, name), shadow in sorted(self._shadows.items()):
            things.setdefault(thing, {})[name] = shadow.to_json()
        return {"things": things}

    def _save(self) -> None:
        if self._path:
            write_atomic(self._path, json.dumps(self._dump(), indent=1).encode())

    # -- internals ----------------------------------------------------------------

    def _run(
        self,
        op: str,
        handler: Callable[[tuple[str, str], dict, int], list[Message]],
        thing: str,
        shadow_name: str,
        payload: Any,
    ) -> list[Message]:
        with self._lock:
            ts = int(self._clock())
            request: dict = {}
            try:
                request = parse_request(payload)
                return handler((thing, shadow_name or ""), request, ts)
            except ShadowError as e:
                return [(op + "/rejected", error_document(e.code, e.message, ts, request))]

    def _live(self, key: tuple[str, str], ts: int) -> Shadow | None:
        shadow = self._shadows.get(key)
        if shadow is None or shadow.deleted_at is None:
            return shadow
        if ts - shadow.deleted_at > TOMBSTONE_SECONDS:
            del self._shadows[key]
        return None

    def _not_found(self, key: tuple[str, str]) -> ShadowError:
        return ShadowError(404, "No shadow exists with name: '%s'" % (key[1] or key[0]))

    def _get(self, key: tuple[str, str], request: dict, ts: int) -> list[Message]:
        check_common(request)
        shadow = self._live(key, ts)
        if shadow is None:
            raise self._not_found(key)
        state, metadata = shown_sections(shadow)
        delta = compute_delta(shadow.desired, shadow.reported)
        if delta:
            state["delta"] = delta
        doc = {"state": state, "metadata": metadata, "version": shadow.version, "timestamp": ts}
        return [("get/accepted", with_token(doc, request))]

    def _delete(self, key: tuple[str, str], request: dict, ts: int) -> list[Message]:
        check_common(request)
        shadow = self._live(key, ts)
        if shadow is None:
            raise self._not_found(key)
        self._shadows[key] = Shadow(version=shadow.version, deleted_at=ts)
        self._save()
        doc = {"version": shadow.version, "timestamp": ts}
        return [("delete/accepted", with_token(doc, request))]

    def _update(self, key: tuple[str, str], request: dict, ts: int) -> list[Message]:
        check_update(request)
        existing = self._live(key, ts)
        tombstone = self._shadows.get(key)
        current = existing or Shadow(version=tombstone.version if tombstone else 0)
        if "version" in request and request["version"] != current.version:
            raise ShadowError(409, VERSION_CONFLICT)
        updated = self._apply(current, request["state"], ts)
        if state_size(updated) > MAX_STATE_BYTES:
            raise ShadowError(413, PAYLOAD_TOO_LARGE)
        self._shadows[key] = updated
        self._save()
        return self._update_messages(existing, updated, request, ts)

    @staticmethod
    def _apply(current: Shadow, state: dict | None, ts: int) -> Shadow:
        updated = copy.deepcopy(current)
        updated.version = current.version + 1
        for name in SECTIONS:
            if state is None or (name in state and state[name] is None):
                updated.clear(name)
            elif name in state:
                merge(*updated.section(name), state[name], ts)
        return updated

    @staticmethod
    def _update_messages(
        previous: Shadow | None, updated: Shadow, request: dict, ts: int
    ) -> list[Message]:
        state = request["state"]
        accepted = {
            "state": copy.deepcopy(state),
            "metadata": accepted_metadata(state, ts),
            "version": updated.version,
            "timestamp": ts,
        }
        messages = [("update/accepted", with_token(accepted, request))]
        documents = {"current": snapshot(updated), "timestamp": ts}
        if previous is not None:
            documents = {"previous": snapshot(previous), **documents}
        messages.append(("update/documents", with_token(documents, request)))
        delta = compute_delta(updated.desired, updated.reported)
        if delta and isinstance((state or {}).get("desired"), dict):
            delta_doc = {
                "state": delta,
                "metadata": project_metadata(delta, updated.meta_desired),
                "version": updated.version,
                "timestamp": ts,
            }
            messages.insert(1, ("update/delta", with_token(delta_doc, request)))
        return messages


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
