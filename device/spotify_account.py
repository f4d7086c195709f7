# What the device keeps of its Spotify account between calls, and the errors a
# Spotify call ends with. On a board with one TLS connection and a shadow link, the
# client's code (net.spotify, net.https, player) is loaded only while Spotify has the
# connection (app.spotify_up/spotify_down): the heap cannot hold it beside the link's.

API_URL = "https://api.spotify.com"
ACCOUNTS_URL = "https://accounts.spotify.com"

RATE_LIMITED = "rate_limited"
SERVER = "server_error"
NO_DEVICE = "no_active_device"
DEVICE_ASLEEP = "device_asleep"
PREMIUM = "premium_required"
REAUTH = "needs_reauth"
REJECTED = "rejected"
UNAUTHORIZED = "unauthorized"
UNAVAILABLE = "device_unavailable"  # 202 Accepted: the command did not run
NOT_REGISTERED = "user_not_registered"  # not on the app's allow-list (development mode)
OWNER_PREMIUM = "owner_premium_required"  # the app owner's Premium has lapsed
NO_SPEAKER = "no_speaker"  # spotify_device is not set: no player call is made
FATAL = (PREMIUM, REAUTH)  # retrying cannot help: the owner must act
# The same, but the owner's fix shows only in a try (or a setting, for NO_SPEAKER).
OWNER = (NOT_REGISTERED, OWNER_PREMIUM, NO_SPEAKER)



class SpotifyError(Exception):
    def __init__(self, kind, detail="", retry_after_ms=None):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.retry_after_ms = retry_after_ms


class Account:
    def __init__(self, secrets, refresh_token, ctx, utc):
        """secrets: secrets.json; ctx: the TLS context for Spotify's hosts; utc() is the
        wall clock, in seconds."""
        self.api_url = secrets.get("spotify_api_url", API_URL)
        self.accounts_url = secrets.get("spotify_accounts_url", ACCOUNTS_URL)
        self.client_id = secrets["spotify_client_id"]  # PKCE: no client secret
        self.ctx = ctx
        self.refresh_token = refresh_token
        self.access_token = None
        self.expires_at = 0  # UTC
        # A 429 binds the device, not the request: no call of any kind until then (UTC).
        self.rate_limited_until = None
        self.device_id = None  # the configured speaker's id, once looked up
        self.started_context = None
        # (id, name) of the speaker the session's music is on: the one the pause goes
        # to, even if the setting changed meanwhile.
        self.started_on = (None, "")
        self.utc = utc

    def banned_s(self):
        """Seconds the device must still wait after a 429 (0: none)."""
        if self.rate_limited_until is None:
            return 0
        left = self.rate_limited_until - self.utc()
        if left <= 0:
            self.rate_limited_until = None
            return 0
        return left

    def token_valid_for(self):
        """Seconds the access token has left, in UTC: a tick kept for the token's hour
        would compare the wrong way round after days without a call."""
        if self.access_token is None:
            return -1
        return self.expires_at - self.utc()

    def set_refresh_token(self, token):
        self.refresh_token = token
        self.access_token = None
