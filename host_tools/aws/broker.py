"""A real mosquitto with mutual TLS and per-thing ACLs: the local stand-in for AWS IoT.

Each client is known by its certificate's CN (as a thing is by its certificate in
AWS IoT), and that name is also its MQTT client id, whatever id it sends
(`use_username_as_clientid`): a thing cannot take over another thing's session or knock it
off. A thing may use `$aws/things/<its name>/#` and `spotty/<its name>/#` only, like a
policy built on `${iot:Connection.Thing.ThingName}`; the host's shadow service
(SERVICE_IDENTITY, a name no thing can have) may use all things.

A CN holds at most 64 characters and a thing name 128. A thing whose name does not fit
gets a certificate with a CN derived from it (identity_for), and that certificate is
attached to the thing (attach(), as AWS attaches a certificate to a thing): the ACL then
gives that CN the thing's topics. In AWS the CN means nothing either; the attachment does.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..common import pki
from ..common.errors import SpottyError

# Outside the thing-name alphabet (letters, digits, ':', '_', '-'): no thing can be named so.
SERVICE_IDENTITY = "iot-local.shadow-service"
HOST = "127.0.0.1"
THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")  # AWS IoT's rule
CN_MAX = 64  # X.509's upper bound for a common name (ub-common-name)
# What a certificate identity may be in the ACL file: a thing name that fits a CN, or one
# derived from a longer name (it holds "~", which no thing name has).
IDENTITY = re.compile(r"[A-Za-z0-9:_~-]{1,%d}" % CN_MAX)
ATTACHMENTS_FILE = "attachments.json"
_START_TIMEOUT_S = 10.0
_CA_MARGIN = datetime.timedelta(days=1)

_ACL = """\
# Every identity (the CN of its client certificate) may use its own thing's topics.
pattern readwrite $aws/things/%u/#
pattern readwrite spotty/%u/#

user {service}
topic readwrite $aws/things/#
topic readwrite spotty/#
"""


def identity_for(thing: str) -> str:
    """The CN of a thing's certificate: its name when it fits, else its first 47
    characters, "~" and 16 hex digits of the name's SHA-256 (64 in all)."""
    if len(thing) <= CN_MAX:
        return thing
    return thing[:47] + "~" + hashlib.sha256(thing.encode()).hexdigest()[:16]


def mosquitto_path() -> str:
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    found = shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin"
    )
    if not found:
        raise SpottyError(
            "mosquitto is not installed: `apt-get install mosquitto` "
            "(macOS: `brew install mosquitto`)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# What the CA may vouch for (name constraints): the broker's own names, and the shadow
# service's identity, a client certificate whose CN OpenSSL reads as a host name (it has
# a dot); a thing's CN has none, so name constraints leave things alone.
CA_NAMES = pki.LOCAL_NAMES + (SERVICE_IDENTITY,)


def load_ca(directory: Path) -> pki.CertificateAuthority | None:
    """The CA a broker keeps in its state directory, unless missing or about to expire."""
    cert_path, key_path = directory / "ca.pem", directory / "ca.key.pem"
    if not (cert_path.exists() and key_path.exists()):
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    fresh = cert.not_valid_after_utc > now + _CA_MARGIN
    if not fresh or not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    ca = pki.CertificateAuthority(cert, key)
    return ca if ca.permits(CA_NAMES) else None  # one made before name constraints


class Broker:
    """mosquitto on HOST:port with a throwaway CA; a context manager.

    start()/stop()/restart() keep the port and the certificates, so clients can
    reconnect to a restarted broker; freeze()/thaw() stop it answering while its
    sockets stay open, like a hung server.
    """

    def __init__(self, state_dir: Path | None = None, port: int = 0):
        self._own_dir = state_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="spotty-broker-")) if state_dir is None \
            else Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or _free_port()
        self.ca = self._load_or_create_ca()
        self.ca.issue_server().write(self.dir, "server")
        self.log_path = self.dir / "mosquitto.log"
        self.log_path.write_text("")  # this broker's log; restarts append to it
        self.conf_path = self.dir / "mosquitto.conf"
        self._write_config()
        self._proc: subprocess.Popen | None = None
        self._frozen = False
        self._attaching = threading.Lock()  # the HTTP API serves requests in threads

    def _load_or_create_ca(self) -> pki.CertificateAuthority:
        """A kept state_dir keeps its CA, so devices issued earlier still get in."""
        kept = load_ca(self.dir)
        if kept is not None:
            return kept
        ca = pki.CertificateAuthority.create("SpottyPottySense local IoT CA", CA_NAMES)
        ca.write(self.dir, "ca")
        return ca

    def attachments(self) -> dict[str, str]:
        """{certificate identity: thing} for the things whose name is not their CN."""
        try:
            return json.loads((self.dir / ATTACHMENTS_FILE).read_text())
        except FileNotFoundError:
            return {}

    def attach(self, identity: str, thing: str) -> None:
        """Gives the certificate `identity` the topics of `thing` (a running mosquitto
        reloads its ACL before this returns)."""
        if not (IDENTITY.fullmatch(identity) and THING_NAME.fullmatch(thing)):
            raise ValueError("cannot attach %r to %r" % (identity, thing))
        with self._attaching:
            self._attach(identity, thing)

    def _attach(self, identity: str, thing: str) -> None:
        attached = self.attachments()
        if attached.get(identity) == thing:
            return
        attached[identity] = thing
        (self.dir / ATTACHMENTS_FILE).write_text(json.dumps(attached))
        self._write_acl()
        if self.running and not self._frozen:
            reloads = self.log_text().count("Reloading config.")
            self._proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + _START_TIMEOUT_S
            while self.log_text().count("Reloading config.") == reloads:
                if time.monotonic() > deadline:
                    raise SpottyError("mosquitto did not reload its ACL:\n" + self._log_tail())
                time.sleep(0.02)

    def _write_acl(self) -> None:
        rules = [_ACL.format(service=SERVICE_IDENTITY)]
        for identity, thing in sorted(self.attachments().items()):
            # Checked again: a line break in either would write rules of its own.
            if IDENTITY.fullmatch(identity) and THING_NAME.fullmatch(thing):
                rules.append("user %s\ntopic readwrite $aws/things/%s/#\n"
                             "topic readwrite spotty/%s/#\n" % (identity, thing, thing))
        (self.dir / "acl").write_text("\n".join(rules))

    def _write_config(self) -> None:
        acl = self.dir / "acl"
        self._write_acl()
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            "acl_file %s" % acl,
            "listener %d %s" % (self.port, self.host),
            "cafile %s" % (self.dir / "ca.pem"),
            "certfile %s" % (self.dir / "server.pem"),
            "keyfile %s" % (self.dir / "server.key.pem"),
            "require_certificate true",
            "use_identity_as_username true",
            # AWS IoT refuses a client id that is not the certificate's thing; mosquitto has no
            # hook for that with certificate identities, so the id is taken from the CN instead.
            "use_username_as_clientid true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot read 0600 keys
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "Broker":
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [mosquitto_path(), "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SpottyError(
                    "mosquitto exited (code %s):\n%s" % (self._proc.returncode, self._log_tail())
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        tail = self._log_tail()
        self.stop()
        raise SpottyError("mosquitto did not listen on port %d:\n%s" % (self.port, tail))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            self._frozen = False
            return
        proc.terminate()
        if self._frozen:
            proc.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once resumed
            self._frozen = False
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> "Broker":
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered."""
        if self.running and not self._frozen:
            self._proc.send_signal(signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        if self._frozen and self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
        self._frozen = False

    def issue_client(self, name: str) -> pki.Issued:
        """A client certificate whose CN is the identity: a thing name or SERVICE_IDENTITY."""
        return self.ca.issue_client(name)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
