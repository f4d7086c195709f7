"""core.x509 and certs.py under the real MicroPython, on certificates made fresh with
`cryptography`: every kind of key and both time encodings, plus the earliest expiry of
a ca/ directory and a client certificate."""

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from host_tools.sim.runtime import run_micropython

UTC = datetime.timezone.utc
DRIVER = """
import binascii, json, sys
import certs
from core import x509
with open(sys.argv[1]) as f:
    cases = json.load(f)
out = []
for der in cases:
    try:
        out.append(x509.not_after(binascii.unhexlify(der)))
    except ValueError as e:
        out.append("refused: " + str(e))
print(json.dumps({"each": out, "earliest": certs.earliest_expiry(certs.files())}))
"""


def certificate(key, not_after, sign_with=None, not_before=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "case")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or datetime.datetime(2024, 1, 1, tzinfo=UTC))
               .not_valid_after(not_after))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


@pytest.fixture(scope="module")
def keys():
    return [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ed25519.Ed25519PrivateKey.generate()]


def test_not_after_matches_cryptography_on_micropython(tmp_path, keys):
    moments = [datetime.datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC),
               datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # last UTCTime
               datetime.datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),  # first GeneralizedTime
               datetime.datetime(2099, 7, 15, 8, 30, 5, tzinfo=UTC),
               datetime.datetime(2028, 2, 29, 12, 0, 0, tzinfo=UTC)]
    made = [certificate(key, moment, not_before=datetime.datetime(1999, 1, 1, tzinfo=UTC))
            for key in keys for moment in moments]
    ders = [c.public_bytes(serialization.Encoding.DER) for c in made]
    pem = made[0].public_bytes(serialization.Encoding.PEM)
    cases = ders + [pem, ders[0][:100], b""]

    # A ca/ directory and a client certificate: the earliest of them all is reported.
    (tmp_path / "ca").mkdir()
    (tmp_path / "iot").mkdir()
    soon = datetime.datetime(2027, 5, 1, 6, 0, 0, tzinfo=UTC)
    (tmp_path / "ca" / "a.der").write_bytes(ders[3])
    (tmp_path / "ca" / "b.der").write_bytes(ders[6])
    (tmp_path / "ca" / "broken.der").write_bytes(b"\x30\x03abc")
    (tmp_path / "ca" / "notes.txt").write_text("not a certificate")
    (tmp_path / "iot" / "cert.der").write_bytes(
        certificate(keys[0], soon).public_bytes(serialization.Encoding.DER))
    (tmp_path / "cases.json").write_text(json.dumps([c.hex() for c in cases]))
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = run_micropython(["driver.py", "cases.json"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    expected = [int(c.not_valid_after_utc.timestamp()) for c in made]
    assert result["each"][:len(made)] == expected
    assert all(str(r).startswith("refused: ") for r in result["each"][len(made):])
    assert result["earliest"] == [int(soon.timestamp()), "iot/cert.der"]
    assert any('"file": "ca/broken.der"' in line for line in lines)  # logged, then skipped
