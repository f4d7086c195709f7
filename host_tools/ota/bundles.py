"""Signed OTA bundles: the signing key pair, building and inspecting.

The byte layout is defined once, in the firmware's `ota.bundle`, and imported from there,
so the host writes exactly what the device's streaming verifier reads. The files come from
`board.deploy.compile_firmware`, so a bundle carries the very bytes a deploy would copy.
"""

import hashlib
import json
import time
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.utils import CryptographyDeprecationWarning

from ..board.deploy import compile_firmware
from ..common import devicepath
from ..common.errors import RefusedError, SpottyError
from ..common.private_files import make_private_dir, write_private
from .keyplace import PRIVATE_KEY_NAME, check_key_dir

PUBLIC_KEY_NAME = "ota_pub.bin"
_VERSION_CHARS = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-_")


def _format():
    devicepath.install()
    from ota import bundle

    return bundle


# --- keys -------------------------------------------------------------------------------

def keygen(directory: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Create the OTA signing key pair: a 0600 PEM private key and the device's public key
    (64 raw bytes, X || Y), in a folder created 0700. Refuses to replace an existing key
    unless told to: every device in the field trusts it, and losing it means no more
    updates for them. Refuses a folder of bundles too (keyplace.py): `ota serve` publishes
    those."""
    directory = Path(directory)
    private_path = directory / PRIVATE_KEY_NAME
    public_path = directory / PUBLIC_KEY_NAME
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists():
                raise RefusedError("%s exists; refusing to replace an OTA signing key" % path)
    check_key_dir(directory)
    make_private_dir(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(private_path, pem)
    public_path.write_bytes(public_key_bytes(key.public_key()))
    return private_path, public_path


def public_key_bytes(public_key: ec.EllipticCurvePublicKey) -> bytes:
    numbers = public_key.public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path, "the OTA signing key")
    wanted = "the signing key is %s from `spotty ota keygen`" % PRIVATE_KEY_NAME
    if len(data) == 64 and not data.startswith(b"-----"):
        raise RefusedError("%s is the OTA public key (it goes on the device): %s"
                           % (path, wanted))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise RefusedError("%s is not a PEM private key: %s" % (path, wanted)) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise RefusedError("%s is not an EC P-256 private key: %s" % (path, wanted))
    return key


def load_public_key(path: Path) -> bytes:
    data = _read(path, "the OTA public key")
    if len(data) != 64:
        raise SpottyError("%s: an OTA public key is 64 raw bytes (X || Y)" % path)
    return data


def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA P-256 over sha256(message), as the raw r || s the device expects."""
    der = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public_key)
    except ValueError:
        return False
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# --- bundles ----------------------------------------------------------------------------

def default_counter() -> int:
    """The counter of a bundle built now: the Unix time in seconds. It grows with every
    build as long as the signing machine's clock does; --counter overrides it."""
    return int(time.time())


def manifest_for(files: list, version: str, counter: int | None = None) -> dict:
    return {
        "format": _format().FORMAT,
        "version": version,
        "counter": default_counter() if counter is None else counter,
        "files": [
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for path, data in files
        ],
    }


def encode(manifest_bytes: bytes, signature: bytes, contents: list) -> bytes:
    """The bundle bytes, laid out as ota.bundle describes (no checks: tests forge with it)."""
    return _format().header(manifest_bytes) + manifest_bytes + signature + b"".join(contents)


def pack(files: list, version: str, private_key: ec.EllipticCurvePrivateKey,
         counter: int | None = None) -> bytes:
    """A signed bundle of [(path, content)]; counter: see default_counter."""
    _check_version(version)
    if counter is not None:
        check_counter(counter)
    fmt = _format()
    manifest = manifest_for(files, version, counter)
    try:
        fmt.check_manifest(manifest)
    except fmt.OtaError as e:
        raise SpottyError(
            "cannot bundle these files: %s %s" % (e.reason, e.detail)
        ) from e
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    if len(manifest_bytes) > fmt.MANIFEST_MAX:
        raise SpottyError("manifest of %d bytes is over the device's limit of %d" % (
            len(manifest_bytes), fmt.MANIFEST_MAX))
    return encode(manifest_bytes, sign(private_key, manifest_bytes), [d for _, d in files])


def build(source_dir: Path, version: str, key_path: Path, out: Path,
          ca_dir: Path | None = None, counter: int | None = None) -> dict:
    """Compile the firmware under source_dir, sign it, write the bundle to out. With
    ca_dir, its trust lists (spotify/, iot/, ota/ of *.der roots, laid out as certs/)
    replace the device's (ca/) when the bundle applies.

    Returns what the shadow's desired.ota needs besides the URL."""
    private_key = load_private_key(key_path)
    files = compile_firmware(source_dir)
    if ca_dir is not None:
        files.update(ca_roots(Path(ca_dir)))
    data = pack(sorted(files.items()), version, private_key, counter)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(out.name + ".tmp")
    temp.write_bytes(data)
    temp.replace(out)
    manifest = read_manifest(out)
    return {
        "version": version,
        "counter": manifest["counter"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "files": manifest["files"],
    }


TRUST_LISTS = ("spotify", "iot", "ota")  # device/certs.py: one list per use


def ca_roots(ca_dir: Path) -> dict[str, bytes]:
    """ca/LIST/NAME.der -> bytes for every root in ca_dir/LIST/ (LIST: spotify, iot, ota),
    each checked to be a DER CA certificate. Spotify's and AWS IoT's lists are needed:
    the bundle replaces the device's whole ca/."""
    loose = sorted(p.name for p in ca_dir.glob("*.der"))
    if loose:
        raise SpottyError("%s: %s outside a trust list; put each root in %s/spotify/, "
                          "%s/iot/ or %s/ota/ (as in certs/)" % (
                              ca_dir, ", ".join(loose), ca_dir, ca_dir, ca_dir))
    roots = {}
    for use in TRUST_LISTS:
        found = _list_roots(ca_dir / use, "ca/%s/" % use)
        if not found and use != "ota":
            raise SpottyError("no *.der CA roots in %s: the device would trust no %s server"
                              % (ca_dir / use, "Spotify" if use == "spotify" else "AWS IoT"))
        roots.update(found)
    return roots


def _list_roots(folder: Path, prefix: str) -> dict[str, bytes]:
    roots = {}
    for path in sorted(folder.glob("*.der")):
        data = path.read_bytes()
        try:
            with warnings.catch_warnings():  # Starfield's root has serial 0: legal in 2009
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert = x509.load_der_x509_certificate(data)
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (ValueError, x509.ExtensionNotFound) as e:
            raise SpottyError("%s is not a DER CA certificate: %s" % (path, e)) from e
        if not is_ca:
            raise SpottyError("%s is not a CA certificate" % path)
        roots[prefix + path.name] = data
    return roots


def split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(manifest bytes, signature, file contents) of a bundle; SpottyError if malformed."""
    fmt = _format()
    if data[:len(fmt.MAGIC)] != fmt.MAGIC:
        raise SpottyError("not an OTA bundle (bad magic)")
    length = int.from_bytes(data[len(fmt.MAGIC):fmt.HEADER_SIZE], "big")
    end = fmt.HEADER_SIZE + length
    if not 0 < length <= fmt.MANIFEST_MAX or len(data) < end + fmt.SIGNATURE_SIZE:
        raise SpottyError("OTA bundle cut short or with a bad manifest length")
    return data[fmt.HEADER_SIZE:end], data[end:end + fmt.SIGNATURE_SIZE], data[
        end + fmt.SIGNATURE_SIZE:]


def read_manifest(path: Path, public_key_path: Path | None = None) -> dict:
    """The manifest of a bundle file. With a public key, also check the signature and
    every file's size and hash, as the device would."""
    fmt = _format()
    manifest_bytes, signature, contents = split(_read(path, "the OTA bundle"))
    try:
        manifest = json.loads(manifest_bytes)
        fmt.check_manifest(manifest)
    except ValueError as e:
        raise SpottyError("bad OTA manifest: %s" % e) from e
    except fmt.OtaError as e:
        raise SpottyError("bad OTA manifest: %s %s" % (e.reason, e.detail)) from e
    if public_key_path is not None:
        if not signature_valid(load_public_key(public_key_path), manifest_bytes, signature):
            raise SpottyError("%s: the signature does not match this public key" % path)
        _check_contents(manifest, contents)
    return manifest


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SpottyError("cannot read %s %s: %s" % (what, path, e.strerror or e)) from e


def _check_contents(manifest: dict, contents: bytes) -> None:
    offset = 0
    for entry in manifest["files"]:
        data = contents[offset:offset + entry["size"]]
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SpottyError("OTA bundle: %s is cut short or corrupt" % entry["path"])
        offset += entry["size"]
    if offset != len(contents):
        raise SpottyError("OTA bundle: %d bytes after the last file" % (len(contents) - offset))


def check_counter(counter: int) -> int:
    top = _format().COUNTER_MAX
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 < counter <= top:
        raise RefusedError("bad counter %r: a whole number 1..%d, above the last bundle's"
                           % (counter, top))
    return counter


def _check_version(version: str) -> None:
    if not version or len(version) > 32 or not set(version) <= _VERSION_CHARS:
        raise RefusedError("bad version %r: up to 32 of 0-9 A-Z a-z . + - _" % version)
