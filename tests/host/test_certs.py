"""certs/: the public CA roots the device trusts, checked against certifi and MicroPython."""

import ssl

import pytest
from cryptography import x509

from host_tools.aws.broker import Broker
from host_tools.aws.provision import ca_roots_der
from host_tools.common import pki
from host_tools.common.devicepath import REPO
from host_tools.ota import server as ota_server
from host_tools.ota.server import OtaServer
from host_tools.sim.runtime import run_micropython
from host_tools.spotify.mock import MockSpotify

CERTS = REPO / "certs"


def test_committed_roots_match_certifi():
    expected = {name[len("ca/"):]: der for name, der in ca_roots_der().items()}
    committed = {p.relative_to(CERTS).as_posix(): p.read_bytes() for p in CERTS.rglob("*.der")
                 if p.parts[len(CERTS.parts)] != "devices"}
    assert committed == expected


# Starfield's root has serial number 0, which cryptography warns about.
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_roots_are_ca_certificates_that_micropython_loads(tmp_path):
    for path in CERTS.glob("*/*.der"):
        cert = x509.load_der_x509_certificate(path.read_bytes())
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca, path
    # certs/ is laid out as the board's ca/: each list loads into a TLS context.
    script = "import certs\nfrom net import tls\nfor use in certs.USES:\n" \
             "    print(use, len(certs.roots(use)), tls.context(certs.roots(use)) is not None)"
    (tmp_path / "ca").symlink_to(CERTS)
    proc = run_micropython(["-c", script], capture_output=True, text=True, timeout=30,
                           cwd=tmp_path)
    assert proc.stdout.split() == ["spotify", "2", "True", "iot", "1", "True",
                                   "ota", "2", "True"], proc.stdout + proc.stderr


def _handshake(ca: pki.CertificateAuthority, leaf: pki.Issued, hostname: str, tmp_path) -> str:
    """'ok', or OpenSSL's reason for refusing the chain: a client trusting ca, a server
    presenting leaf, in memory."""
    leaf.write(tmp_path, "leaf")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key.pem")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=ca.cert_der)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c = client.wrap_bio(bios[0], bios[1], server_hostname=hostname)
    s = server.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                return getattr(e, "verify_message", None) or str(e)
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
    return "ok"


@pytest.mark.parametrize("make", ["ota serve", "mock spotify", "iot broker"])
def test_a_ca_the_tools_make_vouches_only_for_the_names_it_serves(make, tmp_path):
    if make == "ota serve":
        ca = OtaServer(tmp_path).ca
    elif make == "mock spotify":
        ca = MockSpotify().ca
    else:
        broker = Broker(tmp_path / "broker")
        ca = broker.ca
    assert ca.permits(pki.LOCAL_NAMES) and not ca.permits(("accounts.spotify.com",))
    assert _handshake(ca, ca.issue_server(), "localhost", tmp_path) == "ok"
    # Whoever holds the CA's key cannot pass for Spotify (or AWS IoT) to a verifier
    # that checks name constraints, as OpenSSL does.
    for name in ("accounts.spotify.com", "abc-ats.iot.eu-west-1.amazonaws.com"):
        reason = _handshake(ca, ca.issue_server((name,)), name, tmp_path)
        assert "permitted subtree violation" in reason, reason


def test_the_constraints_follow_the_address_a_server_listens_on(tmp_path, capsys):
    assert pki.server_names("0.0.0.0") == pki.LOCAL_NAMES + pki.network_addresses()
    lan = OtaServer(tmp_path, host="192.168.1.20").ca
    assert lan.permits(("192.168.1.20", "localhost")) and not lan.permits(("192.168.1.21",))
    # A CA kept in --ca-dir serves again only for the same names; else a new one is made.
    kept = tmp_path / "ca"
    first = ota_server._load_or_create_ca(kept, pki.LOCAL_NAMES)
    assert ota_server._load_or_create_ca(kept, pki.LOCAL_NAMES).cert_der == first.cert_der
    assert capsys.readouterr().err == ""
    other = ota_server._load_or_create_ca(kept, pki.server_names("192.168.1.20"))
    assert capsys.readouterr().err == (
        "spotty: warning: the CA kept in %s does not cover localhost, 127.0.0.1, 192.168.1.20 "
        "(this computer's addresses changed?): a new one replaces it, and a board refuses "
        "this server until it has the new %s/ca.der (spotty provision --ota-ca)\n"
        % (kept, kept))
    assert other.cert_der != first.cert_der and other.permits(("192.168.1.20",))
