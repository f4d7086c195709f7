from core import config


def test_defaults_are_valid():
    accepted, refused = config.validate(config.DEFAULTS)
    assert refused == {} and accepted == config.DEFAULTS


def test_each_key_accepts_and_refuses():
    cases = [
        ("enabled", False, True), ("enabled", 1, False), ("enabled", "yes", False),
        ("timeout_s", 1, True), ("timeout_s", 7200, True), ("timeout_s", 0, False),
        ("timeout_s", 7201, False), ("timeout_s", 30.5, False), ("timeout_s", True, False),
        ("motion_gap_s", 0, True), ("motion_gap_s", 3601, False),
        ("quiet_start", "22:00", True), ("quiet_start", None, True),
        ("quiet_start", "24:00", False), ("quiet_start", "7:00", False),
        ("quiet_end", "07:60", False), ("quiet_end", "ab:cd", False),
        ("tz", "CET-1CEST,M3.5.0,M10.5.0/3", True), ("tz", "Europe/Berlin", False),
        ("tz", None, False),
        ("spotify_device", "Bathroom", True), ("spotify_device", 3, False),
        ("spotify_device", "x" * 129, False),
        ("playlist_uri", "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M", True),
        ("playlist_uri", None, True), ("playlist_uri", "spotify:track:abc", False),
        ("playlist_uri", "spotify:playlist:", False), ("playlist_uri", "http://x", False),
        ("volume", 0, True), ("volume", 100, True), ("volume", None, True),
        ("volume", 101, False), ("volume", -1, False),
        ("if_busy", "transfer", True), ("if_busy", "steal", False),
    ]
    for key, value, ok in cases:
        accepted, refused = config.validate({key: value})
        assert (key in accepted) == ok and (key in refused) != ok, (key, value, refused)
        if not ok:
            assert refused[key], (key, value)


def test_open_spotify_links_become_uris():
    link = "https://open.spotify.com/intl-de/playlist/37i9dQZF1DXcBWIGoYBM5M?si=abc123"
    accepted, _ = config.validate({"playlist_uri": link})
    assert accepted["playlist_uri"] == "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
    accepted, _ = config.validate({"playlist_uri": "https://open.spotify.com/album/1A2b3C"})
    assert accepted["playlist_uri"] == "spotify:album:1A2b3C"


def test_empty_string_means_null_for_nullable_keys():
    accepted, refused = config.validate({"quiet_start": "", "playlist_uri": "", "volume": "",
                                         "tz": ""})
    assert accepted == {"quiet_start": None, "playlist_uri": None, "volume": None}
    assert list(refused) == ["tz"]


def test_unknown_keys_and_non_objects_are_refused_with_reasons():
    accepted, refused = config.validate({"timeout_s": 60, "colour": "red", "volume": 500})
    assert accepted == {"timeout_s": 60}
    assert refused == {"colour": "unknown setting", "volume": "must be 0..100"}
    assert config.validate([1, 2]) == ({}, {"config": "must be an object"})


def test_apply_keeps_refused_keys_old_and_reports_changes():
    current = dict(config.DEFAULTS, timeout_s=60)
    merged, changed, refused = config.apply(current, {"timeout_s": 60, "volume": 30,
                                                      "if_busy": "maybe"})
    assert merged["timeout_s"] == 60 and merged["volume"] == 30
    assert merged["if_busy"] == "skip"
    assert changed == {"volume": 30} and list(refused) == ["if_busy"]
    assert current["volume"] is None  # the input is not modified


def test_from_stored_falls_back_per_key():
    merged, refused = config.from_stored({"timeout_s": "ten", "volume": 20})
    assert merged["timeout_s"] == 300 and merged["volume"] == 20 and list(refused) == ["timeout_s"]
    assert config.from_stored("garbage")[0] == config.DEFAULTS
