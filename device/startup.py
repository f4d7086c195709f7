# The app's boot: the stored configuration, Wi-Fi and the clock, the TLS contexts,
# the Spotify client and its warm-up, and the shadow link. It runs once, and the app
# drops it afterwards (rare.drop): its code would otherwise take heap for good. It is
# dropped before the shadow link's modules load, the largest step of the boot.
import log
import rare
import store
from net import tls
from spotify_account import NO_SPEAKER, Account, SpotifyError


def load_config():
    """config.json through the schema: what is missing or refused takes its default."""
    from core import config as schema

    stored, problem = store.load_json("config.json", {})
    if problem and problem != "missing":
        log.event("error", error="config_" + problem.split(":")[0])
    config, refused = schema.from_stored(stored)
    del schema
    rare.drop("core.config", "core.tzparse")
    if refused:
        log.event("config_refused", refused=refused)
    return config


async def run(app):
    """-> (secrets, the shadow link's TLS context or None) for cloud.start, which runs
    once this module is dropped; None when the board is not provisioned."""
    secrets, problem = store.load_json("secrets.json", None)
    token, token_problem = app.token.load()
    if secrets is None or token is None:
        app.set_error("not_provisioned")
        log.event("error", error="not_provisioned", detail=problem or token_problem)
        return None
    if secrets.pop("spotify_client_secret", None) is not None:
        _forget_client_secret(secrets)
    await _connect(app, secrets)  # and the clock, before anything else: TLS needs it
    app.boot_utc = app.last_heartbeat = app.board.utc()
    roots, iot_roots, app.cert_expiry = _certs()
    ctx = tls.context(roots)
    # The link's context first thing: its 1.7 KB in one piece are found before the
    # Spotify warm-up has cut the heap into smaller holes.
    link_ctx = _link_context(app, secrets, iot_roots)
    roots = iot_roots = None
    if app.health.safe:
        log.event("safe_mode", crashes=app.health.crashes)
        return secrets, link_ctx
    app.account = Account(secrets, token["refresh_token"], ctx, app.board.utc)
    # Token and speaker id now, so the motion path needs neither.
    await app.spotify_turn("call", lambda: _warm_up(app))
    return secrets, link_ctx


def _forget_client_secret(secrets):
    """A board provisioned before the login went PKCE-only holds the app's secret: off
    the flash with it. Its refresh token may be bound to the secret, and is then refused
    (needs_reauth) until the owner logs in again."""
    try:
        store.save_json("secrets.json", secrets)
        log.event("client_secret_removed")
    except OSError as e:
        log.event("error", error="flash", detail="secrets.json: %s" % e)


async def _warm_up(app):
    await app.spotify.refresh()
    wanted = app.config["spotify_device"]
    if not wanted:
        raise SpotifyError(NO_SPEAKER)  # an error state from the start: set the speaker
    if await app.player.resolve(wanted) is None:
        log.event("warning", warning="device_asleep", device=wanted)


async def _connect(app, secrets):
    import wifi

    try:
        await wifi.connect(app, secrets)
    finally:
        rare.drop("wifi")


def _certs():
    """(Spotify's roots, AWS IoT's roots, (notAfter, path) of the certificate that
    expires first); the reader is dropped."""
    import certs

    try:
        return certs.roots("spotify"), certs.roots("iot"), certs.earliest_expiry(certs.files())
    finally:
        rare.drop("certs", "core.x509")


def _link_context(app, secrets, roots):
    """The shadow link's TLS context, or None on a board not provisioned for AWS IoT."""
    if not secrets.get("thing_name") or not secrets.get("iot_endpoint"):
        return None  # Spotify only
    try:
        with open("iot/cert.der", "rb") as f:
            cert = f.read()
        with open("iot/key.der", "rb") as f:
            key = f.read()
    except OSError:
        app.set_error("iot_not_provisioned")
        return None
    return tls.context(roots, cert, key)
