"""The pure pieces of an AWS IoT device shadow: the document, the state algebra (merge,
delta, metadata), request validation and the answers' documents. The semantics they
implement are listed in shadow.py, whose ShadowStore puts them together.
"""

import copy
import json
from dataclasses import dataclass, field
from typing import Any

Message = tuple[str, dict]

MAX_STATE_BYTES = 8 * 1024
MAX_REQUEST_BYTES = 128 * 1024  # AWS IoT's MQTT payload limit: nothing larger is read
MAX_DEPTH = 6
MAX_CLIENT_TOKEN_BYTES = 64
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


def shown_sections(shadow: Shadow) -> tuple[dict, dict]:
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
    state, metadata = shown_sections(shadow)
    return {"state": state, "metadata": metadata, "version": shadow.version}


def with_token(doc: dict, request: dict) -> dict:
    if valid_token(request.get("clientToken")):
        doc["clientToken"] = request["clientToken"]
    return doc


def error_document(code: int, message: str, ts: int, request: dict | None = None) -> dict:
    return with_token({"code": code, "message": message, "timestamp": ts}, request or {})


def accepted_metadata(state: dict | None, ts: int) -> dict:
    if state is None:
        return {"timestamp": ts}
    return {name: leaf_metadata(section, ts) for name, section in state.items()}
