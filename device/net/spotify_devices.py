# GET /v1/me/player/devices: the configured speaker's id, looked up at boot and when the
# speaker comes back with a new one. Loaded for each look-up and dropped afterwards
# (rare.drop): its code would otherwise take heap for good.
from core.jsonscan import Scanner
from core.playback import addressable
from net.spotify import scanned
from spotify_account import SERVER, SpotifyError

_DEVICES = "devices.[]"
_FIELDS = ("devices.[].id", "devices.[].name", "devices.[].is_restricted")


async def find(spotify, wanted):
    """The configured speaker ({"id", "name", ...}) if Spotify lists it and it can be
    addressed, else None."""
    matches = []
    scanner = Scanner(_FIELDS, _DEVICES,
                      lambda device: addressable(device, wanted) and matches.append(device))
    response = await spotify.call("GET", "/v1/me/player/devices", scanner=scanner)
    if scanned(response, scanner) is None:
        raise SpotifyError(SERVER, "devices: no answer")
    return matches[0] if matches else None
