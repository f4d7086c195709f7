# Start and stop playback on the configured speaker: the Spotify calls of a
# session, with the decisions delegated to core.playback.
import rare
from core import session
from core.playback import pause_verdict, start_plan
from net.spotify import DEVICE_ASLEEP, NO_DEVICE, REJECTED, SpotifyError


class Player:
    def __init__(self, spotify):
        self.spotify = spotify
        self.device_id = None  # cached id of the configured speaker
        self.started_context = None

    def forget_device(self):
        self.device_id = None

    async def resolve(self, now, wanted):
        """Look the speaker up by name or id; None when Spotify does not list it."""
        try:  # the import too: one that fails for want of memory must not stay half-loaded
            from net import spotify_devices

            device = await spotify_devices.find(self.spotify, now, wanted)
        finally:
            rare.drop("net.spotify_devices")
        self.device_id = device["id"] if device else None
        return device

    async def start(self, now, config):
        wanted = config["spotify_device"]
        if wanted and self.device_id is None and await self.resolve(now, wanted) is None:
            raise SpotifyError(DEVICE_ASLEEP, wanted)
        state = await self.spotify.player(now)
        plan = start_plan(state, self.device_id, wanted, config["if_busy"])
        if plan == "busy":
            return session.BUSY
        self.started_context = state and state.get("context.uri")
        if plan == "adopt":
            return session.ADOPTED
        if plan == "transfer":
            await self.spotify.transfer(now, self.device_id)
        else:
            await self._play(now, wanted, config["playlist_uri"])
        if config["volume"] is not None:
            await self.spotify.set_volume(now, self.device_id, config["volume"])
        return session.PLAYED

    async def _play(self, now, wanted, playlist):
        try:
            await self.spotify.play(now, self.device_id, playlist)
        except SpotifyError as e:
            if e.kind != NO_DEVICE or not wanted:
                raise
            # An idle speaker drops out or comes back with a new id: look it up
            # by name and play on what Spotify lists now.
            if await self.resolve(now, wanted) is None:
                raise SpotifyError(DEVICE_ASLEEP, wanted)
            await self.spotify.play(now, self.device_id, playlist)
        if playlist:
            self.started_context = playlist

    async def stop(self, now, config):
        state = await self.spotify.player(now)
        verdict = pause_verdict(
            state, self.device_id, config["spotify_device"], self.started_context
        )
        if verdict:
            return verdict
        try:
            await self.spotify.pause(now, state.get("device.id"))
        except SpotifyError as e:
            if e.kind == REJECTED:  # paused by someone in between
                return "not_playing"
            raise
        return session.PAUSED
