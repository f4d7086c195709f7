import json

from core.jsonscan import Scanner

PLAYER = {
    "device": {"id": "b1", "is_active": True, "name": "Bath \"room\" \u00e9", "volume_percent": 40},
    "shuffle_state": False,
    "timestamp": 1732000000000,
    "context": {"external_urls": {"spotify": "https://open.spotify.com/x"},
                "uri": "spotify:playlist:A", "type": "playlist"},
    "progress_ms": 12345,
    "item": {"album": {"images": [{"url": "https://i.scdn.co/image/" + "a" * 40, "height": 640}],
                       "name": "An \\ album ] with } brackets", "artists": [{"name": "X"}]},
             "name": "Song", "uri": "spotify:track:T", "is_playable": True},
    "is_playing": True,
    "actions": {"disallows": {"resuming": True}},
}
FIELDS = ("device.id", "device.name", "is_playing", "context.uri")


def scan(document, fields=FIELDS, piece=None, **kw):
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    scanner = Scanner(fields, **kw)
    piece = piece or len(data) or 1
    # As a receive buffer is read in place: the bytes past n are stale and must not count.
    buf = bytearray(b'"}]x' * (piece // 4 + 2))
    for start in range(0, len(data), piece):
        chunk = data[start:start + piece]
        buf[:len(chunk)] = chunk
        scanner.feed(buf, len(chunk))
    return scanner.close()


def refused(text, fields=FIELDS):
    try:
        scan(text.encode(), fields)
    except ValueError:
        return True
    return False


def test_picks_the_wanted_fields_and_nothing_else():
    found = scan(PLAYER)
    assert found == {"device.id": "b1", "device.name": "Bath \"room\" \u00e9",
                     "is_playing": True, "context.uri": "spotify:playlist:A"}


def test_any_piece_size_gives_the_same_answer():
    whole = scan(PLAYER)
    for piece in (1, 2, 3, 7, 64):
        assert scan(PLAYER, piece=piece) == whole, piece


def test_escapes_split_across_pieces():
    doc = {"device": {"id": "a\\\"b\\\\", "name": "x"}, "is_playing": False}
    for piece in (1, 2, 3):
        assert scan(doc, piece=piece)["device.id"] == "a\\\"b\\\\", piece


def test_null_and_missing_fields():
    found = scan({"device": {"id": None, "name": "Phone"}, "context": None, "is_playing": False})
    assert found == {"device.id": None, "device.name": "Phone", "is_playing": False}


def test_array_items_go_to_a_callback_one_by_one():
    devices = {"devices": [
        {"id": "k1", "name": "Kitchen", "is_restricted": False, "volume_percent": 50},
        {"id": None, "name": "Web Player", "is_restricted": True},
        {"id": "b1", "name": "Bathroom", "is_restricted": False, "supports_volume": True},
    ]}
    items = []
    fields = ("devices.[].id", "devices.[].name", "devices.[].is_restricted")
    for piece in (5, 4096):
        items.clear()
        found = scan(devices, fields, piece=piece, item="devices.[]", on_item=items.append)
        assert found == {}
        assert items == [
            {"id": "k1", "name": "Kitchen", "is_restricted": False},
            {"id": None, "name": "Web Player", "is_restricted": True},
            {"id": "b1", "name": "Bathroom", "is_restricted": False},
        ], piece


def test_empty_containers_and_numbers():
    found = scan(b' {"a": [], "b": {}, "n": -1.5e3, "is_playing": true} ', ("n", "is_playing"))
    assert found == {"n": -1500.0, "is_playing": True}
    assert scan(b"[]", ()) == {}
    assert scan(b"42", ()) == {}


def test_garbage_is_refused():
    for text in ("", "<html>", "{", '{"a": 1', '{"a" 1}', '{"a": 1,}', "[1,]", '{"a": tru}',
                 '{"a": 1}}', "[}", '{"a": 1} x', "nul", '{"a": "open'):
        assert refused(text), text


def test_a_wanted_value_too_long_is_refused_an_unwanted_one_skipped():
    long_text = "x" * 5000
    assert scan({"device": {"name": long_text, "id": "b1"}}, ("device.id",)) == {
        "device.id": "b1"}
    assert refused(json.dumps({"device": {"id": long_text}}))


def test_a_long_key_names_nothing():
    found = scan({"k" * 100: {"id": 1}, "device": {"id": "b1"}}, ("device.id",))
    assert found == {"device.id": "b1"}


def test_a_wanted_object_or_array_is_kept_whole():
    doc = {"state": {"desired": {"config": {"timeout_s": 60, "tz": "CET-1", "x": [1, {"y": "}"}]},
                                 "ota": None},
                     "reported": {"config": {"timeout_s": 30}}},
           "metadata": {"desired": {"config": {"timeout_s": {"timestamp": 1}}}},
           "version": 7}
    fields = ("state.desired.config", "state.desired.ota", "version", "state.delta")
    for piece in (1, 3, 4096):
        found = scan(doc, fields, piece=piece)
        assert found == {"state.desired.config": doc["state"]["desired"]["config"],
                         "state.desired.ota": None, "version": 7}, piece
    assert scan(b'{"a": [], "b": {}}', ("a", "b")) == {"a": [], "b": {}}


def test_a_present_only_object_is_marked_and_never_kept():
    doc = {"state": {"delta": {"ota": {"url": "https://x/" + "a" * 5000}, "config": {"v": 1}},
                     "desired": {"config": {"v": 1}}}, "version": 3}
    text = json.dumps(doc).encode()
    for piece in (1, 7, 8192):
        scanner = Scanner(("version", "state.desired.config"), present=("state.delta",))
        for i in range(0, len(text), piece):
            scanner.feed(text[i:i + piece])
        assert scanner.close() == {"state.delta": True, "state.desired.config": {"v": 1},
                                   "version": 3}, piece
    # Absent, it is simply not there; and it need not share a parent with a field.
    scanner = Scanner(("version",), present=("state.delta",))
    scanner.feed(b'{"state": {"desired": {}}, "version": 4}')
    assert scanner.close() == {"version": 4}


def test_a_wanted_subtree_too_long_is_refused():
    assert refused(json.dumps({"a": {"b": "x" * 5000}}), ("a",))
    assert scan({"a": {"b": "x" * 5000}, "c": 1}, ("c",)) == {"c": 1}


def test_with_a_too_long_marker_a_value_over_its_bound_is_marked_and_the_rest_read():
    doc = {"state": {"desired": {"config": {"x": "y" * 5000}}, "name": "n" * 300,
                     "other": {"config": 1}},
           "version": 9}
    fields = ("state.desired.config", "state.name", "version", "state.other.config")
    for piece in (1, 7, 256, 9000):
        data = json.dumps(doc).encode()
        scanner = Scanner(fields)
        scanner.too_long = "TOO"
        for start in range(0, len(data), piece):
            scanner.feed(data[start:start + piece])
        assert scanner.close() == {"state.desired.config": "TOO", "state.name": "TOO",
                                   "version": 9, "state.other.config": 1}, piece
    scanner = Scanner(("n",))
    scanner.too_long = "TOO"
    try:  # a literal that long is no JSON a shadow sends: still refused
        scanner.feed(b'{"n": ' + b"1" * 300 + b"}")
        raise AssertionError("a 300-digit number was taken")
    except ValueError:
        pass
