# Start and stop playback on the configured speaker: the Spotify calls of a
# session, with the decisions delegated to core.playback.
import rare
from core import session
from core.playback import pause_verdict, start_plan
from net.spotify import DEVICE_ASLEEP, NO_DEVICE, NO_SPEAKER, REJECTED, SpotifyError


class Player:
    def __init__(self, spotify):
        self.spotify = spotify
        self.device_id = None  # cached id of the configured speaker
        self.started_context = None
        # (id, name) of the speaker the session's music is on: the one stop() pauses, even
        # if the setting changed meanwhile.
        self.started_on = (None, "")

    def forget_device(self):
        self.device_id = None

    async def resolve(self, wanted):
        """Look the speaker up by name or id; None when Spotify does not list it."""
        try:  # the import too: one that fails for want of memory must not stay half-loaded
            from net import spotify_devices

            device = await spotify_devices.find(self.spotify, wanted)
        finally:
            rare.drop("net.spotify_devices")
        self.device_id = device["id"] if device else None
        return device

    async def start(self, config):
        wanted = config["spotify_device"]
        if not wanted:  # without a speaker every player call would reach someone's phone
            raise SpotifyError(NO_SPEAKER)
        if self.device_id is None and await self.resolve(wanted) is None:
            raise SpotifyError(DEVICE_ASLEEP, wanted)
        state = await self.spotify.player()
        plan = start_plan(state, self.device_id, wanted, config["if_busy"])
        if plan == "busy":
            return session.BUSY
        self.started_context = state and state.get("context.uri")
        self.started_on = (self.device_id, wanted)
        if plan == "adopt":
            return session.ADOPTED
        playlist = config["playlist_uri"]
        if plan == "transfer":
            await self._to_speaker(wanted, self.spotify.transfer)
        else:
            await self._to_speaker(wanted, lambda d: self.spotify.play(d, playlist))
            if playlist:
                self.started_context = playlist
        self.started_on = (self.device_id, wanted)
        if config["volume"] is not None:
            await self.spotify.set_volume(self.device_id, config["volume"])
        return session.PLAYED

    async def _to_speaker(self, wanted, send):
        """await send(device_id), a command for our speaker. An idle speaker drops out or
        comes back with a new id: on a 404 it is looked up by name and sent once more."""
        try:
            await send(self.device_id)
        except SpotifyError as e:
            if e.kind != NO_DEVICE:
                raise
            if await self.resolve(wanted) is None:
                raise SpotifyError(DEVICE_ASLEEP, wanted)
            await send(self.device_id)

    async def stop(self):
        state = await self.spotify.player()
        device_id, wanted = self.started_on
        verdict = pause_verdict(state, device_id, wanted, self.started_context)
        if verdict:
            return verdict
        try:
            await self.spotify.pause(state.get("device.id"))
        except SpotifyError as e:
            if e.kind == REJECTED:  # paused by someone in between
                return "not_playing"
            raise
        return session.PAUSED
