# Decisions on Spotify's player state, kept pure. A state is the few fields the
# device reads from GET /v1/me/player while it streams in (net.spotify): a dict
# with "is_playing", "device.id", "device.name" and "context.uri" when present,
# or None when nothing plays anywhere. A device is a dict of "id", "name" and
# "is_restricted", as listed by GET /v1/me/player/devices.


def device_matches(device_id, name, wanted):
    """`wanted` is the configured speaker: its id, or its name (case-insensitive)."""
    if not wanted:
        return False
    return device_id == wanted or (name or "").lower() == wanted.lower()


def addressable(device, wanted):
    """The listed device is the configured speaker and can take commands: Spotify
    lists devices without an id, or restricted ones, that no API call can reach."""
    return (bool(device.get("id")) and not device.get("is_restricted")
            and device_matches(device["id"], device.get("name"), wanted))


def _on_our_device(player, device_id, wanted):
    playing_on = player.get("device.id")
    return bool(device_id and playing_on == device_id) or device_matches(
        playing_on, player.get("device.name"), wanted)


def start_plan(player, device_id, wanted, if_busy):
    """What to do on motion: "play", "adopt" (already playing here), "transfer" or "busy"."""
    if not player or not player.get("is_playing"):
        return "play"
    if _on_our_device(player, device_id, wanted):
        return "adopt"
    return "transfer" if if_busy == "transfer" else "busy"


def pause_verdict(player, device_id, wanted, started_context):
    """None when the playback is still the one we started; else why we leave it alone."""
    if not player or not player.get("is_playing"):
        return "not_playing"
    if not _on_our_device(player, device_id, wanted):
        return "moved_elsewhere"
    if started_context and player.get("context.uri") != started_context:
        return "context_changed"
    return None
