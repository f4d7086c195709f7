"""An HTTPS server on loopback for the device tests: a throwaway CA, a thread for each
connection; a subclass answers in handle(conn), e.g. with send_answer."""

import socket
import ssl
import threading

from host_tools.common import pki


class TlsServer:
    def __init__(self, directory):
        ca = pki.CertificateAuthority.create("device test CA")
        ca.issue_server().write(directory, "server")
        self.ca_der = ca.cert_der
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "server.pem", directory / "server.key.pem")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def handle(self, conn):
        raise NotImplementedError

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            self.handle(self.context.wrap_socket(raw, server_side=True))
        except OSError:
            pass
        finally:
            raw.close()

    def close(self):
        self.sock.close()


def send_answer(conn, framing, body, head="HTTP/1.1 200 OK\r\n", piece=3000):
    """Send body framed by Content-Length ("length"), in chunks of `piece` bytes with
    an extension and a trailer ("chunked"), or up to the close ("to-close")."""
    if framing == "length":
        conn.sendall((head + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
    elif framing == "chunked":
        conn.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        for start in range(0, len(body), piece):
            part = body[start:start + piece]
            conn.sendall(b"%x;ext=1\r\n" % len(part) + part + b"\r\n")
        conn.sendall(b"0\r\nX-Trailer: 1\r\n\r\n")
    elif framing == "to-close":
        conn.sendall((head + "\r\n").encode() + body)
    else:
        raise ValueError(framing)
