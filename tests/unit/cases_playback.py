from core.playback import find_device, pause_verdict, start_plan

BATH = {"id": "b1", "name": "Bathroom"}
KITCHEN = {"id": "k1", "name": "Kitchen"}


def player(device, playing=True, context="spotify:playlist:A"):
    ctx = {"uri": context} if context else None
    return {"device": device, "is_playing": playing, "context": ctx}


def test_find_device_by_id_or_name_ignoring_case():
    assert find_device([KITCHEN, BATH], "bathroom") is BATH
    assert find_device([KITCHEN, BATH], "k1") is KITCHEN
    assert find_device([KITCHEN], "Bathroom") is None
    assert find_device([KITCHEN], "") is None


def test_start_plan_table():
    cases = [
        (None, "b1", "Bathroom", "skip", "play"),
        (player(BATH, playing=False), "b1", "Bathroom", "skip", "play"),
        (player(BATH), "b1", "Bathroom", "skip", "adopt"),
        (player({"id": "new", "name": "Bathroom"}), "b1", "Bathroom", "skip", "adopt"),
        (player(KITCHEN), "b1", "Bathroom", "skip", "busy"),
        (player(KITCHEN), "b1", "Bathroom", "transfer", "transfer"),
        (player(KITCHEN), None, "", "skip", "adopt"),
    ]
    for state, device_id, wanted, if_busy, expected in cases:
        assert start_plan(state, device_id, wanted, if_busy) == expected, (state, expected)


def test_pause_verdict_table():
    ctx = "spotify:playlist:A"
    cases = [
        (player(BATH), ctx, None),
        (player(BATH), None, None),
        (None, ctx, "not_playing"),
        (player(BATH, playing=False), ctx, "not_playing"),
        (player(KITCHEN), ctx, "moved_elsewhere"),
        (player(BATH, context="spotify:album:B"), ctx, "context_changed"),
    ]
    for state, started, expected in cases:
        assert pause_verdict(state, "b1", "Bathroom", started) == expected, (state, expected)
