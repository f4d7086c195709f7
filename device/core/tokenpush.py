# A Spotify refresh token pushed by the host on the device's own MQTT topic
# (spotty/<thing>/token, see cloud.token_topic; never the shadow):
# {"refresh_token": str, "issued_at": int, "replace"?: true}.
# A token older than the stored one is refused, unless the push says "replace": the
# way out when the stored token claims a date in the future (it would block every
# genuine push). It gives no new power: whoever may publish a push may date it now.
# Refusal reasons never quote the payload: it may hold the secret.
import json

from micropython import const

TOKEN_MAX = const(512)
EARLIEST = const(1577836800)  # 2020-01-01: an issued_at before it is a mistake
FUTURE_SLACK_S = const(86400)  # the host's clock may be ahead of ours, not by days
# Without a clock, the latest issued_at taken: this firmware's build date (bump it with
# app.VERSION) plus 3 years.
BUILT = const(1796083200)  # 2026-12-01
LATEST = const(BUILT + 3 * 31557600)


def check(payload, current_issued_at, now_utc):
    """({"refresh_token", "issued_at"}, None) or (None, reason)."""
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeError, TypeError):
        return None, "not JSON"
    if not isinstance(message, dict):
        return None, "not a JSON object"
    for name in message:
        if name not in ("refresh_token", "issued_at", "replace"):
            return None, "unknown key"
    token = message.get("refresh_token")
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX:
        return None, "refresh_token: a string of 1..%d characters" % TOKEN_MAX
    if not all(32 < b <= 126 for b in token.encode()):  # bytes: a str's characters are interned
        return None, "refresh_token: printable ASCII without spaces"
    issued = message.get("issued_at")
    if type(issued) is not int or issued < EARLIEST:  # bool is an int on CPython
        return None, "issued_at: unix seconds"
    if issued > (LATEST if now_utc is None else now_utc + FUTURE_SLACK_S):
        return None, "issued_at: in the future"
    replace = message.get("replace", False)
    if type(replace) is not bool:
        return None, "replace: true or false"
    if current_issued_at is not None and issued < current_issued_at and not replace:
        return None, "older than the stored token (push it with replace)"
    return {"refresh_token": token, "issued_at": issued}, None
