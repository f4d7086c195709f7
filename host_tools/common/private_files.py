"""Files only their owner may read: keys, device credentials, the Spotify login."""

from __future__ import annotations

import os
from pathlib import Path


def user_dir() -> Path:
    """~/.config/spotty: the user's own files (the Spotify login, the OTA signing key)."""
    return Path.home() / ".config" / "spotty"


def make_private_dir(path: Path) -> Path:
    """Create the folder (and its parents) if missing; one that is created is 0700."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace the file atomically, readable by the owner only from the first byte on.

    A crash or power cut leaves the old file or the new one, never a mix: the bytes go
    to a temp file beside it, reach the disk, and only then take its name.
    """
    path = Path(path)
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
