"""net/https.py streaming a body to a sink under the real MicroPython, against a local
HTTPS server: Content-Length, chunked and read-to-close bodies arrive whole in pieces
of at most 1 KB; a body cut short, one over the limit and a refusing sink are errors."""

import hashlib
import json

import pytest
from https_server import TlsServer, send_answer

from host_tools.sim.runtime import run_micropython

BODY = bytes(range(256)) * 300 + b"tail"  # 76804 bytes: not a multiple of anything
DRIVER = """
import asyncio, binascii, hashlib, json, sys
from net import https, tls
with open(sys.argv[1], "rb") as f:
    ctx = tls.context([f.read()])
client = https.Client(sys.argv[2], ctx, timeout_ms=5000)

async def fetch(path, limit, refuse_after):
    hasher = hashlib.sha256()
    seen = {"bytes": 0, "largest": 0}
    def sink(buf, n):
        if refuse_after is not None and seen["bytes"] >= refuse_after:
            raise RuntimeError("sink says no")
        hasher.update(memoryview(buf)[:n])
        seen["bytes"] += n
        seen["largest"] = max(seen["largest"], n)
    try:
        response = await client.request("GET", path, None, None, sink, limit)
    except https.HttpError as e:
        return {"error": e.kind, "detail": e.detail, "bytes": seen["bytes"]}
    except RuntimeError as e:
        return {"error": str(e), "connected": client.connected}
    seen.update(status=response.status, body=len(response.body),
                sha=binascii.hexlify(hasher.digest()).decode())
    return seen

async def main():
    out = {}
    with open(sys.argv[3]) as f:
        cases = json.load(f)
    for label, path, limit, refuse in cases:
        out[label] = await fetch(path, limit, refuse)
    print(json.dumps(out))

asyncio.run(main())
"""


class _Server(TlsServer):
    """A tiny HTTPS server with one way of answering per path."""

    def handle(self, conn):
        reader = conn.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            path = line.split()[1].decode()
            while reader.readline() not in (b"\r\n", b""):
                pass
            if not self._answer(conn, path):
                return

    def _answer(self, conn, path):
        """Send the answer for path; False when the connection must close."""
        if path in ("/length", "/chunked", "/to-close"):
            send_answer(conn, path[1:], BODY)
            return path != "/to-close"
        if path == "/cut":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                         + BODY[:5000])
            return False
        if path == "/missing":
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
        return True


@pytest.fixture
def results(tmp_path):
    server = _Server(tmp_path)
    try:
        cases = [["length", "/length", None, None], ["chunked", "/chunked", None, None],
                 ["missing", "/missing", None, None],
                 ["length over", "/length", len(BODY) - 1, None],
                 ["chunked over", "/chunked", 10000, None],
                 ["to-close", "/to-close", None, None], ["cut", "/cut", None, None],
                 ["refused", "/length", None, 2048], ["after", "/length", None, None]]
        (tmp_path / "ca.der").write_bytes(server.ca_der)
        (tmp_path / "driver.py").write_text(DRIVER)
        (tmp_path / "cases.json").write_text(json.dumps(cases))  # long argv crashes micropython
        proc = run_micropython(
            [str(tmp_path / "driver.py"), str(tmp_path / "ca.der"),
             "https://127.0.0.1:%d" % server.port, str(tmp_path / "cases.json")],
            capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bodies_stream_whole_in_small_pieces(results):
    whole = {"bytes": len(BODY), "sha": hashlib.sha256(BODY).hexdigest(), "body": 0,
             "status": 200}
    for name in ("length", "chunked", "to-close", "after"):
        got = results[name]
        assert {k: got[k] for k in whole} == whole, name
        assert 0 < got["largest"] <= 1024, name


def test_limits_cuts_and_sinks_end_the_request(results):
    assert results["length over"]["error"] == "too_large"
    assert results["length over"]["bytes"] == 0  # refused from Content-Length, before reading
    assert results["chunked over"]["error"] == "too_large"
    assert results["chunked over"]["bytes"] <= 10000
    assert results["cut"] == {"error": "closed", "detail": "body cut short", "bytes": 5000}
    assert results["refused"] == {"error": "sink says no", "connected": False}
    # An error answer is not streamed: it comes back whole, as a small body.
    assert results["missing"]["status"] == 404 and results["missing"]["bytes"] == 0
    assert results["missing"]["body"] == 9
