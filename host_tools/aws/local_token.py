"""The token of the local stand-in's data-plane HTTP API.

The real API checks a SigV4 signature; the stand-in checks a random token in the
`X-Spotty-Local-Token` header instead, so another user (or a web page's script) on the
machine cannot read or change the shadows or publish to a device. It is kept 0600 in
the state dir (`http-token`), so it survives restarts. spotty's own client finds it by
endpoint: stand-ins running in this process, and those `spotty iot-local` has recorded
under ~/.config/spotty/iot-local/ while it runs. Other boto3 code adds the header
with an event hook (`attach`, and the README).
"""

import hmac
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from ..common.private_files import make_private_dir, user_dir, write_private

HEADER = "X-Spotty-Local-Token"
FILE_NAME = "http-token"

_in_this_process: dict[str, str] = {}  # _key(endpoint URL) -> token


def load_or_create(path: Path) -> str:
    """The token kept at `path`, created (0600) if there is none yet."""
    path = Path(path)
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token.encode())
    return token


def matches(sent: str | None, token: str) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), token.encode())


def attach(client, token: str) -> None:
    """Make a boto3 client (`iot-data`, or `iot` for ListThings) send the token with
    every request."""
    def add_header(request, **_):
        request.headers[HEADER] = token

    client.meta.events.register("before-sign", add_header)


def attach_known(client, endpoint_url: str | None) -> None:
    """attach() the token of the stand-in at endpoint_url, if one is known."""
    token = token_for(endpoint_url)
    if token:
        attach(client, token)


def register(endpoint_url: str, token: str) -> None:
    """A stand-in this process runs: its clients here find the token."""
    _in_this_process[_key(endpoint_url)] = token


def unregister(endpoint_url: str) -> None:
    _in_this_process.pop(_key(endpoint_url), None)


def record(endpoint_url: str, token: str) -> Path:
    """For other spotty processes of this user, while `spotty iot-local` runs."""
    path = _record_path(endpoint_url)
    make_private_dir(path.parent)
    write_private(path, token.encode())
    return path


def withdraw(endpoint_url: str, token: str) -> None:
    """Remove the record, unless another stand-in on that port has replaced it."""
    path = _record_path(endpoint_url)
    try:
        if matches(path.read_text().strip(), token):
            path.unlink()
    except OSError:
        pass


def token_for(endpoint_url: str | None) -> str | None:
    """The token of the local stand-in at `endpoint_url`, if spotty knows one."""
    if not endpoint_url:
        return None
    try:
        key = _key(endpoint_url)
        return _in_this_process.get(key) or _record_path(endpoint_url).read_text().strip() or None
    except (OSError, ValueError):
        return None


def _key(endpoint_url: str) -> str:
    url = urlsplit(endpoint_url)
    host = "127.0.0.1" if url.hostname == "localhost" else url.hostname
    return "%s_%d" % (host, url.port or 80)


def _record_path(endpoint_url: str) -> Path:
    return user_dir() / "iot-local" / (_key(endpoint_url) + ".token")
