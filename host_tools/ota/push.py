"""`spotty ota push`: ask a device for a firmware update through its shadow.

desired.ota = {"version", "url", "sha256", "size"} of a bundle built by
host_tools.ota.bundles.build and served over HTTPS (e.g. by host_tools.ota.server); the
device downloads it when idle and reports progress in reported.ota.
"""

import hashlib
from pathlib import Path

from ..aws.shadow_client import ShadowClient
from ..common import devicepath
from ..common.errors import RefusedError, SpottyError
from .bundles import read_manifest


def desired_ota(url: str, bundle_path: Path, public_key_path: Path | None = None) -> dict:
    """The desired.ota request for a bundle file, checked as the device will check it.
    With the public key, the signature and every file are verified first."""
    devicepath.install()
    from core import otadesired

    bundle_path = Path(bundle_path)
    try:
        data = bundle_path.read_bytes()
    except OSError as e:
        raise SpottyError("cannot read the bundle %s: %s" % (bundle_path, e)) from e
    manifest = read_manifest(bundle_path, public_key_path)
    request = {"version": manifest["version"], "url": url,
               "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    checked, reason = otadesired.check(request)
    if reason:
        raise RefusedError("the device would refuse this update: %s" % reason)
    return checked


def push(thing: str, url: str, bundle_path: Path, endpoint_url: str | None = None,
         public_key_path: Path | None = None, region: str | None = None) -> dict:
    """Set desired.ota for the thing; returns what was set."""
    request = desired_ota(url, bundle_path, public_key_path)
    ShadowClient(thing, endpoint_url, region).update_desired({"ota": request})
    return request


def status(thing: str, endpoint_url: str | None = None, region: str | None = None) -> dict:
    """{"desired": desired.ota or None, "reported": reported.ota or None, "firmware": ...}."""
    doc = ShadowClient(thing, endpoint_url, region).get() or {}
    state = doc.get("state", {})
    return {
        "desired": state.get("desired", {}).get("ota"),
        "reported": state.get("reported", {}).get("ota"),
        "firmware": state.get("reported", {}).get("status", {}).get("firmware"),
    }
