"""Throwaway certificate authorities for local stand-ins (mock Spotify, local IoT broker,
`spotty ota serve`), each limited by name constraints to the names its server answers to.

Everything is EC P-256: small, fast to handshake, and accepted by MicroPython's mbedTLS.
The device only accepts DER, so every certificate is available in both encodings.
"""

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .serving import EVERY_ADDRESS

_VALIDITY = datetime.timedelta(days=30)
LOCAL_NAMES = ("localhost", "127.0.0.1")


def _subtree(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_network(name))  # one address: a /32 or /128
    except ValueError:
        return x509.DNSName(name)


def server_names(host: str) -> tuple[str, ...]:
    """The names a local server listening on host answers to: this machine's, and host
    itself when it is a particular address (e.g. the LAN address a board connects to); on
    every address (0.0.0.0), this machine's addresses on its networks too, since a board
    checks the address it connects to against the certificate."""
    if host in LOCAL_NAMES:
        return LOCAL_NAMES
    if host in EVERY_ADDRESS:
        return LOCAL_NAMES + network_addresses()
    return LOCAL_NAMES + (host,)


def network_addresses() -> tuple[str, ...]:
    """This machine's IPv4 addresses that boards on its networks may reach: the one its
    default route leaves from, and those its host name resolves to."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the route, sends nothing
            found.append(probe.getsockname()[0])
        except OSError:  # no route: no network
            pass
    try:
        found += [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                      socket.AF_INET)]
    except OSError:
        pass
    usable = []
    for address in found:
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified) \
                and address not in usable:
            usable.append(address)
    return tuple(usable)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, stem: str) -> None:
        """stem.pem/.der (certificate) and stem.key.pem/.key.der, keys 0600."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / (stem + ".pem")).write_bytes(self.cert_pem)
        (directory / (stem + ".der")).write_bytes(self.cert_der)
        for suffix, data in ((".key.pem", self.key_pem), (".key.der", self.key_der)):
            path = directory / (stem + suffix)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_bytes(data)


class CertificateAuthority(Issued):
    @classmethod
    def create(cls, common_name: str, names=LOCAL_NAMES) -> "CertificateAuthority":
        """A CA that may vouch only for the server names (DNS names, IP addresses) in
        names: X.509 name constraints, so that one made for a local server is no use
        for accounts.spotify.com to anyone who checks them (OpenSSL, browsers). They
        are not marked critical: MicroPython's mbedTLS refuses to load a root with a
        critical name constraint (and checks none); there, one trust list per use keeps
        such a CA to its use (device/certs.py). Client certificates name a thing in
        their CN only, which DNS name constraints leave alone."""
        key = ec.generate_private_key(ec.SECP256R1())
        constraints = x509.NameConstraints(
            permitted_subtrees=[_subtree(n) for n in names], excluded_subtrees=None)
        cert = (
            _builder(common_name, _name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(constraints, critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def permits(self, names) -> bool:
        """Whether this CA's name constraints allow every one of names (False when it
        has none: a CA made before they were added vouches for anything)."""
        try:
            ext = self.cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return False
        allowed = set(ext.permitted_subtrees or ())
        return ext.excluded_subtrees is None and all(_subtree(n) in allowed for n in names)

    def issue_server(self, hostnames=LOCAL_NAMES) -> Issued:
        """A TLS server certificate for the given DNS names and IP addresses."""
        sans = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(hostnames[0], self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert, key)

    def issue_client(self, common_name: str) -> Issued:
        """A TLS client certificate whose CN is the identity (e.g. an IoT thing name)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(common_name, self.cert.subject, key.public_key())
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert, key)


def pem_or_der_to_der(data: bytes) -> bytes:
    """Accept a CA certificate in either encoding; the device needs DER."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    x509.load_der_x509_certificate(data)  # validates
    return data
