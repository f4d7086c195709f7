"""One trust list per use (device/certs.py) under the real MicroPython: which roots each
use gets, and the attack they stop: a CA put on the board for update downloads (such as
`spotty ota serve`'s) must not vouch for a Spotify server, which would get the token."""

import json

from https_server import TlsServer

from host_tools.common import pki
from host_tools.sim.runtime import run_micropython

DRIVER = """
import json, socket, sys
import certs
from net import tls

out = {"roots": {use: len(certs.roots(use)) for use in certs.USES}, "tls": {}}
port = int(sys.argv[1])
for use in certs.USES:
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    try:
        conn = tls.context(certs.roots(use)).wrap_socket(s, server_hostname="localhost")
        conn.write(b"x")
        out["tls"][use] = "ok"
        conn.close()
    except (OSError, ValueError) as e:
        out["tls"][use] = "refused"
        s.close()
print(json.dumps(out))
"""


class Echo(TlsServer):
    def handle(self, conn):
        conn.recv(1)


def run_board(flash, port):
    (flash / "driver.py").write_text(DRIVER)
    proc = run_micropython(["driver.py", str(port)], cwd=flash, capture_output=True,
                           text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lay(flash, files):
    for rel, data in files.items():
        (flash / rel).parent.mkdir(parents=True, exist_ok=True)
        (flash / rel).write_bytes(data)


def test_a_ca_trusted_for_downloads_vouches_for_nothing_else(tmp_path):
    server = Echo(tmp_path)  # its CA stands for `spotty ota serve`'s
    spotify = pki.CertificateAuthority.create("Spotify's root")
    iot = pki.CertificateAuthority.create("AWS IoT's root")
    flash = tmp_path / "flash"
    lay(flash, {"ca/spotify/a.der": spotify.cert_der, "ca/iot/a.der": iot.cert_der,
                "ca/ota/serve.der": server.ca_der})
    try:
        result = run_board(flash, server.port)
    finally:
        server.close()
    assert result["roots"] == {"spotify": 1, "iot": 1, "ota": 1}
    assert result["tls"] == {"spotify": "refused", "iot": "refused", "ota": "ok"}


def test_an_empty_ota_list_means_spotifys_roots(tmp_path):
    server = Echo(tmp_path)  # e.g. a CDN on a public root Spotify's list has too
    flash = tmp_path / "flash"
    lay(flash, {"ca/spotify/a.der": server.ca_der,
                "ca/iot/a.der": pki.CertificateAuthority.create("iot").cert_der})
    (flash / "ca" / "ota").mkdir()
    try:
        result = run_board(flash, server.port)
    finally:
        server.close()
    assert result["roots"] == {"spotify": 1, "iot": 1, "ota": 1}
    assert result["tls"] == {"spotify": "ok", "iot": "refused", "ota": "ok"}


def test_a_board_provisioned_before_the_lists_uses_its_roots_for_each_empty_list(tmp_path):
    server = Echo(tmp_path)
    other = pki.CertificateAuthority.create("other")
    flash = tmp_path / "flash"
    lay(flash, {"ca/old.der": server.ca_der, "ca/older.der": other.cert_der})
    try:
        legacy = run_board(flash, server.port)
        # Once a list is there (provisioning, or an update that brings ca/), it alone counts.
        lay(flash, {"ca/spotify/a.der": other.cert_der})
        mixed = run_board(flash, server.port)
    finally:
        server.close()
    assert legacy["roots"] == {"spotify": 2, "iot": 2, "ota": 2}
    assert legacy["tls"] == {"spotify": "ok", "iot": "ok", "ota": "ok"}
    assert mixed["roots"] == {"spotify": 1, "iot": 2, "ota": 1}
    assert mixed["tls"] == {"spotify": "refused", "iot": "ok", "ota": "refused"}
