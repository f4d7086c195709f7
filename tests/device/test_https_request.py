"""net/https.py requests and in-memory answers under the real MicroPython, against a
local HTTPS server: a request with a body goes out in one TLS record (head and body
sent apart would wait out the server's delayed ACK, some 40 ms a request), and
answers of every framing come back whole, within max_body. A DNS answer outlives
its client (on a one-TLS board the clients are made anew each turn) until a connect
fails."""

import json

import pytest
from https_server import TlsServer, send_answer

from host_tools.sim.runtime import run_micropython

PLAY_BODY = b'{"context_uri": "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"}'
ANSWER = json.dumps({"is_playing": True, "pad": "x" * 3000}).encode()
DRIVER = """
import asyncio, json, sys
from net import conn, https, tls

class CountingSocket:
    def __init__(self, real):
        self.real = real
        self.lookups = 0
    def __getattr__(self, name):
        return getattr(self.real, name)
    def getaddrinfo(self, *args):
        self.lookups += 1
        return self.real.getaddrinfo(*args)

conn.socket = CountingSocket(conn.socket)
with open(sys.argv[1], "rb") as f:
    ctx = tls.context([f.read()])
client = https.Client(sys.argv[2], ctx, timeout_ms=5000, max_body=4096)

async def ask(method, path, body):
    try:
        response = await client.request(method, path, {"Content-Type": "application/json"},
                                        body)
    except https.HttpError as e:
        return {"error": e.kind}
    return {"status": response.status, "body": response.body.decode()}

async def ask_with(other, path):
    try:
        return (await other.request("GET", path)).status
    except https.HttpError as e:
        return e.kind

async def main():
    out = {}
    # The first request's write waits for the TLS handshake, which joins whatever the
    # request writes: the one that shows is the next, on the kept-alive connection.
    out["/length"] = await ask("GET", "/length", None)
    out["play"] = await ask("PUT", "/v1/me/player/play", sys.argv[3].encode())
    out["pause"] = await ask("PUT", "/v1/me/player/pause", None)
    for path in ("/chunked", "/to-close", "/too-big"):
        out[path] = await ask("GET", path, None)
    out["connects"] = client.connects
    client.close()
    out["another client"] = (await ask_with(https.Client(sys.argv[2], ctx), "/length"),
                             conn.socket.lookups)
    refused = https.Client("https://127.0.0.1:1", ctx, timeout_ms=5000)
    out["refused"] = (await ask_with(refused, "/length"), conn.socket.lookups)
    out["after a failure"] = (await ask_with(https.Client(sys.argv[2], ctx), "/length"),
                              conn.socket.lookups)
    print(json.dumps(out))

asyncio.run(main())
"""


class _Server(TlsServer):
    """Notes the first TLS record of every request: SSL_read returns one record at most."""

    def __init__(self, directory):
        self.first_records = []
        super().__init__(directory)

    def handle(self, conn):
        while True:
            data = conn.recv(65536)
            if not data:
                return
            self.first_records.append(data)
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            if not self._answer(conn, head.split()[1].decode()):
                return

    def _answer(self, conn, path):
        """Send the answer for path; False when the connection must close."""
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if path.startswith("/v1/"):
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path in ("/length", "/chunked", "/to-close"):
            send_answer(conn, path[1:], ANSWER, head, piece=700)
        elif path == "/too-big":
            send_answer(conn, "length", b"x" * 5000, head)
        return path != "/to-close"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("https-request")
    server = _Server(tmp_path)
    try:
        (tmp_path / "ca.der").write_bytes(server.ca_der)
        (tmp_path / "driver.py").write_text(DRIVER)
        proc = run_micropython(
            [str(tmp_path / "driver.py"), str(tmp_path / "ca.der"),
             "https://127.0.0.1:%d" % server.port, PLAY_BODY.decode()],
            capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), server.first_records


def test_a_request_with_a_body_goes_out_in_one_tls_record(exchange):
    results, first_records = exchange
    assert results["play"] == {"status": 204, "body": ""}
    play = first_records[1]
    assert play.startswith(b"PUT /v1/me/player/play HTTP/1.1\r\n"), play
    assert b"\r\nContent-Length: %d\r\n" % len(PLAY_BODY) in play
    assert play.endswith(b"\r\n\r\n" + PLAY_BODY), play  # the head and the body together
    pause = first_records[2]
    assert pause.startswith(b"PUT /v1/me/player/pause ") and pause.endswith(
        b"Content-Length: 0\r\n\r\n")


def test_answers_of_every_framing_come_back_whole_within_max_body(exchange):
    results, _ = exchange
    for path in ("/length", "/chunked", "/to-close"):
        assert results[path] == {"status": 200, "body": ANSWER.decode()}, path
    assert results["/too-big"] == {"error": "too_large"}
    assert results["connects"] == 2  # kept alive until /to-close closed it


def test_a_dns_answer_outlives_its_client_until_a_connect_fails(exchange):
    results, _ = exchange
    assert results["another client"] == [200, 1]  # the first client's answer
    assert results["refused"][1] == 1 and results["refused"][0] != 200  # the host's answer
    assert results["after a failure"] == [200, 2]  # which the failure forgot
