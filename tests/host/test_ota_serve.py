"""`spotty ota serve` and `ota keygen` keep the signing key off the wire: the server hands
out bundles only, refuses a folder with a private key in it and listens on loopback unless
asked; keygen writes to a private folder and refuses a folder of bundles (keyplace.py)."""

import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_tools import cli
from host_tools.common import pki
from host_tools.common.devicepath import REPO
from host_tools.common.errors import EXIT_REFUSED, RefusedError
from host_tools.ota import bundles as ota
from host_tools.ota.server import OtaServer
from host_tools.sim.runtime import run_micropython


@pytest.fixture
def keys(tmp_path):
    return ota.keygen(tmp_path / "keys")


@pytest.fixture
def www(tmp_path, keys):
    """A folder with one signed bundle, as `ota build --out www/...` leaves it."""
    folder = tmp_path / "www"
    folder.mkdir()
    data = ota.pack([("app.py", b"X = 1\n")], "1.0.0", ota.load_private_key(keys[0]))
    (folder / "fw-1.0.0.spota").write_bytes(data)
    return folder


def fetch(server, name, method="GET"):
    """(status, body) of a request over the server's own verified TLS."""
    context = ssl.create_default_context(cadata=server.ca.cert_pem.decode())
    request = urllib.request.Request(server.url_for(name), method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_only_bundles_are_served_never_the_signing_key(www, keys):
    with OtaServer(www) as server:
        # The key lands in the folder while the server runs (a `cp` in the wrong place).
        shutil.copy(keys[0], www / "ota_key.pem")
        shutil.copy(keys[0], www / "looks-like.spota")
        (www / "notes.txt").write_text("release notes\n")
        status, body = fetch(server, "fw-1.0.0.spota")
        assert status == 200 and body == (www / "fw-1.0.0.spota").read_bytes()
        for name in ("ota_key.pem", "looks-like.spota", "notes.txt", "nothing-here.spota"):
            for method in ("GET", "HEAD"):
                status, body = fetch(server, name, method)
                assert status == 404, name
                if method == "GET":
                    assert body == b"not found: this server hands out OTA bundles only\n"
                    assert b"PRIVATE KEY" not in body
        assert [r["status"] for r in server.requests()] == [200] + [404] * 8


def other_private_keys():
    """Private keys in the forms a careless folder may hold them."""
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.Encoding
    fmt = serialization.PrivateFormat
    return {
        "signing.pem": key.private_bytes(enc.PEM, fmt.PKCS8, serialization.NoEncryption()),
        "locked.pem": key.private_bytes(enc.PEM, fmt.PKCS8,
                                        serialization.BestAvailableEncryption(b"pw")),
        "bathroom.key.der": key.private_bytes(enc.DER, fmt.PKCS8, serialization.NoEncryption()),
        "old.key": key.private_bytes(enc.PEM, fmt.TraditionalOpenSSL,
                                     serialization.NoEncryption()),
    }


@pytest.mark.parametrize("name", ["ota_key.pem", *other_private_keys()])
def test_a_folder_with_a_private_key_is_not_served(www, keys, name):
    data = keys[0].read_bytes() if name == "ota_key.pem" else other_private_keys()[name]
    (www / name).write_bytes(data)
    server = OtaServer(www)
    with pytest.raises(RefusedError) as refused:
        server.start()
    assert str(refused.value) == (
        "%s holds a private key (%s): `spotty ota serve` refuses to publish a folder with a "
        "key in it; serve a folder of bundles only" % (www, name))
    assert server.url == ""


def test_public_files_beside_the_bundles_do_not_stop_the_server(www, keys):
    (www / "ota_pub.bin").write_bytes(keys[1].read_bytes())
    pki.CertificateAuthority.create("Some CA").write(www / "sub", "ca")  # a subfolder: unserved
    (www / "ca.der").write_bytes(pki.CertificateAuthority.create("Other").cert_der)
    with OtaServer(www) as server:
        assert fetch(server, "fw-1.0.0.spota")[0] == 200
        assert fetch(server, "ota_pub.bin")[0] == 404


def test_keygen_refuses_a_folder_of_bundles(www):
    with pytest.raises(RefusedError, match="holds OTA bundles .fw-1.0.0.spota., which is what "
                       "`spotty ota serve` publishes: keep the signing key apart"):
        ota.keygen(www)
    assert sorted(p.name for p in www.iterdir()) == ["fw-1.0.0.spota"]


def test_keygen_writes_to_a_private_folder_of_the_user_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli.main(["ota", "keygen"]) == 0
    folder = tmp_path / "home" / ".config" / "spotty" / "ota"
    assert "private key %s (0600)" % (folder / "ota_key.pem") in capsys.readouterr().out
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "ota_key.pem").stat().st_mode) == 0o600
    assert (folder / "ota_pub.bin").stat().st_size == 64


def test_the_cli_refuses_both_ways_in_one_line_with_exit_3(capsys, www, keys):
    assert cli.main(["ota", "keygen", str(www)]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("spotty: %s holds OTA bundles" % www) and err.count("\n") == 1
    args = ["ota", "serve", str(keys[0].parent), "--port", "0", "--ca-dir", str(www.parent / "ca")]
    assert cli.main(args) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("spotty: %s holds a private key (ota_key.pem)" % keys[0].parent)
    assert not (www.parent / "ca").exists()  # refused before anything was written
    assert cli.main(["ota", "serve", str(www / "missing"), "--port", "0"]) == 1
    assert capsys.readouterr().err == "spotty: no folder %s to serve\n" % (www / "missing")
    assert cli.main(["ota", "serve", str(www), "--port", "0", "--ca-dir", str(www)]) == 3
    assert capsys.readouterr().err == (
        "spotty: --ca-dir %s is the served folder: its CA key would sit among the bundles; "
        "keep the CA elsewhere\n" % www)
    assert sorted(p.name for p in www.iterdir()) == ["fw-1.0.0.spota"]


def listening_address(port: int) -> str:
    """The local address a TCP socket listens on at `port`, from the kernel's table."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    return socket.inet_ntoa(bytes.fromhex(address)[::-1])
                return address
    raise AssertionError("nothing listens on port %d" % port)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's socket table")
@pytest.mark.parametrize("host, listens, warned", [(None, "127.0.0.1", False),
                                                   ("0.0.0.0", "0.0.0.0", True)])
def test_serve_listens_on_loopback_unless_asked_and_warns_when_asked(www, tmp_path, host,
                                                                     listens, warned):
    argv = [sys.executable, "-m", "host_tools.cli", "ota", "serve", str(www), "--port", "0",
            "--ca-dir", str(tmp_path / "ca")] + (["--host", host] if host else [])
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        info = json.loads(proc.stdout.readline())
        port = int(info["url"].rsplit(":", 1)[1])
        assert listening_address(port) == listens
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert info.get("board_urls") == (["https://%s:%d" % (a, port)
                                       for a in pki.network_addresses()] or None
                                      if warned else None)
    if warned:
        assert err == ("spotty: warning: listening on 0.0.0.0: every machine that reaches "
                       "this one can download the bundles (bundles only: they are signed, "
                       "not secret)\n")
    else:
        assert err == ""


def test_on_every_address_a_board_on_the_network_downloads_over_verified_tls(www, tmp_path):
    addresses = pki.network_addresses()
    if not addresses:
        pytest.skip("this machine has no network address")
    for address in addresses:  # each is this machine's: it can be bound
        with socket.socket() as s:
            s.bind((address, 0))
    script = """
import asyncio, sys
from net import tls
from net.https import Client
async def get(url):
    client = Client(url, tls.context([open(sys.argv[1], "rb").read()]))
    try:
        answer = await client.request("GET", "/fw-1.0.0.spota")
        print(answer.status, len(answer.body))
    except Exception as e:
        print("refused", e)
    client.close()
for url in sys.argv[2:]:
    asyncio.run(get(url))
"""
    with OtaServer(www, host="0.0.0.0") as server:
        urls = ["https://%s:%d" % (a, server.port) for a in addresses]
        size = (www / "fw-1.0.0.spota").stat().st_size

        def board_fetch(ca_der):
            (tmp_path / "ca.der").write_bytes(ca_der)
            proc = run_micropython(["-c", script, str(tmp_path / "ca.der")] + urls,
                                   capture_output=True, text=True, timeout=60)
            return proc.stdout.splitlines(), proc.stderr

        # The device's own TLS checks each address against the certificate.
        assert board_fetch(server.ca_der)[0] == ["200 %d" % size] * len(urls)
        lines, err = board_fetch(OtaServer(www).ca_der)  # another CA: refused
        assert len(lines) == len(urls) and all(line.startswith("refused") for line in lines), \
            (lines, err)
