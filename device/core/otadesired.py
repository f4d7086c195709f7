# What the shadow's desired.ota asks for, checked key by key, and what the
# device does about it. Set by `spotty ota push`:
#   {"version": "0.2.0", "url": "https://host/fw.bundle", "sha256": "<hex>", "size": N}
# The bundle itself is verified later, as it streams (ota.bundle); these checks
# only keep a malformed request from starting a download.
import binascii
import hashlib

from micropython import const

from core.shadowdoc import TOO_BIG

VERSION_MAX = const(32)
URL_MAX = const(512)
SIZE_MAX = const(4194304)  # a whole ESP32 flash; the stager refuses anything larger anyway
KEYS = ("version", "url", "sha256", "size")
_VERSION_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-_"

NOTHING = "nothing"  # no desired.ota
CLEAR = "clear"  # asks for what already runs, or for a job already finished: delete it
REFUSE = "refuse"
RUN = "run"
BUSY = "busy"  # the job already in hand

# Failures worth another try: the network, not the bundle. The rest are final for
# that request (same URL, size and hash): trying again would give the same answer.
# "interrupted": the download's boot ended without an outcome (power, memory).
TRANSIENT = ("timeout", "closed", "stale", "dns", "truncated", "server_error", "postponed",
             "network", "interrupted")


def check(desired):
    """(job, None) with the four keys normalised, or (None, reason)."""
    if not isinstance(desired, dict):
        return None, desired if desired is TOO_BIG else "must be an object"
    for name in desired:
        if name not in KEYS:
            return None, "unknown key: %s" % name[:32]
    version = desired.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= VERSION_MAX:
        return None, "version: a string of 1..%d characters" % VERSION_MAX
    # Bytes, not characters, here and below: each character of a str taken alone is
    # interned for good.
    if not all(b in _VERSION_BYTES for b in version.encode()):
        return None, "version: only 0-9 A-Z a-z . + - _"
    url = desired.get("url")
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > URL_MAX:
        return None, "url: https://host/path of at most %d characters" % URL_MAX
    if not url[8:].split("/", 1)[0]:
        return None, "url: no host"
    if not all(32 < b <= 126 for b in url.encode()):
        return None, "url: spaces or control characters"
    sha = desired.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not _is_hex(sha):
        return None, "sha256: 64 hex digits"
    size = desired.get("size")
    if type(size) is not int or not 0 < size <= SIZE_MAX:  # bool is an int on CPython
        return None, "size: 1..%d bytes" % SIZE_MAX
    return {"version": version, "url": url, "sha256": sha.lower(), "size": size}, None


def job_key(job):
    """A short name for one request: the same bundle from another URL is another request."""
    text = "%s|%d|%s" % (job["sha256"], job["size"], job["url"])
    return binascii.hexlify(hashlib.sha256(text.encode()).digest()[:8]).decode()


def decide(desired, running, done_key, busy_key):
    """(action, detail) for a desired.ota value (any JSON; None when absent).

    RUN: detail is (job, key). REFUSE: detail is (version or None, reason).
    CLEAR, BUSY, NOTHING: detail is None."""
    if desired is None:
        return NOTHING, None
    job, reason = check(desired)
    if job is None:
        version = desired.get("version") if isinstance(desired, dict) else None
        return REFUSE, (version if isinstance(version, str) else None, reason)
    if job["version"] == running:
        return CLEAR, None
    key = job_key(job)
    if key == done_key:
        return CLEAR, None
    if key == busy_key:
        return BUSY, None
    return RUN, (job, key)


def later(state, key):
    """(attempts so far, ms to wait) before the download of request `key`, from
    ota/state.json's "later" (core.otastate.fetched writes it)."""
    wait = state.get("later")
    if isinstance(wait, dict) and wait.get("key") == key:
        return wait.get("attempt", 0), wait.get("wait_ms", 0)
    return 0, 0


def is_transient(reason):
    return reason in TRANSIENT


def report(version, status, reason=None, previous=None):
    """The reported.ota section."""
    section = {"version": version, "status": status}
    if reason:
        section["reason"] = reason
    if previous:
        section["previous"] = previous
    return section


def _is_hex(text):
    return all(b in b"0123456789abcdefABCDEF" for b in text.encode())
