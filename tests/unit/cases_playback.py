from core.playback import addressable, pause_verdict, start_plan

BATH = ("b1", "Bathroom")
KITCHEN = ("k1", "Kitchen")


def player(device, playing=True, context="spotify:playlist:A"):
    state = {"device.id": device[0], "device.name": device[1], "is_playing": playing}
    if context:
        state["context.uri"] = context
    return state


def test_addressable_by_id_or_name_ignoring_case():
    bath = {"id": "b1", "name": "Bathroom", "is_restricted": False}
    assert addressable(bath, "bathroom")
    assert addressable(bath, "b1")
    assert not addressable(bath, "Kitchen")
    assert not addressable(bath, "")


def test_devices_without_id_or_restricted_are_not_addressable():
    assert not addressable({"id": None, "name": "Bathroom"}, "Bathroom")
    assert not addressable({"name": "Bathroom"}, "Bathroom")
    assert not addressable({"id": "b1", "name": "Bathroom", "is_restricted": True}, "Bathroom")


def test_start_plan_table():
    cases = [
        (None, "b1", "Bathroom", "skip", "play"),
        (player(BATH, playing=False), "b1", "Bathroom", "skip", "play"),
        (player(BATH), "b1", "Bathroom", "skip", "adopt"),
        (player(("new", "Bathroom")), "b1", "Bathroom", "skip", "adopt"),
        (player(KITCHEN), "b1", "Bathroom", "skip", "busy"),
        (player(KITCHEN), "b1", "Bathroom", "transfer", "transfer"),
        (player(KITCHEN), None, "", "skip", "busy"),  # no speaker set: nothing is ours
        ({"is_playing": True}, "b1", "Bathroom", "skip", "busy"),
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
        (player(BATH, context=None), ctx, "context_changed"),
    ]
    for state, started, expected in cases:
        assert pause_verdict(state, "b1", "Bathroom", started) == expected, (state, expected)
    # With no speaker known, no music is ours to pause.
    assert pause_verdict(player(KITCHEN), None, "", ctx) == "moved_elsewhere"
