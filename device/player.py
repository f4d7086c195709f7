# Start and stop playback on the configured speaker: the Spotify calls of a
# session, with the decisions delegated to core.playback. What it must remember
# (the speaker's id, where the music started) is on the spotify_account.Account:
# this code is loaded only for Spotify's turn at the TLS connection.
import rare
from core import session
from core.playback import pause_verdict, start_plan
from spotify_account import DEVICE_ASLEEP, NO_DEVICE, NO_SPEAKER, REJECTED, SpotifyError


class Player:
    def __init__(self, spotify):
        self.spotify = spotify
        self.account = spotify.account
        # For the next start(): (player state,) that look() fetched ahead, or what it raised.
        self.looked = None

    async def resolve(self, wanted):
        """Look the speaker up by name or id; None when Spotify does not list it."""
        try:  # the import too: one that fails for want of memory must not stay half-loaded
            from net import spotify_devices

            device = await spotify_devices.find(self.spotify, wanted)
        finally:
            rare.drop("net.spotify_devices")
        self.account.device_id = device["id"] if device else None
        return device

    async def look(self, wanted):
        """The playback state, the speaker looked up first if its id is not known."""
        if not wanted:  # without a speaker every player call would reach someone's phone
            raise SpotifyError(NO_SPEAKER)
        if self.account.device_id is None and await self.resolve(wanted) is None:
            raise SpotifyError(DEVICE_ASLEEP, wanted)
        return await self.spotify.player()

    async def start(self, config):
        wanted = config["spotify_device"]
        looked, self.looked = self.looked, None
        if isinstance(looked, Exception):
            raise looked
        state = looked[0] if looked else await self.look(wanted)
        account = self.account
        plan = start_plan(state, account.device_id, wanted, config["if_busy"])
        if plan == "busy":
            return session.BUSY
        account.started_context = state and state.get("context.uri")
        account.started_on = (account.device_id, wanted)
        if plan == "adopt":
            return session.ADOPTED
        playlist = config["playlist_uri"]
        if plan == "transfer":
            await self._to_speaker(wanted, self.spotify.transfer)
        else:
            await self._to_speaker(wanted, lambda d: self.spotify.play(d, playlist))
            if playlist:
                account.started_context = playlist
        account.started_on = (account.device_id, wanted)  # after a look-up, its new id
        if config["volume"] is not None:
            await self.spotify.set_volume(account.device_id, config["volume"])
        return session.PLAYED

    async def _to_speaker(self, wanted, send):
        """await send(device_id), a command for our speaker. An idle speaker drops out or
        comes back with a new id: on a 404 it is looked up by name and sent once more."""
        try:
            await send(self.account.device_id)
        except SpotifyError as e:
            if e.kind != NO_DEVICE:
                raise
            if await self.resolve(wanted) is None:
                raise SpotifyError(DEVICE_ASLEEP, wanted)
            await send(self.account.device_id)

    async def stop(self):
        state = await self.spotify.player()
        device_id, wanted = self.account.started_on
        verdict = pause_verdict(state, device_id, wanted, self.account.started_context)
        if verdict:
            return verdict
        try:
            await self.spotify.pause(state.get("device.id"))
        except SpotifyError as e:
            if e.kind == REJECTED:  # paused by someone in between
                return "not_playing"
            raise
        return session.PAUSED
