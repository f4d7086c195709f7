"""ShadowStore semantics, against the AWS IoT Device Shadow documentation."""

import json

import pytest

from host_tools.aws.shadow import TOMBSTONE_SECONDS, ShadowStore
from host_tools.aws.shadow_doc import MAX_REQUEST_BYTES, compute_delta, same
from host_tools.common.errors import SpottyError

T0 = 1_700_000_000


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def update(store: ShadowStore, doc, thing: str = "bath-1") -> dict[str, dict]:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return dict(store.update(thing, payload))


def state_of(store: ShadowStore, thing: str = "bath-1") -> dict | None:
    doc = store.document(thing)
    return None if doc is None else doc["state"]


# Each case: a sequence of update requests, then the whole state and version a get shows.
MERGE_CASES = [
    (
        "desired then matching report clears the delta",
        [
            {"state": {"desired": {"config": {"timeout_s": 300, "tz": "UTC0"}}}},
            {"state": {"reported": {"config": {"timeout_s": 300, "tz": "UTC0"}}}},
        ],
        {
            "desired": {"config": {"timeout_s": 300, "tz": "UTC0"}},
            "reported": {"config": {"timeout_s": 300, "tz": "UTC0"}},
        },
        2,
    ),
    (
        "nested objects merge key by key",
        [
            {"state": {"desired": {"a": {"b": {"c": 1}}}}},
            {"state": {"desired": {"a": {"b": {"d": 2}, "e": 3}}}},
        ],
        {
            "desired": {"a": {"b": {"c": 1, "d": 2}, "e": 3}},
            "delta": {"a": {"b": {"c": 1, "d": 2}, "e": 3}},
        },
        2,
    ),
    (
        "delta lists only the differing nested leaves",
        [
            {"state": {"desired": {"cfg": {"volume": 30, "enabled": True, "tz": "UTC0"}}}},
            {"state": {"reported": {"cfg": {"volume": 20, "enabled": True}, "status": "ok"}}},
        ],
        {
            "desired": {"cfg": {"volume": 30, "enabled": True, "tz": "UTC0"}},
            "reported": {"cfg": {"volume": 20, "enabled": True}, "status": "ok"},
            "delta": {"cfg": {"volume": 30, "tz": "UTC0"}},
        },
        2,
    ),
    (
        "desired that is a subset of reported has no delta",
        [
            {"state": {"reported": {"a": {"x": 1, "y": 2}}}},
            {"state": {"desired": {"a": {"x": 1}}}},
        ],
        {"desired": {"a": {"x": 1}}, "reported": {"a": {"x": 1, "y": 2}}},
        2,
    ),
    (
        "null deletes a key, nested too",
        [
            {"state": {"desired": {"x": 1, "y": {"p": 1, "q": 2}}}},
            {"state": {"desired": {"x": None, "y": {"p": None}}}},
        ],
        {"desired": {"y": {"q": 2}}, "delta": {"y": {"q": 2}}},
        2,
    ),
    (
        "null for an absent key is a no-op but still a new version",
        [{"state": {"reported": {"a": 1}}}, {"state": {"reported": {"zz": None}}}],
        {"reported": {"a": 1}},
        2,
    ),
    (
        "a null section clears that section only",
        [
            {"state": {"desired": {"a": 1}, "reported": {"b": 2}}},
            {"state": {"desired": None}},
        ],
        {"reported": {"b": 2}},
        2,
    ),
    (
        "a null state clears both sections, the shadow stays",
        [{"state": {"desired": {"a": 1}, "reported": {"b": 2}}}, {"state": None}],
        {},
        2,
    ),
    (
        "arrays are values: replaced whole, compared whole",
        [
            {"state": {"desired": {"l": [1, 2, 3]}, "reported": {"l": [1, 2]}}},
            {"state": {"desired": {"l": [4]}}},
        ],
        {"desired": {"l": [4]}, "reported": {"l": [1, 2]}, "delta": {"l": [4]}},
        2,
    ),
    (
        "an object replaces a scalar and back",
        [
            {"state": {"desired": {"a": 1}}},
            {"state": {"desired": {"a": {"b": 2}}}},
            {"state": {"reported": {"a": {"b": 2}}}},
            {"state": {"desired": {"a": "s"}}},
        ],
        {"desired": {"a": "s"}, "reported": {"a": {"b": 2}}, "delta": {"a": "s"}},
        4,
    ),
    (
        "true is not 1 in JSON",
        [{"state": {"desired": {"b": True, "n": 1}, "reported": {"b": 1, "n": 1.0}}}],
        {"desired": {"b": True, "n": 1}, "reported": {"b": 1, "n": 1.0}, "delta": {"b": True}},
        1,
    ),
    (
        "empty state is accepted and counts as an update",
        [{"state": {"reported": {"a": 1}}}, {"state": {}}],
        {"reported": {"a": 1}},
        2,
    ),
    (
        "content outside desired/reported is ignored",
        [{"state": {"reported": {"a": 1}}, "other": {"x": 1}}],
        {"reported": {"a": 1}},
        1,
    ),
]


@pytest.mark.parametrize(
    "updates, state, version", [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES]
)
def test_merge(updates, state, version):
    store = ShadowStore(clock=Clock())
    for doc in updates:
        assert "update/accepted" in update(store, doc)
    got = store.document("bath-1")
    assert got["state"] == state
    assert got["version"] == version


# Each case: the shadow before (None: none), the request, the rejection code and message.
REJECT_CASES = [
    ("malformed JSON", None, b'{"state": ', 400, "Invalid JSON"),
    ("NaN is not JSON", None, b'{"state": {"reported": {"a": NaN}}}', 400, "Invalid JSON"),
    ("not an object", None, b"[1, 2]", 400, "Invalid JSON"),
    ("empty payload", None, b"", 400, "Missing required node: state"),
    ("no state", None, {"desired": {"a": 1}}, 400, "Missing required node: state"),
    ("state not an object", None, {"state": [1]}, 400, "State node must be an object"),
    ("desired not an object", None, {"state": {"desired": 5}}, 400,
     "Desired node must be an object"),
    ("reported not an object", None, {"state": {"reported": "x"}}, 400,
     "Reported node must be an object"),
    ("delta is not writable", None, {"state": {"delta": {}}}, 400,
     "State contains an invalid node: 'delta'"),
    ("version not an integer", None, {"state": {}, "version": "1"}, 400, "Invalid version"),
    ("version a boolean", None, {"state": {}, "version": True}, 400, "Invalid version"),
    ("clientToken too long", None, {"state": {}, "clientToken": "t" * 65}, 400,
     "Invalid clientToken"),
    ("clientToken not a string", None, {"state": {}, "clientToken": 7}, 400,
     "Invalid clientToken"),
    ("seven levels of nesting", None,
     {"state": {"reported": {"1": {"2": {"3": {"4": {"5": {"6": {"7": 1}}}}}}}}}, 400,
     "JSON contains too many levels of nesting; maximum is 6"),
    ("not UTF-8", None, b'{"state": {"reported": {"a": "\xff"}}}', 415,
     "Unsupported documented encoding; supported encoding is UTF-8"),
    ("stale version", {"state": {"reported": {"a": 1}}}, {"state": {}, "version": 0}, 409,
     "Version conflict"),
    ("future version", {"state": {"reported": {"a": 1}}}, {"state": {}, "version": 2}, 409,
     "Version conflict"),
    ("state over 8 KB", None, {"state": {"reported": {"a": "x" * 8200}}}, 413,
     "The payload exceeds the maximum size allowed"),
    ("request over the MQTT limit", None, b" " * (MAX_REQUEST_BYTES + 1), 413,
     "The payload exceeds the maximum size allowed"),
]


@pytest.mark.parametrize(
    "before, request_doc, code, message",
    [c[1:] for c in REJECT_CASES],
    ids=[c[0] for c in REJECT_CASES],
)
def test_rejected(before, request_doc, code, message):
    store = ShadowStore(clock=Clock())
    if before:
        update(store, before)
    answer = update(store, request_doc)
    assert list(answer) == ["update/rejected"]
    assert answer["update/rejected"] == {"code": code, "message": message, "timestamp": T0}
    if before is None:
        assert store.document("bath-1") is None
    else:
        assert store.document("bath-1")["version"] == 1  # nothing changed


def test_six_levels_of_nesting_are_allowed():
    doc = {"state": {"reported": {"1": {"2": {"3": {"4": {"5": {"6": 1}}}}}}}}
    assert "update/accepted" in update(ShadowStore(clock=Clock()), doc)


def test_size_limit_counts_state_not_whitespace_or_metadata():
    store = ShadowStore(clock=Clock())
    value = "x" * 8000  # the state is under 8 KB, its metadata and the padding are not
    padded = json.dumps({"state": {"reported": {"a": value}}}, indent=4000).encode()
    assert len(padded) > 8192
    assert "update/accepted" in update(store, padded)
    # The limit is on the merged document: a small update can push it over.
    answer = update(store, {"state": {"desired": {"b": "y" * 300}}})
    assert answer["update/rejected"]["code"] == 413
    assert store.document("bath-1")["version"] == 1


def test_matching_version_is_accepted_and_increments():
    store = ShadowStore(clock=Clock())
    update(store, {"state": {"reported": {"a": 1}}})
    answer = update(store, {"state": {"reported": {"a": 2}}, "version": 1})
    assert answer["update/accepted"]["version"] == 2


def test_get_and_delete_of_an_absent_shadow_are_404():
    store = ShadowStore(clock=Clock())
    for op in (store.get, store.delete):
        [(suffix, doc)] = op("bath-9", b'{"clientToken": "c-404"}')
        assert suffix.endswith("/rejected")
        assert doc == {
            "code": 404,
            "message": "No shadow exists with name: 'bath-9'",
            "timestamp": T0,
            "clientToken": "c-404",
        }


def test_client_token_is_echoed_everywhere():
    store = ShadowStore(clock=Clock())
    answer = update(store, {"state": {"desired": {"a": 1}}, "clientToken": "tok-1"})
    assert set(answer) == {"update/accepted", "update/delta", "update/documents"}
    assert all(doc["clientToken"] == "tok-1" for doc in answer.values())
    [(_, got)] = store.get("bath-1", b'{"clientToken": "tok-2"}')
    assert got["clientToken"] == "tok-2"
    rejected = update(store, {"state": {}, "version": 9, "clientToken": "tok-3"})
    assert rejected["update/rejected"]["clientToken"] == "tok-3"
    [(_, deleted)] = store.delete("bath-1", b'{"clientToken": "tok-4"}')
    assert deleted["clientToken"] == "tok-4"
    assert "clientToken" not in update(store, {"state": {}})["update/accepted"]


def test_accepted_echoes_the_request_with_leaf_metadata():
    store = ShadowStore(clock=Clock())
    answer = update(store, {"state": {"desired": {"cfg": {"volume": 3, "tz": None}}}})
    assert answer["update/accepted"] == {
        "state": {"desired": {"cfg": {"volume": 3, "tz": None}}},
        "metadata": {"desired": {"cfg": {"volume": {"timestamp": T0}, "tz": {"timestamp": T0}}}},
        "version": 1,
        "timestamp": T0,
    }


def test_metadata_keeps_the_time_each_leaf_was_written():
    clock = Clock()
    store = ShadowStore(clock=clock)
    update(store, {"state": {"reported": {"cfg": {"a": 1, "b": 2}, "l": [1, {"x": 2}]}}})
    clock.now += 60
    update(store, {"state": {"reported": {"cfg": {"b": 3}}}})
    clock.now += 1
    got = store.document("bath-1")
    assert got["metadata"] == {
        "reported": {
            "cfg": {"a": {"timestamp": T0}, "b": {"timestamp": T0 + 60}},
            "l": [{"timestamp": T0}, {"x": {"timestamp": T0}}],
        }
    }
    assert got["timestamp"] == T0 + 61


def test_delta_message_carries_the_whole_delta_with_its_metadata():
    clock = Clock()
    store = ShadowStore(clock=clock)
    update(store, {"state": {"desired": {"cfg": {"volume": 30}}, "reported": {"cfg": {}}}})
    clock.now += 5
    answer = update(store, {"state": {"desired": {"cfg": {"tz": "CET-1"}}}})
    assert answer["update/delta"] == {
        "state": {"cfg": {"volume": 30, "tz": "CET-1"}},
        "metadata": {"cfg": {"volume": {"timestamp": T0}, "tz": {"timestamp": T0 + 5}}},
        "version": 2,
        "timestamp": T0 + 5,
    }


@pytest.mark.parametrize(
    "request_doc",
    [
        {"state": {"reported": {"cfg": {"volume": 10}}}},  # a refusal must not loop
        {"state": {"reported": {"other": 1}}},
        {"state": {"desired": {"cfg": {"volume": 10}}}},  # resolves the delta
        {"state": {"desired": None}},
    ],
)
def test_no_delta_message_unless_desired_set_and_a_delta_remains(request_doc):
    store = ShadowStore(clock=Clock())
    update(store, {"state": {"desired": {"cfg": {"volume": 20}}}})
    update(store, {"state": {"reported": {"cfg": {"volume": 10}}}})
    assert "update/delta" not in update(store, request_doc)


def test_documents_message_has_previous_and_current():
    store = ShadowStore(clock=Clock())
    first = update(store, {"state": {"reported": {"a": 1}}})["update/documents"]
    assert "previous" not in first  # there was no shadow before
    second = update(store, {"state": {"reported": {"a": 2}}, "clientToken": "d"})
    assert second["update/documents"] == {
        "previous": {
            "state": {"reported": {"a": 1}},
            "metadata": {"reported": {"a": {"timestamp": T0}}},
            "version": 1,
        },
        "current": {
            "state": {"reported": {"a": 2}},
            "metadata": {"reported": {"a": {"timestamp": T0}}},
            "version": 2,
        },
        "timestamp": T0,
        "clientToken": "d",
    }


def test_delete_then_recreate_continues_the_version():
    clock = Clock()
    store = ShadowStore(clock=clock)
    update(store, {"state": {"reported": {"a": 1}}})
    update(store, {"state": {"reported": {"a": 2}}})
    [(suffix, doc)] = store.delete("bath-1")
    assert (suffix, doc) == ("delete/accepted", {"version": 2, "timestamp": T0})
    assert store.document("bath-1") is None
    assert store.delete("bath-1")[0][0] == "delete/rejected"
    assert update(store, {"state": {}, "version": 1})["update/rejected"]["code"] == 409
    answer = update(store, {"state": {"reported": {"b": 1}}, "version": 2})
    assert answer["update/accepted"]["version"] == 3
    assert "previous" not in answer["update/documents"]
    assert state_of(store) == {"reported": {"b": 1}}


def test_a_shadow_deleted_over_48_hours_ago_starts_again():
    clock = Clock()
    store = ShadowStore(clock=clock)
    update(store, {"state": {"reported": {"a": 1}}})
    update(store, {"state": {"reported": {"a": 2}}})
    store.delete("bath-1")
    clock.now += TOMBSTONE_SECONDS + 1
    assert update(store, {"state": {"reported": {"a": 3}}})["update/accepted"]["version"] == 1


def test_things_and_named_shadows_are_separate():
    store = ShadowStore(clock=Clock())
    update(store, {"state": {"reported": {"a": 1}}}, thing="bath-1")
    store.update("bath-1", b'{"state": {"reported": {"b": 2}}}', shadow_name="extra")
    assert state_of(store, "bath-1") == {"reported": {"a": 1}}
    assert store.document("bath-1", "extra")["state"] == {"reported": {"b": 2}}
    assert store.document("bath-2") is None
    [(_, doc)] = store.get("bath-1", shadow_name="nope")
    assert doc["message"] == "No shadow exists with name: 'nope'"


def test_answers_do_not_alias_the_stored_state():
    store = ShadowStore(clock=Clock())
    answer = update(store, {"state": {"desired": {"a": {"b": 1}}}})
    answer["update/delta"]["state"]["a"]["b"] = 99
    store.document("bath-1")["state"]["desired"]["a"]["b"] = 98
    assert state_of(store)["desired"] == {"a": {"b": 1}}


def test_persists_across_restarts(tmp_path):
    path = tmp_path / "state" / "shadows.json"
    clock = Clock()
    store = ShadowStore(clock=clock, path=path)
    update(store, {"state": {"desired": {"a": 1}, "reported": {"a": 0}}})
    store.update("bath-2", b'{"state": {"reported": {"x": 1}}}')
    store.delete("bath-2")
    again = ShadowStore(clock=clock, path=path)
    assert again.document("bath-1") == store.document("bath-1")
    assert again.document("bath-2") is None
    assert dict(again.update("bath-2", b'{"state": {}}'))["update/accepted"]["version"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["shadows.json"]  # no temp left


@pytest.mark.parametrize(
    "a, b, equal",
    [
        (True, 1, False),
        (1, 1.0, True),
        ([1, True], [1, True], True),
        ({"a": 0}, {"a": False}, False),
        ("1", 1, False),
    ],
)
def test_json_equality(a, b, equal):
    assert same(a, b) is equal


def test_compute_delta_missing_reported_key_includes_whole_value():
    assert compute_delta({"a": {"b": 1}, "c": 2}, {"c": 2}) == {"a": {"b": 1}}


def test_a_broken_store_file_is_a_clear_error(tmp_path):
    path = tmp_path / "shadows.json"
    path.write_text("{not json")
    with pytest.raises(SpottyError, match="not a shadow store"):
        ShadowStore(path=path)
