"""certs/: the public CA roots the device trusts, checked against certifi and MicroPython."""

from pathlib import Path

import pytest
from cryptography import x509

from host_tools.aws.provision import ca_roots_der
from host_tools.common.devicepath import REPO
from host_tools.sim.runtime import run_micropython

CERTS = REPO / "certs"


def test_committed_roots_match_certifi():
    expected = {Path(name).name: der for name, der in ca_roots_der().items()}
    committed = {p.name: p.read_bytes() for p in CERTS.glob("*.der")}
    assert committed == expected


# Starfield's root has serial number 0, which cryptography warns about.
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_roots_are_ca_certificates_that_micropython_loads():
    for path in CERTS.glob("*.der"):
        cert = x509.load_der_x509_certificate(path.read_bytes())
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca, path
    script = "from net import tls\n" \
             "print(len(tls.load_ca_dir(%r)), tls.context(tls.load_ca_dir(%r)) is not None)" % (
                 str(CERTS), str(CERTS))
    proc = run_micropython(["-c", script], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "3 True", proc.stdout
