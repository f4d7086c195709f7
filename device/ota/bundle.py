# Signed firmware bundles, verified while they stream into a staging directory.
#
# Layout (all integers big-endian):
#   0       8  MAGIC
#   8       4  L: manifest length, 1..MANIFEST_MAX
#   12      L  manifest, UTF-8 JSON:
#              {"format": 1, "version": "0.2.0", "counter": 1796256000,
#               "files": [{"path": "app.mpy", "size": N, "sha256": "<hex>"}, ...]}
#   12+L   64  ECDSA P-256 signature r || s over sha256(manifest)
#   76+L  ...  the files' contents, concatenated in manifest order; nothing after
#
# "counter" only ever grows from one bundle to the next (core.otastate.stale): a
# device refuses a bundle whose counter is below the highest it has applied.
# The signature is checked before anything touches flash, so an unsigned or
# wrongly signed bundle is refused even if every hash in it matches. Each file
# is then hashed as it is written. manifest.json gets its name last (it is
# renamed from a temporary one), so a staging directory that holds it is complete.
import binascii
import hashlib
import json
import os
import struct

from micropython import const

from fsutil import make_dirs, remove_tree
from ota import p256

MAGIC = b"SPOTA\x00\x01\n"
FORMAT = const(1)
HEADER_SIZE = const(12)
SIGNATURE_SIZE = const(64)
MANIFEST_MAX = const(8192)
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
_MANIFEST_TEMP = "manifest.json.tmp"
_PATH_MAX = const(96)
_PATH_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
_VERSION_MAX = const(32)
COUNTER_MAX = 0xFFFFFFFF
_CHUNK = const(1024)

_HEAD = const(0)
_MANIFEST = const(1)
_SIGNATURE = const(2)
_FILES = const(3)
_DONE = const(4)
_FAILED = const(5)


class OtaError(Exception):
    """The one failure of an update; `reason` says which check refused it."""

    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def hex_digest(hasher):
    return binascii.hexlify(hasher.digest()).decode()


def header(manifest_bytes):
    """The bytes before the manifest: MAGIC and the manifest's length."""
    return MAGIC + struct.pack(">I", len(manifest_bytes))


def check_manifest(manifest):
    """Raise OtaError unless manifest (parsed JSON) is a well-formed format-1 manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OtaError("bad_manifest", "not a format %d manifest" % FORMAT)
    version = manifest.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= _VERSION_MAX:
        raise OtaError("bad_manifest", "version")
    counter = manifest.get("counter")  # absent in bundles older than the rule: refused later
    if counter is not None and (type(counter) is not int or not 0 < counter <= COUNTER_MAX):
        raise OtaError("bad_manifest", "counter")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise OtaError("bad_manifest", "no files")
    paths = set()
    dirs = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise OtaError("bad_manifest", "file entry")
        path = entry.get("path")
        check_path(path)
        size = entry.get("size")
        if type(size) is not int or size < 0:  # bool is an int on CPython
            raise OtaError("bad_manifest", "size of " + path)
        if not _is_sha256_hex(entry.get("sha256")):
            raise OtaError("bad_manifest", "sha256 of " + path)
        if path in paths or path in dirs:
            raise OtaError("bad_path", "duplicate " + path)
        paths.add(path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    if paths & dirs:
        raise OtaError("bad_path", "a file is also a directory")


def check_path(path):
    """A relative path that stays inside the staging directory."""
    if not isinstance(path, str) or not 0 < len(path) <= _PATH_MAX:
        raise OtaError("bad_path", "path")
    if not all(b in _PATH_BYTES for b in path.encode()):  # bytes: see otadesired
        raise OtaError("bad_path", path)
    for part in path.split("/"):
        if part in ("", ".", ".."):  # also refuses "/abs", "a//b" and "a/"
            raise OtaError("bad_path", path)
    if path in (MANIFEST_NAME, SIGNATURE_NAME, _MANIFEST_TEMP):
        raise OtaError("bad_path", "reserved name " + path)


def _is_sha256_hex(text):
    if not isinstance(text, str) or len(text) != 64:
        return False
    return all(b in b"0123456789abcdef" for b in text.encode())  # bytes: see otadesired


class Stager:
    """Feed it a bundle in chunks of any size; finish() returns the verified manifest.

    Every failure raises OtaError after removing the staging directory. The
    optional expected_size / expected_sha256 (from the shadow's desired.ota)
    are checked against the bundle as a whole.
    """

    def __init__(self, pubkey, staging_dir, expected_size=None, expected_sha256=None):
        if staging_dir.rstrip("/") in ("", "."):
            raise ValueError("staging_dir must be a directory of its own")
        self._pubkey = pubkey
        self.staging_dir = staging_dir.rstrip("/")
        self._expected_size = expected_size
        self._expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self._bundle_hash = hashlib.sha256()
        self.received = 0
        self.manifest = None
        # The manifest (several KB) is kept in the pieces it arrives in, hashed as they
        # come: one block of its size may not be found in a fragmented heap. Header and
        # signature each go into a buffer of their exact size.
        self._manifest_parts = None
        self._manifest_hash = None
        self._manifest_left = 0
        self._state = _HEAD
        self._buf = bytearray(HEADER_SIZE)
        self._filled = 0
        self._index = -1
        self._file = None
        self._file_hash = None
        self._remaining = 0
        self._touched_flash = False

    def feed(self, data):
        self._guarded(self._feed, memoryview(data))

    def finish(self):
        """Check that the bundle is complete and matches the expected size and hash."""
        self._guarded(self._finish, None)
        return self.manifest

    def abort(self):
        """Drop everything staged so far (also for the caller, e.g. when a download fails)."""
        self._state = _FAILED
        self._buf = self._manifest_parts = None
        try:
            self._close_file()
            if self._touched_flash:
                remove_tree(self.staging_dir)
        except OSError:
            pass  # what is left has no manifest.json: it will never be applied

    def _guarded(self, step, arg):
        if self._state == _FAILED:
            raise OtaError("aborted", "used after a failure")
        try:
            step(arg)
        except OSError as e:  # flash full or failing
            self.abort()
            raise OtaError("io", str(e))
        except Exception:
            self.abort()
            raise

    def _finish(self, _):
        if self._state != _DONE:
            raise OtaError("truncated", "%d bytes" % self.received)
        if self._expected_size is not None and self.received != self._expected_size:
            raise OtaError("size_mismatch", "%d bytes, expected %d" % (
                self.received, self._expected_size))
        if self._expected_sha256 and hex_digest(self._bundle_hash) != self._expected_sha256:
            raise OtaError("bundle_hash_mismatch")
        # manifest.json appears only once everything else is in place.
        base = self.staging_dir + "/"
        os.rename(base + _MANIFEST_TEMP, base + MANIFEST_NAME)

    def _feed(self, view):
        self.received += len(view)
        if self._expected_size is not None and self.received > self._expected_size:
            raise OtaError("too_long", "more than the expected %d bytes" % self._expected_size)
        self._bundle_hash.update(view)
        while len(view):
            if self._state == _FILES:
                taken = self._write(view)
            elif self._state == _MANIFEST:
                taken = self._collect_manifest(view)
            elif self._state == _DONE:
                raise OtaError("too_long", "bytes after the last file")
            else:
                taken = self._collect(view)
            view = view[taken:]

    def _collect(self, view):
        filled = self._filled
        taken = min(len(view), len(self._buf) - filled)
        self._buf[filled:filled + taken] = view[:taken]
        self._filled = filled = filled + taken
        if self._state == _HEAD:
            known = min(filled, len(MAGIC))
            if self._buf[:known] != MAGIC[:known]:
                raise OtaError("bad_magic")
        if filled == len(self._buf):
            self._advance()
        return taken

    def _collect_manifest(self, view):
        taken = min(len(view), self._manifest_left)
        piece = bytes(view[:taken])
        self._manifest_parts.append(piece)
        self._manifest_hash.update(piece)
        self._manifest_left -= taken
        if not self._manifest_left:
            self._buf = bytearray(SIGNATURE_SIZE)
            self._state = _SIGNATURE
        return taken

    def _advance(self):
        data = self._buf
        self._filled = 0
        if self._state == _HEAD:
            length = struct.unpack(">I", data[len(MAGIC):])[0]
            if not 0 < length <= MANIFEST_MAX:
                raise OtaError("bad_manifest", "length %d" % length)
            self._buf = None
            self._manifest_parts = []
            self._manifest_hash = hashlib.sha256()
            self._manifest_left = length
            self._state = _MANIFEST
        else:
            self._buf = None
            check_signature(self._pubkey, self._manifest_hash.digest(), data)
            self._start_staging(data)
            self._state = _FILES
            self._next_file()

    def _start_staging(self, signature):
        """Only now, with the signature checked, does anything go to flash. The manifest
        goes there at once (under a temporary name) and is parsed back from the file, so
        that its bytes and its parsed form are never in the heap together."""
        self._touched_flash = True
        remove_tree(self.staging_dir)
        make_dirs(self.staging_dir)
        base = self.staging_dir + "/"
        with open(base + SIGNATURE_NAME, "wb") as f:
            f.write(signature)
        with open(base + _MANIFEST_TEMP, "wb") as f:
            for part in self._manifest_parts:
                f.write(part)
        self._manifest_parts = None
        with open(base + _MANIFEST_TEMP, "rb") as f:
            self.manifest = load_manifest(f)

    def _next_file(self):
        """Open the next file; files of size 0 are completed on the spot."""
        files = self.manifest["files"]
        while True:
            self._index += 1
            if self._index == len(files):
                self._state = _DONE
                return
            entry = files[self._index]
            path = self.staging_dir + "/" + entry["path"]
            make_dirs(path.rsplit("/", 1)[0])
            self._file = open(path, "wb")
            self._file_hash = hashlib.sha256()
            self._remaining = entry["size"]
            if self._remaining:
                return
            self._end_file()

    def _write(self, view):
        taken = min(len(view), self._remaining)
        piece = view[:taken]
        self._file_hash.update(piece)
        self._file.write(piece)
        self._remaining -= taken
        if not self._remaining:
            self._end_file()
            self._next_file()
        return taken

    def _end_file(self):
        self._close_file()
        entry = self.manifest["files"][self._index]
        if hex_digest(self._file_hash) != entry["sha256"]:
            raise OtaError("hash_mismatch", entry["path"])

    def _close_file(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def check_signature(pubkey, manifest_digest, signature):
    if not p256.verify(pubkey, manifest_digest, signature):
        raise OtaError("bad_signature")


def load_manifest(source):
    """Parse and check a manifest, given as bytes or as a file open for reading."""
    try:
        if isinstance(source, (bytes, bytearray)):
            manifest = json.loads(source)
        else:
            manifest = json.load(source)
    except (ValueError, UnicodeError):
        raise OtaError("bad_manifest", "not JSON")
    check_manifest(manifest)
    return manifest


def stage_stream(stream, pubkey, staging_dir, expected_size=None, expected_sha256=None):
    """Stage a bundle read from a file-like object through one 1 KB buffer."""
    stager = Stager(pubkey, staging_dir, expected_size, expected_sha256)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        try:
            count = stream.readinto(buf)
        except OSError as e:
            stager.abort()
            raise OtaError("io", str(e))
        if not count:
            return stager.finish()
        stager.feed(view[:count])


def verify_staged(pubkey, staging_dir):
    """Check a staged directory again (e.g. after a reboot, before applying it)."""
    base = staging_dir.rstrip("/") + "/"
    buf = bytearray(_CHUNK)
    try:
        with open(base + SIGNATURE_NAME, "rb") as f:
            signature = f.read(SIGNATURE_SIZE + 1)
        with open(base + MANIFEST_NAME, "rb") as f:
            # Hashed and parsed from the file: its bytes are never in the heap whole.
            digest, size = _file_digest(f, buf)
            if size > MANIFEST_MAX:
                raise OtaError("bad_manifest", "over %d bytes" % MANIFEST_MAX)
            check_signature(pubkey, digest, signature)
            f.seek(0)
            manifest = load_manifest(f)
    except OSError:
        raise OtaError("not_staged", staging_dir)
    for entry in manifest["files"]:
        try:
            with open(base + entry["path"], "rb") as f:
                digest, size = _file_digest(f, buf)
        except OSError:
            raise OtaError("not_staged", entry["path"])
        if size != entry["size"] or binascii.hexlify(digest).decode() != entry["sha256"]:
            raise OtaError("hash_mismatch", entry["path"])
    return manifest


def _file_digest(f, buf):
    """(SHA-256 digest, size) of an open file, read through buf."""
    hasher = hashlib.sha256()
    size = 0
    while True:
        count = f.readinto(buf)
        if not count:
            return hasher.digest(), size
        size += count
        hasher.update(memoryview(buf)[:count])
