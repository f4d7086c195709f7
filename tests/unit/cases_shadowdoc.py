import json

from core import config, shadowdoc


def parse(payload, piece=256):
    """A message fed as the MQTT client feeds it: in pieces of its receive buffer."""
    message = shadowdoc.Message()
    buf = bytearray(b'{"x' * (piece // 3 + 2))  # stale bytes past n must not count
    for start in range(0, len(payload), piece):
        chunk = payload[start:start + piece]
        buf[:len(chunk)] = chunk
        message.feed(buf, len(chunk))
    assert len(message) == len(payload)
    return message.result()


def test_parse_refuses_non_objects_and_garbage():
    assert parse(b'{"state": {}}') == ({}, None)
    assert parse(b"\xff\xfe") == (None, "not a JSON object")
    assert parse(b"{\xff\xfe}") == (None, "not JSON")
    assert parse(b"[1]") == (None, "not a JSON object")
    assert parse(b"  \n", 1) == (None, "not a JSON object")
    assert parse(b"") == (None, "not a JSON object")
    assert parse(b'{"state": ') == (None, "not JSON")
    assert parse(b'{"state": {}} x', 3) == (None, "not JSON")


def test_parse_in_pieces_of_any_size():
    payload = json.dumps({"version": 12, "state": {"delta": {"config": {"timeout_s": 90}}},
                          "metadata": {"delta": {"config": {"timeout_s": {"timestamp": 5}}}}})
    payload = b"  " + payload.encode()
    whole = parse(payload, len(payload))
    assert whole == ({"version": 12, "state.delta": True}, None)  # only that there is one
    for piece in (1, 2, 7, 64):
        assert parse(payload, piece) == whole


def test_parse_keeps_what_the_device_reads_and_skips_metadata():
    doc = {"state": {"desired": {"config": {"volume": 3}, "other": 1},
                     "reported": {"stats": {"hours": [0] * 24}},
                     "delta": {"config": {"volume": 3}}},
           "metadata": {"desired": {"config": {"volume": {"timestamp": 1}}}},
           "version": 9, "timestamp": 2, "clientToken": "t"}
    fields, problem = parse(json.dumps(doc).encode())
    assert problem is None
    assert fields == {"state.desired.config": {"volume": 3}, "state.delta": True, "version": 9}


def parsed(doc):
    return parse(json.dumps(doc).encode())[0]


def test_wanted_from_delta_and_get():
    delta = parsed({"version": 7, "state": {"config": {"timeout_s": 60}}})
    get = parsed({"version": 7, "state": {"desired": {"config": {"volume": 3}}, "reported": {}}})
    assert shadowdoc.wanted(delta, "delta") == {"timeout_s": 60}
    assert shadowdoc.wanted(get, "get") == {"volume": 3}
    assert shadowdoc.wanted(parsed({"state": {"reported": {}}}), "get") is None
    assert shadowdoc.wanted(parsed({"state": "x"}), "delta") is None
    assert shadowdoc.version(delta) == 7
    assert shadowdoc.version(parsed({"version": True})) is None


def test_answer_applies_valid_refuses_invalid_and_clears_their_delta():
    new, changed, state, refused = shadowdoc.acknowledge(
        config.DEFAULTS, {"timeout_s": 60, "volume": 500, "colour": "red"}, {})
    assert new["timeout_s"] == 60 and new["volume"] is None and changed == {"timeout_s": 60}
    assert state["reported"]["config"] == new
    assert state["reported"]["config_errors"] == {"volume": "must be 0..100",
                                                  "colour": "unknown setting"}
    assert state["desired"] == {"config": {"volume": None, "colour": None}}
    # The owner fixes the volume: its old error is cleared, nothing left to delete.
    new, changed, state, refused = shadowdoc.acknowledge(new, {"volume": 40}, refused)
    assert changed == {"volume": 40} and refused == {}
    assert state["reported"]["config_errors"] == {"volume": None, "colour": None}
    assert "desired" not in state
    # Nothing refused before or now: nothing to clear.
    assert shadowdoc.acknowledge(new, {"volume": 41}, {})[2]["reported"]["config_errors"] is None


def test_normalised_values_are_written_back_to_desired():
    link = "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M?si=x"
    new, _, state, _ = shadowdoc.acknowledge(
        config.DEFAULTS, {"playlist_uri": link, "quiet_start": ""}, {})
    assert new["playlist_uri"] == "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
    assert state["desired"]["config"] == {"playlist_uri": new["playlist_uri"],
                                          "quiet_start": None}
    assert state["reported"]["config_errors"] is None


def test_a_config_that_is_not_an_object_is_refused_whole():
    new, changed, state, refused = shadowdoc.acknowledge(config.DEFAULTS, [1, 2], {})
    assert refused == {"config": "must be an object"}
    assert new == config.DEFAULTS and changed == {}
    assert state["desired"] == {"config": None}
    assert state["reported"]["config_errors"] == {"config": "must be an object"}


def test_wanted_reads_other_sections_too():
    ota = {"version": "0.2.0", "url": "https://h/b", "sha256": "ab" * 32, "size": 9}
    get = parsed({"state": {"desired": {"config": {}, "ota": ota}, "delta": {"ota": {"url": "x"}}}})
    assert shadowdoc.wanted(get, "get", "ota") == ota
    delta = parsed({"state": {"ota": {"url": "x"}}})
    assert shadowdoc.wanted(delta, "delta", "ota") == {"url": "x"}
    assert shadowdoc.wanted(parsed({"state": {"config": {}}}), "delta", "ota") is None


def test_merge_update_states():
    a = {"reported": {"config": {"x": 1}}}
    b = {"reported": {"ota": None}, "desired": {"ota": None}}
    assert shadowdoc.merge(a, b) == {"reported": {"config": {"x": 1}, "ota": None},
                                     "desired": {"ota": None}}
    assert shadowdoc.merge({}, None) == {}


def test_a_section_too_big_for_the_device_is_refused_whole_and_deleted_from_desired():
    big = {"spotify_device": "Bathroom", "notes": "n" * 3000, "more": "m" * 3000}
    doc = {"state": {"desired": {"config": big}, "reported": {"config": {}},
                     "delta": {"config": big}},
           "metadata": {"desired": {"config": {"notes": {"timestamp": 1}}}}, "version": 4}
    payload = json.dumps(doc).encode()
    assert len(payload) > 12000
    fields, problem = parse(payload)
    assert problem is None and fields["version"] == 4
    assert shadowdoc.wanted(fields, "get") is shadowdoc.TOO_BIG
    assert fields["state.delta"] is True  # still says something is pending
    new, changed, state, _ = shadowdoc.acknowledge(config.DEFAULTS, shadowdoc.TOO_BIG, {})
    assert new == config.DEFAULTS and changed == {}
    assert state["desired"] == {"config": None}
    assert state["reported"]["config_errors"] == {"config": "too big for the device"}
    # A delta whose other keys are big but whose config is small is read as usual.
    delta = parsed({"state": {"config": {"volume": 3}, "pad": "p" * 20000}, "version": 5})
    assert shadowdoc.wanted(delta, "delta") == {"volume": 3} and delta["version"] == 5
