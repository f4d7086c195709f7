"""`spotty mock-spotify` and `spotty spotify-login`, and the saved login that `spotty
provision` puts on a board."""

import os
from pathlib import Path

from ..aws.shadow_client import ShadowClient
from ..common.argparsing import ENDPOINT_ENV
from ..common.cmdline import announce, read_bytes
from ..common.errors import RefusedError, UsageError
from . import login as spotify_login

REFRESH_TOKEN_ENV = "SPOTIFY_REFRESH_TOKEN"


def cmd_mock_spotify(args) -> int:
    from .mock import serve

    serve(args.host, args.port, Path(args.state_dir), announce, args.tls_delay_ms)
    return 0


def token_file(args) -> Path:
    return Path(args.token_file) if args.token_file else spotify_login.default_token_file()


def saved_refresh_token(args) -> tuple[str | None, int | None]:
    """(refresh token, issued_at): the environment's, else the saved login's, else none."""
    if os.environ.get(REFRESH_TOKEN_ENV):
        return os.environ[REFRESH_TOKEN_ENV], None
    path = token_file(args)
    if not path.exists():
        return None, None
    token = spotify_login.load_token(path)
    if token.client_id != args.spotify_client_id:
        raise RefusedError(
            "the Spotify login saved in %s is for client id %s, not %s: log in again with "
            "`spotty spotify-login --client-id %s`"
            % (path, token.client_id, args.spotify_client_id, args.spotify_client_id))
    return token.refresh_token, token.issued_at


def cmd_spotify_login(args) -> int:
    spotify_login.refuse_client_secret()
    path = token_file(args)
    client_id = args.client_id or _saved_client_id(path)
    for given, option in ((args.endpoint_url, "--endpoint-url"), (args.replace, "--replace")):
        if given and not args.thing:
            raise UsageError("%s is for the token push: it goes with --thing" % option)
    if args.thing and not args.endpoint_url:
        args.endpoint_url = os.environ.get(ENDPOINT_ENV) or None
    # Made before the browser step, so a missing AWS setup fails before the login.
    shadow = ShadowClient.from_args(args) if args.thing else None
    ca = read_bytes(args.accounts_ca) if args.accounts_ca else None
    token = spotify_login.login(
        client_id, port=args.port, accounts_url=args.accounts_url, ca=ca,
    )
    spotify_login.save_token(path, token)
    print("Spotify login saved in %s (readable by you only)" % path)
    if shadow is None:
        return 0
    spotify_login.push_token(shadow.publish, args.thing, token, args.replace)
    print("token sent to %s; waiting up to %d s for it to confirm..." % (
        args.thing, args.wait_timeout))
    spotify_login.wait_for_device(shadow.get, args.thing, token.issued_at, args.wait_timeout)
    print("%s has stored the new token" % args.thing)
    return 0


def _saved_client_id(path: Path) -> str:
    if not path.exists():
        raise UsageError("--client-id is needed: your app's client id from "
                          "developer.spotify.com")
    return spotify_login.load_token(path).client_id
