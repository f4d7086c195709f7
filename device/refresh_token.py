# The Spotify refresh token on flash (token.json): rotated by Spotify, pushed by
# the host on the device's own topic, about six months to live. Never logged.
from micropython import const

import log
import rare
import store

_FILE = "token.json"
_LIFE_DAYS = const(182)  # Spotify refresh tokens live about six months


class RefreshToken:
    def __init__(self):
        self.issued_at = None  # of the stored token, once loaded
        self.refused = None  # why the last pushed token was not taken

    def load(self):
        """The stored {"refresh_token", "issued_at"}, or (None, problem)."""
        record, problem = store.load_json(_FILE, None)
        if record is not None:
            self.issued_at = record.get("issued_at")
        return record, problem

    def rotated(self, refresh_token, utc):
        """Spotify replaced the refresh token: stored at once. If the flash refuses, the
        device goes on with the new one in memory (the old one no longer works) and says
        so; the next rotation tries again."""
        self.issued_at = utc
        try:
            store.save_json(_FILE, {"refresh_token": refresh_token, "issued_at": utc})
        except OSError as e:
            log.event("error", error="flash", detail="token.json: %s" % e)
            return
        log.event("token_rotated")

    def pushed(self, payload, utc):
        """The token in a push, stored; None if refused (the reason is in .refused).
        utc: None while the clock is not set."""
        from core import tokenpush  # a rare message: its checks are not kept loaded

        record, reason = tokenpush.check(payload, self.issued_at, utc)
        del tokenpush
        rare.drop("core.tokenpush")
        if reason:
            self.refused = reason
            log.event("token_refused", reason=reason)
            return None
        store.save_json(_FILE, record)
        self.issued_at = record["issued_at"]
        self.refused = None
        log.event("token_received", issued_at=self.issued_at)
        return record["refresh_token"]

    def days_left(self, utc):
        if self.issued_at is None:
            return None
        return _LIFE_DAYS - (utc - self.issued_at) // 86400
