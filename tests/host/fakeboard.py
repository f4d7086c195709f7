"""A stand-in for a board: `FakeBoard` (files in a dict). For one that runs code, see
`host_tools/board/unixport.py` (UnixPortLink, the unix port as a board)."""

from __future__ import annotations

import errno

from host_tools.board.transport import RemoteFile, sha256_hex


class FakeBoard:
    """A board's flash as a dict of path -> bytes, plus the directories that exist."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()
        self.resets = 0
        self.writes: list[str] = []
        self.corrupt: set[str] = set()  # paths whose next write stores wrong bytes
        for path, data in (files or {}).items():
            self.mkdir(path.rpartition("/")[0])
            self.files[path] = data

    def list_files(self) -> dict[str, RemoteFile]:
        return {p: RemoteFile(len(d), sha256_hex(d)) for p, d in self.files.items()}

    def read_file(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "not on the board", path) from None

    def write_file(self, path: str, data: bytes) -> None:
        parent = path.rpartition("/")[0]
        if parent and parent not in self.dirs:
            raise OSError(errno.ENOENT, "no such directory", parent)
        if path in self.corrupt:
            self.corrupt.discard(path)
            data = data[:-1] + bytes([data[-1] ^ 1]) if data else b"x"
        self.files[path] = bytes(data)
        self.writes.append(path)

    def mkdir(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def remove(self, path: str) -> None:
        self.files.pop(path, None)

    def exec(self, code: str, timeout_s: float = 10) -> str:
        raise NotImplementedError("FakeBoard runs no code")

    def soft_reset(self) -> None:
        self.resets += 1
