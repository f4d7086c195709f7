# The token endpoint (accounts.spotify.com/api/token): a new access token for the
# refresh token, about once an hour. net.spotify loads this for each renewal and
# drops it afterwards (rare.drop): its code would otherwise take heap for good.
from binascii import b2a_base64

from net.https import HttpError
from net.spotify import REAUTH, SERVER, SpotifyError, error_reason, quote


async def renew(accounts, client_id, client_secret, refresh_token, check):
    """(access token, its lifetime in ms, the refresh token Spotify rotated to or None).
    check(response) raises for an error answer the Web API's way (a 429 binds the
    device); a refused refresh token is REAUTH."""
    body = "grant_type=refresh_token&refresh_token=" + quote(refresh_token)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if client_secret:
        pair = (client_id + ":" + client_secret).encode()
        headers["Authorization"] = "Basic " + b2a_base64(pair).decode().strip()
    else:
        body += "&client_id=" + quote(client_id)
    try:
        response = await accounts.request("POST", "/api/token", headers, body.encode())
    except HttpError as e:
        raise SpotifyError(SERVER, "token: " + e.kind)
    finally:
        accounts.close()  # rare call: don't hold a second TLS connection
    if response.status == 400:
        reason, _ = error_reason(response)
        raise SpotifyError(REAUTH, reason or "token refused")
    check(response)
    try:
        data = response.json()
        return (data["access_token"], int(data.get("expires_in", 3600)) * 1000,
                data.get("refresh_token"))
    except (HttpError, KeyError, ValueError, TypeError, AttributeError):
        raise SpotifyError(SERVER, "token: malformed answer")
