"""What the subcommands share: reading the user's files, announcing a local server."""

import json
from pathlib import Path

from .errors import SpottyError


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise SpottyError("cannot read %s: %s" % (path, e.strerror)) from e
    except ValueError as e:
        raise SpottyError("%s is not valid JSON: %s" % (path, e)) from e


def read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SpottyError("cannot read %s: %s" % (path, e.strerror)) from e


def plural(count: int, word: str, words: str | None = None) -> str:
    """1 token refresh, 2 token refreshes."""
    return "%d %s" % (count, word if count == 1 else words or word + "s")


def announce(info) -> None:
    """A server's address and CA, as one JSON line (scripts read it)."""
    print(json.dumps(info), flush=True)
