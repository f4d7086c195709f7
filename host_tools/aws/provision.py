"""Provision a board: its AWS IoT thing, certificate and policy (iot_thing.py), CA roots
and secrets.

Re-running is safe: the thing, the policy and the certificate whose key is kept in
certs/devices/NAME/ are reused, never duplicated. Nothing secret is printed.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ..board.transport import Transport, read_json, sha256_hex
from ..common.devicepath import REPO
from ..common.errors import RefusedError, SpottyError
from .iot_thing import (
    POLICY_NAME,
    DeviceCertificate,
    arn_parts,
    attach,
    ensure_certificate,
    ensure_policy,
    ensure_thing,
    iot_endpoint,
    policy_document,
)

IOT_PORT = 8883  # MicroPython has no ALPN, so not 443
DEFAULT_CERTS_DIR = REPO / "certs" / "devices"

# Board file name -> subject CN of a root in certifi's bundle. One trust list per use
# (device/certs.py): ca/iot for AWS IoT, ca/spotify for Spotify, ca/ota for downloads.
CA_ROOTS = {
    # AWS IoT's ATS data endpoints.
    "ca/iot/amazon-root-ca-1.der": "Amazon Root CA 1",
    # api.spotify.com and accounts.spotify.com: DigiCert since February 2024; Spotify
    # has since been seen on a GoDaddy/Starfield chain, so both are trusted.
    "ca/spotify/digicert-global-root-g2.der": "DigiCert Global Root G2",
    "ca/spotify/starfield-root-g2.der": "Starfield Root Certificate Authority - G2",
}
OTA_CA_DIR = "ca/ota/"

CERT_DER = "iot/cert.der"
KEY_DER = "iot/key.der"
OTA_PUBLIC_KEY = "ota/pub.bin"
HARDWARE_KEYS = {"pir_pin": (0, 48), "led_pin": (0, 48), "glitch_ms": (0, 10000)}

_THING_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


# -- inputs --------------------------------------------------------------------------


def check_thing_name(thing: str) -> None:
    # Narrower than AWS allows (no ":"): the name is also a directory and an MQTT topic level.
    if not _THING_NAME.match(thing):
        raise RefusedError(
            "thing name %r: use 1-128 letters, digits, '-' or '_'" % thing
        )


def check_wifi(ssid: str, password: str) -> None:
    if not 1 <= len(ssid.encode()) <= 32:
        raise RefusedError("the Wi-Fi network name must be 1 to 32 bytes long")
    if password == "":
        return  # an open network
    is_hex_key = len(password) == 64 and all(c in "0123456789abcdefABCDEF" for c in password)
    if not (8 <= len(password) <= 63 and password.isascii()) and not is_hex_key:
        raise RefusedError(
            "the Wi-Fi password must be 8 to 63 ASCII characters (or a 64-digit hex key)"
        )


def check_hardware(hardware: dict) -> dict:
    clean = {}
    for key, value in hardware.items():
        if key not in HARDWARE_KEYS:
            raise RefusedError("device.json: unknown setting %r" % key)
        low, high = HARDWARE_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RefusedError("device.json: %s must be a whole number %d..%d" % (key, low, high))
        clean[key] = value
    return clean


def check_config(config: dict) -> dict:
    """The initial settings, validated by the firmware's own schema (a zone name for tz and
    7:00 for quiet hours are read as `config set` reads them)."""
    from ..common import settings

    accepted, _ = settings.check(config, "initial configuration refused")
    return accepted


def ota_ca_files(cas: dict[str, bytes]) -> dict[str, bytes]:
    """{file name: PEM or DER} -> the OTA trust list's board files (ca/ota/NAME.der), each
    checked to be a CA certificate."""
    from ..common.pki import pem_or_der_to_der

    files = {}
    for name, data in cas.items():
        try:
            der = pem_or_der_to_der(data)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cert = x509.load_der_x509_certificate(der)
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (ValueError, x509.ExtensionNotFound):
            is_ca = False
        if not is_ca:
            raise RefusedError("--ota-ca %s: not a CA certificate (PEM or DER)" % name)
        stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(name).name.split(".")[0]) or "ota"
        files[OTA_CA_DIR + stem + ".der"] = der
    return files


def check_ota_key(key: bytes) -> bytes:
    if len(key) != 64:
        raise RefusedError("the OTA public key must be 64 raw bytes (X || Y of a P-256 key)")
    return key


# -- CA roots ------------------------------------------------------------------------


def _load_each(bundle_text: str) -> list[x509.Certificate]:
    """Every certificate that parses: one odd entry must not hide the others."""
    end = "-----END CERTIFICATE-----"
    certs = []
    for block in bundle_text.split(end)[:-1]:
        with warnings.catch_warnings():
            # Starfield's G2 root has serial number 0, which cryptography now warns about.
            warnings.simplefilter("ignore")
            try:
                certs.append(x509.load_pem_x509_certificate((block + end).encode()))
            except ValueError:
                continue
    return certs


def ca_roots_der(bundle: Path | None = None) -> dict[str, bytes]:
    """Board path -> DER of each root in CA_ROOTS, taken from certifi's bundle."""
    if bundle is None:
        import certifi

        bundle = Path(certifi.where())
    try:
        text = Path(bundle).read_text()
    except OSError as e:
        raise SpottyError("cannot read the CA bundle %s: %s" % (bundle, e)) from e
    by_name: dict[str, x509.Certificate] = {}
    for cert in _load_each(text):
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or cert.subject != cert.issuer:
            continue
        name = str(names[0].value)
        if name not in by_name or cert.not_valid_after_utc > by_name[name].not_valid_after_utc:
            by_name[name] = cert
    roots = {}
    for path, name in CA_ROOTS.items():
        cert = by_name.get(name)
        if cert is None:
            raise SpottyError(
                "CA root %r is not in %s: upgrade certifi (`pip install -U certifi`)"
                % (name, bundle)
            )
        roots[path] = cert.public_bytes(serialization.Encoding.DER)
    return roots


# -- the board -----------------------------------------------------------------------


@dataclass
class Secrets:
    """What only the board may know; kept out of every summary and log."""

    wifi_ssid: str
    wifi_password: str = field(repr=False)
    spotify_client_id: str
    spotify_refresh_token: str | None = field(default=None, repr=False)


def secrets_json(secrets: Secrets, endpoint: str, thing: str) -> bytes:
    data: dict[str, Any] = {
        "wifi_ssid": secrets.wifi_ssid,
        "wifi_password": secrets.wifi_password,
        "spotify_client_id": secrets.spotify_client_id,
    }
    data.update({"iot_endpoint": endpoint, "iot_port": IOT_PORT, "thing_name": thing})
    return json.dumps(data).encode()


def write_board(transport: Transport, files: dict[str, bytes]) -> None:
    """Write in order (secrets.json last: its presence means "provisioned"), then verify."""
    for directory in sorted({p.rpartition("/")[0] for p in files if "/" in p}):
        transport.mkdir(directory)
    for path, data in files.items():
        transport.write_file(path, data)
    board = transport.list_files()
    bad = [p for p, d in files.items() if p not in board or board[p].sha256 != sha256_hex(d)]
    if bad:
        raise SpottyError("these files did not arrive intact on the board: " + ", ".join(bad))


@dataclass
class ProvisionSummary:
    thing: str
    thing_arn: str
    thing_created: bool
    certificate_id: str
    certificate_created: bool
    policy: str
    policy_status: str
    endpoint: str
    host_dir: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    client_secret_removed: bool = False

    def lines(self) -> list[str]:
        return [
            "thing        %s (%s)" % (self.thing, "created" if self.thing_created else "reused"),
            "certificate  %s (%s)" % (
                self.certificate_id, "created" if self.certificate_created else "reused"),
            "policy       %s (%s)" % (self.policy, self.policy_status),
            "endpoint     %s:%d" % (self.endpoint, IOT_PORT),
            "host copy    %s (key files 0600)" % self.host_dir,
            "on the board %s" % ", ".join(self.written),
        ] + (["kept         %s" % ", ".join(self.kept)] if self.kept else []) + (
            ["removed      %s (CA roots outside their trust list)" % ", ".join(self.removed)]
            if self.removed else []) + (
            ["removed      the Spotify client secret from secrets.json (PKCE needs none)"]
            if self.client_secret_removed else [])


def _token_file(
    transport: Transport, refresh_token: str | None, issued_at: int | None, now: int,
    kept: list[str],
) -> bytes | None:
    """token.json for the board, or None to keep the board's.

    The device rotates its refresh token and Spotify then refuses the old one, so a saved
    login (issued_at known) is never written over a token the board got later.
    """
    if not refresh_token:
        kept.append("token.json")
        return None
    if issued_at is not None:
        on_board = read_json(transport, "token.json")
        board_issued = on_board.get("issued_at") if isinstance(on_board, dict) else None
        if isinstance(board_issued, (int, float)) and board_issued >= issued_at:
            kept.append("token.json (newer than the saved Spotify login)")
            return None
    record = {"refresh_token": refresh_token, "issued_at": now if issued_at is None else issued_at}
    return json.dumps(record).encode()


def _board_files(
    roots: dict[str, bytes],
    device: DeviceCertificate,
    token: bytes | None,
    secrets_doc: bytes,
    extra: dict[str, bytes],
    existing: set[str],
    kept: list[str],
) -> dict[str, bytes]:
    """Everything to write, in order: secrets.json last."""
    files = dict(roots)
    files[CERT_DER] = device.cert_der
    files[KEY_DER] = device.key_der
    for path, data in extra.items():
        if path == "config.json" and path in existing:
            kept.append("config.json (change settings through the shadow)")
        else:
            files[path] = data
    if token is not None:
        files["token.json"] = token
    files["secrets.json"] = secrets_doc
    return files


def optional_files(
    initial_config: dict | None, hardware: dict | None, ota_public_key: bytes | None,
    ota_cas: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """The optional files, validated before anything is created anywhere."""
    extra = {"config.json": json.dumps(check_config(initial_config or {})).encode()}
    if hardware is not None:
        extra["device.json"] = json.dumps(check_hardware(hardware)).encode()
    if ota_public_key is not None:
        extra[OTA_PUBLIC_KEY] = check_ota_key(ota_public_key)
    extra.update(ota_ca_files(ota_cas or {}))
    return extra


def _stale_roots(existing: set[str], files: dict[str, bytes]) -> list[str]:
    """Roots on the board to remove: the single list of a board provisioned before the
    lists (ca/*.der, which would vouch for every use), and, when this run brings an OTA
    list, the OTA roots it does not name."""
    new_ota = any(p.startswith(OTA_CA_DIR) for p in files)
    return sorted(p for p in existing if p.startswith("ca/") and p not in files and (
        p.count("/") == 1 or new_ota and p.startswith(OTA_CA_DIR)))


def provision(
    thing: str,
    transport: Transport,
    iot_client,
    *,
    wifi_ssid: str,
    wifi_password: str,
    spotify_client_id: str,
    spotify_refresh_token: str | None = None,
    spotify_token_issued_at: int | None = None,
    initial_config: dict | None = None,
    hardware: dict | None = None,
    ota_public_key: bytes | None = None,
    ota_cas: dict[str, bytes] | None = None,
    certs_dir: Path = DEFAULT_CERTS_DIR,
    policy_name: str = POLICY_NAME,
    new_certificate: bool = False,
    now: Callable[[], float] = time.time,
    out: TextIO | None = None,
) -> ProvisionSummary:
    """Set up the thing in AWS IoT and write everything the firmware needs onto the board.

    `spotify_refresh_token` comes from the host's Spotify login (issued at
    `spotify_token_issued_at`, UTC seconds; now when not known); without one the board
    must already hold a token.json. The Wi-Fi password and the refresh token go to the
    board only; the Spotify app's client secret goes nowhere (the login is PKCE).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    secrets = Secrets(
        wifi_ssid, wifi_password, spotify_client_id, spotify_refresh_token
    )
    check_thing_name(thing)
    check_wifi(wifi_ssid, wifi_password)
    if not spotify_client_id.strip():
        raise SpottyError("a Spotify client id is needed (from developer.spotify.com)")
    extra = optional_files(initial_config, hardware, ota_public_key, ota_cas)
    roots = ca_roots_der()
    existing = set(transport.list_files())  # also proves the board answers, before AWS work
    if not spotify_refresh_token and "token.json" not in existing:
        raise SpottyError(
            "the board has no Spotify token: log in to Spotify first (`spotty spotify-login "
            "--client-id ID`)")

    host_dir = Path(certs_dir) / thing
    try:
        thing_arn, thing_created = ensure_thing(iot_client, thing)
        document = policy_document(*arn_parts(thing_arn))
        policy_status = ensure_policy(iot_client, policy_name, document)
        device, cert_created = ensure_certificate(iot_client, thing, host_dir, new_certificate)
        attach(iot_client, thing, policy_name, device.certificate_arn)
        endpoint = iot_endpoint(iot_client)
    except ClientError as e:
        error = e.response.get("Error", {})
        raise SpottyError(
            "AWS IoT refused: %s: %s" % (error.get("Code"), error.get("Message"))
        ) from e
    except BotoCoreError as e:
        raise SpottyError("cannot reach AWS IoT: %s" % e) from e

    kept: list[str] = []
    old_secrets = read_json(transport, "secrets.json") if "secrets.json" in existing else None
    token = _token_file(
        transport, spotify_refresh_token, spotify_token_issued_at, int(now()), kept
    )
    files = _board_files(
        roots, device, token, secrets_json(secrets, endpoint, thing), extra, existing, kept
    )
    write_board(transport, files)
    removed = _stale_roots(existing, files)
    for path in removed:
        transport.remove(path)
    others = sorted(p for p in existing if p.startswith("ca/") and p not in files
                    and p not in removed)
    if others:
        kept.append("other CA roots " + ", ".join(others))
    summary = ProvisionSummary(
        thing, thing_arn, thing_created, device.certificate_id, cert_created,
        policy_name, policy_status, endpoint, host_dir, list(files), kept, removed,
        isinstance(old_secrets, dict) and "spotify_client_secret" in old_secrets,
    )
    if out is not None:
        out.write("\n".join(summary.lines()) + "\n")
    return summary
