"""Keeping the OTA signing key off the wire: what `ota serve` publishes, where the key lives.

One rule, checked from both sides:
- `ota serve` publishes bundles only (files that begin with the bundle magic), and refuses
  to start on a folder that holds a private key;
- `ota keygen` writes to a private per-user folder by default (`~/.config/spotty/ota`,
  0700) and refuses a folder that holds bundles, which is what `ota serve` publishes.
"""

from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..common import devicepath
from ..common.errors import RefusedError
from ..common.private_files import user_dir

PRIVATE_KEY_NAME = "ota_key.pem"
_KEY_FILE_MAX = 64 * 1024  # a private key is a few hundred bytes; bundles are not keys
_PEM_KEY_MARK = b"PRIVATE KEY-----"


def default_key_dir() -> Path:
    return user_dir() / "ota"


def _magic() -> bytes:
    devicepath.install()
    from ota import bundle

    return bundle.MAGIC


def open_bundle(path: Path) -> BinaryIO | None:
    """The file opened at its start if it is an OTA bundle, else None. The caller reads
    from this very handle, so a file swapped after the check is not what gets served."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    if f.read(len(_magic())) != _magic():
        f.close()
        return None
    f.seek(0)
    return f


def bundles_in(directory: Path) -> list[str]:
    """The names of the OTA bundles directly in `directory`."""
    found = []
    for path in _files(directory):
        f = open_bundle(path)
        if f is not None:
            f.close()
            found.append(path.name)
    return found


def private_keys_in(directory: Path) -> list[str]:
    """The names of the files directly in `directory` that hold a private key (PEM of any
    kind, encrypted or not, or DER), and of any ota_key.pem."""
    return [path.name for path in _files(directory)
            if path.name == PRIVATE_KEY_NAME or _holds_private_key(path)]


def check_key_dir(directory: Path) -> None:
    """Refuse a folder for the signing key that `ota serve` would publish."""
    bundles = bundles_in(directory)
    if bundles:
        raise RefusedError(
            "%s holds OTA bundles (%s), which is what `spotty ota serve` publishes: keep the "
            "signing key apart (leave out DIR for %s)" % (
                directory, ", ".join(bundles[:3]), default_key_dir()))


def check_servable(directory: Path) -> None:
    """Refuse to publish a folder that holds a private key."""
    keys = private_keys_in(directory)
    if keys:
        raise RefusedError(
            "%s holds a private key (%s): `spotty ota serve` refuses to publish a folder "
            "with a key in it; serve a folder of bundles only" % (directory, ", ".join(keys)))


def _files(directory: Path) -> list[Path]:
    try:
        entries = sorted(Path(directory).iterdir())
    except FileNotFoundError:
        return []
    return [path for path in entries if path.is_file()]


def _holds_private_key(path: Path) -> bool:
    try:
        if path.stat().st_size > _KEY_FILE_MAX:
            return False
        data = path.read_bytes()
    except OSError:
        return False
    if _PEM_KEY_MARK in data[:128]:
        return True
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        return True  # an encrypted key: it wants a password
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True
