"""host_tools.ota.bundles on CPython: the signing key pair and bundle building (the compiling is
host_tools.board.deploy's, tested in test_deploy.py)."""

import hashlib
import json
import stat
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from host_tools.board import deploy
from host_tools.common.devicepath import DEVICE_DIR
from host_tools.common.errors import SpottyError
from host_tools.ota import bundles as ota

MAGIC = b"SPOTA\x00\x01\n"


@pytest.fixture
def keypair(tmp_path):
    return ota.keygen(tmp_path / "keys")


@pytest.fixture
def source(tmp_path):
    """A small firmware tree with every kind of file the build has to sort out."""
    root = tmp_path / "device"
    files = {
        "main.py": "import app\napp.run()\n",
        "boot.py": "# boot\n",
        "app.py": "def run():\n    return 42\n",
        "core/__init__.py": "",
        "core/logic.py": "VALUE = 7\n",
        "board/__init__.py": "",
        "board/esp32.py": "NAME = 'esp32'\n",
        "board/sim.py": "NAME = 'sim'\n",
        "core/__pycache__/logic.cpython-311.py": "junk\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_keygen_writes_a_0600_private_key_and_the_raw_public_key(keypair):
    private_path, public_path = keypair
    assert private_path.name == "ota_key.pem" and public_path.name == "ota_pub.bin"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    numbers = key.public_key().public_numbers()
    assert public_path.read_bytes() == numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def test_keygen_refuses_to_replace_a_key_unless_told(keypair):
    private_path, public_path = keypair
    before = private_path.read_bytes()
    with pytest.raises(SpottyError, match="refusing"):
        ota.keygen(private_path.parent)
    assert private_path.read_bytes() == before
    ota.keygen(private_path.parent, overwrite=True)
    assert private_path.read_bytes() != before
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600


def test_a_module_that_does_not_compile_fails_the_build_by_name(source, keypair, tmp_path):
    (source / "core" / "broken.py").write_text("def f(:\n")
    with pytest.raises(SpottyError, match="core/broken.py"):
        ota.build(source, "1.0", keypair[0], tmp_path / "fw.bundle")
    assert not (tmp_path / "fw.bundle").exists()


def test_build_writes_a_signed_bundle_and_reports_it(source, keypair, tmp_path):
    private_path, public_path = keypair
    out = tmp_path / "out" / "fw-0.2.0.bundle"
    before = int(time.time())
    info = ota.build(source, "0.2.0", private_path, out)
    data = out.read_bytes()
    assert info["version"] == "0.2.0"
    assert before <= info["counter"] <= int(time.time())  # by default, the time of the build
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert [f["path"] for f in info["files"]] == [
        "app.mpy", "board/__init__.mpy", "board/esp32.mpy", "boot.py", "core/__init__.mpy",
        "core/logic.mpy", "main.py",
    ]
    # The layout: magic, manifest length, manifest, r || s over sha256(manifest), contents.
    assert data[:8] == MAGIC
    length = int.from_bytes(data[8:12], "big")
    manifest_bytes = data[12:12 + length]
    manifest = json.loads(manifest_bytes)
    assert manifest == {"format": 1, "version": "0.2.0", "counter": info["counter"],
                        "files": info["files"]}
    assert ota.signature_valid(public_path.read_bytes(), manifest_bytes,
                               data[12 + length:76 + length])
    compiled = deploy.compile_firmware(source)
    assert set(compiled) == {f["path"] for f in info["files"]}
    assert compiled["main.py"] == (source / "main.py").read_bytes()
    assert compiled["boot.py"] == (source / "boot.py").read_bytes()
    assert data[76 + length:] == b"".join(compiled[f["path"]] for f in info["files"])
    assert ota.read_manifest(out) == manifest
    assert ota.read_manifest(out, public_path) == manifest


def test_read_manifest_with_a_key_checks_signature_and_contents(source, keypair, tmp_path):
    private_path, public_path = keypair
    out = tmp_path / "fw.bundle"
    ota.build(source, "1.0", private_path, out)
    _, other_public = ota.keygen(tmp_path / "other")
    with pytest.raises(SpottyError, match="signature"):
        ota.read_manifest(out, other_public)
    data = bytearray(out.read_bytes())
    data[-1] ^= 1
    out.write_bytes(bytes(data))
    assert ota.read_manifest(out)["version"] == "1.0"  # without a key: inspection only
    with pytest.raises(SpottyError, match="corrupt"):
        ota.read_manifest(out, public_path)
    out.write_bytes(b"<html>not found</html>")
    with pytest.raises(SpottyError, match="magic"):
        ota.read_manifest(out)


def test_build_refuses_bad_versions_and_keys(source, keypair, tmp_path):
    private_path, _ = keypair
    for version in ("", "1.0 beta", "x" * 33, "1/2"):
        with pytest.raises(SpottyError, match="version"):
            ota.build(source, version, private_path, tmp_path / "fw.bundle")
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(SpottyError, match="P-256"):
        ota.build(source, "1.0", rsa_key, tmp_path / "fw.bundle")
    with pytest.raises(SpottyError, match="signing key"):
        ota.build(source, "1.0", tmp_path / "missing.pem", tmp_path / "fw.bundle")
    assert not (tmp_path / "fw.bundle").exists()


def test_the_counter_can_be_set_and_must_be_a_positive_whole_number(source, keypair, tmp_path):
    private_path, _ = keypair
    out = tmp_path / "fw.bundle"
    assert ota.build(source, "1.0", private_path, out, counter=7)["counter"] == 7
    assert ota.read_manifest(out)["counter"] == 7
    for bad in (0, -1, 2 ** 32, True):
        with pytest.raises(SpottyError, match="counter"):
            ota.build(source, "1.0", private_path, tmp_path / "bad.bundle", counter=bad)
    assert not (tmp_path / "bad.bundle").exists()


def test_the_real_firmware_bundle_leaves_out_the_sim_board(keypair, tmp_path):
    private_path, public_path = keypair
    info = ota.build(DEVICE_DIR, "0.2.0", private_path, tmp_path / "fw.bundle")
    paths = {f["path"] for f in info["files"]}
    assert "main.py" in paths and "ota/p256.mpy" in paths and "ota/bundle.mpy" in paths
    assert not any(p.startswith("board/sim") for p in paths)
    assert {p for p in paths if p.endswith(".py")} <= {"main.py", "boot.py"}
    assert ota.read_manifest(tmp_path / "fw.bundle", public_path)["files"] == info["files"]
