# Decisions on Spotify player state (the JSON of GET /v1/me/player), kept pure.


def device_matches(device, wanted):
    """`wanted` is the configured speaker: its id, or its name (case-insensitive)."""
    if not wanted or not device:
        return False
    return device.get("id") == wanted or (device.get("name") or "").lower() == wanted.lower()


def find_device(devices, wanted):
    for device in devices:
        if device_matches(device, wanted):
            return device
    return None


def context_uri(player):
    context = player.get("context") if player else None
    return context.get("uri") if context else None


def _on_our_device(player, device_id, wanted):
    device = player.get("device") or {}
    if not device_id and not wanted:
        return True  # no speaker configured: whichever device the user plays on
    return (device_id and device.get("id") == device_id) or device_matches(device, wanted)


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
    if started_context and context_uri(player) != started_context:
        return "context_changed"
    return None
