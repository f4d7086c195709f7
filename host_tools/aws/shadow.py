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
"""

import copy
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common.errors import SpottyError

Message = tuple[str, dict]

MAX_STATE_BYTES = 8 * 1024
MAX_REQUEST_BYTES = 128 * 1024  # AWS IoT's MQTT payload limit: nothing larger is read
MAX_DEPTH = 6
MAX_CLIENT_TOKEN_BYTES = 64
TOMBSTONE_SECONDS = 48 * 3600
SECTIONS = ("desired", "reported")

INVALID_JSON = "Invalid JSON"
VERSION_CONFLICT = "Version conflict"
PAYLOAD_TOO_LARGE = "The payload exceeds the maximum size allowed"
# sic: AWS's own wording
BAD_ENCODING = "Unsupported documented encoding; supported encoding is UTF-8"


class ShadowError(Exception):
    """A request the service rejects; `code` is the HTTP-style status AWS uses."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Shadow:
    desired: dict = field(default_factory=dict)
    reported: dict = field(default_factory=dict)
    meta_desired: dict = field(default_factory=dict)
    meta_reported: dict = field(default_factory=dict)
    version: int = 0
    deleted_at: float | None = None  # a tombstone keeps the version of a deleted shadow

    def section(self, name: str) -> tuple[dict, dict]:
        if name == "desired":
            return self.desired, self.meta_desired
        return self.reported, self.meta_reported

    def clear(self, name: str) -> None:
        if name == "desired":
            self.desired, self.meta_desired = {}, {}
        else:
            self.reported, self.meta_reported = {}, {}

    def to_json(self) -> dict:
        return {
            "desired": self.desired,
            "reported": self.reported,
            "meta_desired": self.meta_desired,
            "meta_reported": self.meta_reported,
            "version": self.version,
            "deleted_at": self.deleted_at,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Shadow":
        return cls(**{k: data[k] for k in cls().to_json()})


# ---------------------------------------------------------------------------
# JSON helpers


def _reject_constant(name: str) -> Any:
    raise ValueError("not JSON: %s" % name)


def parse_request(payload: bytes | str | dict | None) -> dict:
    """The request document; an empty payload is an empty request (get, delete)."""
    if isinstance(payload, dict):
        return payload
    if payload is None or len(payload) == 0:
        return {}
    if len(payload) > MAX_REQUEST_BYTES:
        raise ShadowError(413, PAYLOAD_TOO_LARGE)
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ShadowError(415, BAD_ENCODING) from None
    try:
        # NaN and Infinity are Python's extensions, not JSON.
        doc = json.loads(payload, parse_constant=_reject_constant)
    except ValueError:
        raise ShadowError(400, INVALID_JSON) from None
    if not isinstance(doc, dict):
        raise ShadowError(400, INVALID_JSON)
    return doc


def compact_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def depth(value: Any) -> int:
    """Levels of objects and arrays: {"a": 1} is 1, {"a": {"b": 1}} is 2."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------
# State algebra


def leaf_metadata(value: Any, ts: int) -> Any:
    """Metadata mirrors the value: objects and arrays recurse, every leaf gets a timestamp."""
    if isinstance(value, dict):
        return {k: leaf_metadata(v, ts) for k, v in value.items()}
    if isinstance(value, list):
        return [leaf_metadata(v, ts) for v in value]
    return {"timestamp": ts}


def merge(state: dict, meta: dict, patch: dict, ts: int) -> None:
    """Merge `patch` into `state` in place, keeping `meta` in step."""
    for key, value in patch.items():
        if value is None:
            state.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(state.get(key), dict):
                state[key], meta[key] = {}, {}
            merge(state[key], meta[key], value, ts)
        else:
            state[key] = copy.deepcopy(value)
            meta[key] = leaf_metadata(value, ts)


def compute_delta(desired: dict, reported: dict) -> dict:
    """Desired keys whose values differ from reported; objects compare key by key."""
    delta = {}
    for key, want in desired.items():
        if key not in reported:
            delta[key] = copy.deepcopy(want)
        elif isinstance(want, dict) and isinstance(reported[key], dict):
            sub = compute_delta(want, reported[key])
            if sub:
                delta[key] = sub
        elif not same(want, reported[key]):
            delta[key] = copy.deepcopy(want)
    return delta


def project_metadata(delta: dict, meta: dict) -> dict:
    """The metadata of the keys in `delta` (a sub-tree of desired)."""
    return {
        k: project_metadata(v, meta[k]) if isinstance(v, dict) else copy.deepcopy(meta[k])
        for k, v in delta.items()
    }


def state_size(shadow: Shadow) -> int:
    """What counts toward the 8 KB limit: desired and reported state, no metadata."""
    return compact_size({name: s for name in SECTIONS if (s := shadow.section(name)[0])})


# ---------------------------------------------------------------------------
# Request validation


def valid_token(token: Any) -> bool:
    return isinstance(token, str) and len(token.encode("utf-8")) <= MAX_CLIENT_TOKEN_BYTES


def check_common(request: dict) -> None:
    if request.get("clientToken") is not None and not valid_token(request["clientToken"]):
        raise ShadowError(400, "Invalid clientToken")


def check_update(request: dict) -> None:
    check_common(request)
    if "state" not in request:
        raise ShadowError(400, "Missing required node: state")
    state = request["state"]
    if state is not None and not isinstance(state, dict):
        raise ShadowError(400, "State node must be an object")
    for name, section in (state or {}).items():
        if name not in SECTIONS:
            raise ShadowError(400, "State contains an invalid node: '%s'" % name)
        if section is not None and not isinstance(section, dict):
            raise ShadowError(400, "%s node must be an object" % name.capitalize())
        if section is not None and depth(section) > MAX_DEPTH:
            raise ShadowError(
                400, "JSON contains too many levels of nesting; maximum is %d" % MAX_DEPTH
            )
    version = request.get("version")
    if "version" in request and (type(version) is not int or version < 0):
        raise ShadowError(400, "Invalid version")


# ---------------------------------------------------------------------------
# Documents


def _sections(shadow: Shadow) -> tuple[dict, dict]:
    """State and metadata with empty sections left out, as AWS shows them."""
    state, metadata = {}, {}
    for name in SECTIONS:
        values, meta = shadow.section(name)
        if values:
            state[name] = copy.deepcopy(values)
            metadata[name] = copy.deepcopy(meta)
    return state, metadata


def snapshot(shadow: Shadow) -> dict:
    """The previous/current halves of an /update/documents message."""
    state, metadata = _sections(shadow)
    return {"state": state, "metadata": metadata, "version": shadow.version}


def _with_token(doc: dict, request: dict) -> dict:
    if valid_token(request.get("clientToken")):
        doc["clientToken"] = request["clientToken"]
    return doc


def error_document(code: int, message: str, ts: int, request: dict | None = None) -> dict:
    return _with_token({"code": code, "message": message, "timestamp": ts}, request or {})


def _accepted_metadata(state: dict | None, ts: int) -> dict:
    if state is None:
        return {"timestamp": ts}
    return {name: leaf_metadata(section, ts) for name, section in state.items()}


# ---------------------------------------------------------------------------
# The store


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
        state, metadata = _sections(shadow)
        delta = compute_delta(shadow.desired, shadow.reported)
        if delta:
            state["delta"] = delta
        doc = {"state": state, "metadata": metadata, "version": shadow.version, "timestamp": ts}
        return [("get/accepted", _with_token(doc, request))]

    def _delete(self, key: tuple[str, str], request: dict, ts: int) -> list[Message]:
        check_common(request)
        shadow = self._live(key, ts)
        if shadow is None:
            raise self._not_found(key)
        self._shadows[key] = Shadow(version=shadow.version, deleted_at=ts)
        self._save()
        doc = {"version": shadow.version, "timestamp": ts}
        return [("delete/accepted", _with_token(doc, request))]

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
            "metadata": _accepted_metadata(state, ts),
            "version": updated.version,
            "timestamp": ts,
        }
        messages = [("update/accepted", _with_token(accepted, request))]
        documents = {"current": snapshot(updated), "timestamp": ts}
        if previous is not None:
            documents = {"previous": snapshot(previous), **documents}
        messages.append(("update/documents", _with_token(documents, request)))
        delta = compute_delta(updated.desired, updated.reported)
        if delta and isinstance((state or {}).get("desired"), dict):
            delta_doc = {
                "state": delta,
                "metadata": project_metadata(delta, updated.meta_desired),
                "version": updated.version,
                "timestamp": ts,
            }
            messages.insert(1, ("update/delta", _with_token(delta_doc, request)))
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
