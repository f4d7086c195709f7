"""Helpers for the OTA tests: firmware variants, bundles, staging, flash inspection."""

import hashlib
import json
import shutil
import threading
from pathlib import Path

from host_tools.board import deploy
from host_tools.common.devicepath import DEVICE_DIR
from host_tools.ota import bundles as ota

OLD = "0.1.0"
VERSION_LINE = 'VERSION = "%s"' % OLD


def variant(root: Path, version: str, crash: bool = False) -> Path:
    """A copy of device/ whose app says `version` (and, with crash, dies in App.__init__)."""
    source = root / ("src-" + version)
    if source.exists():
        return source
    shutil.copytree(DEVICE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    app = (source / "app.py").read_text()
    assert VERSION_LINE in app, "app.VERSION moved: update tests/e2e/otakit.py"
    app = app.replace(VERSION_LINE, 'VERSION = "%s"' % version)
    if crash:
        marker = "    def __init__(self, board, settings, boot=None):\n"
        assert marker in app
        app = app.replace(marker, marker + '        raise RuntimeError("broken build")\n')
    (source / "app.py").write_text(app)
    return source


def compiled(source: Path) -> list:
    """[(path, bytes)] of a firmware source tree, as a bundle carries it."""
    return sorted(deploy.compile_firmware(source).items())


def build(out: Path, files: list, version: str, key_path: Path, counter=None) -> bytes:
    data = ota.pack(files, version, ota.load_private_key(key_path), counter)
    out.write_bytes(data)
    return data


def stage_on_flash(flash: Path, data: bytes) -> dict:
    """Lay a bundle out in ota/staged as the device's stager would have; its manifest."""
    manifest_bytes, signature, contents = ota.split(data)
    manifest = json.loads(manifest_bytes)
    staged = flash / "ota" / "staged"
    offset = 0
    for entry in manifest["files"]:
        path = staged / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[offset:offset + entry["size"]])
        offset += entry["size"]
    (staged / "manifest.sig").write_bytes(signature)
    (staged / "manifest.json").write_bytes(manifest_bytes)
    return manifest


def matches(flash: Path, files: list) -> list:
    """The paths (main.py aside, which updates never replace) that differ on flash."""
    wrong = []
    for path, data in files:
        if path == "main.py":
            continue
        on_flash = flash / path
        if not on_flash.is_file() or on_flash.read_bytes() != data:
            wrong.append(path)
    return wrong


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ShadowWatcher:
    """Every reported.ota and desired.ota the shadow accepted, in order (read through the
    shadow service's own MQTT client, which may read every thing's topics)."""

    def __init__(self, iot, thing: str):
        self.reported = []
        self.updates = []
        self._lock = threading.Lock()
        self._stop = iot.watch("$aws/things/%s/shadow/update/accepted" % thing, self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        state = json.loads(payload).get("state", {})
        with self._lock:
            self.updates.append(state)
            reported = state.get("reported", {})
            if "ota" in reported:
                self.reported.append(reported["ota"])

    def statuses(self) -> list:
        with self._lock:
            return [r["status"] if isinstance(r, dict) else r for r in self.reported]

    def close(self) -> None:
        self._stop()
