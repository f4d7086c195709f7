# A small async HTTP/1.1 client over verified TLS: keep-alive, Content-Length
# and chunked bodies, every read capped, every socket operation timed out.
# A body too big for memory (a firmware bundle) can be streamed to a sink instead.
import asyncio
import json
import socket

from micropython import const

_LINE_MAX = const(1024)
_HEADERS_MAX = const(32)
_CHUNK = const(1024)


class HttpError(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, TypeError, UnicodeError):
            raise HttpError("malformed", "body is not JSON")


def _split_url(url):
    if not url.startswith("https://"):
        raise ValueError("https only: " + url)
    hostport = url[8:].split("/", 1)[0]
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        return host, int(port)
    return hostport, 443


class Client:
    def __init__(self, base_url, ssl_context, timeout_ms=10000, max_body=16384):
        self.host, self.port = _split_url(base_url)
        self._host_header = self.host if self.port == 443 else "%s:%d" % (self.host, self.port)
        self._ctx = ssl_context
        self.timeout_ms = timeout_ms
        self.max_body = max_body
        self._address = None  # cached DNS answer
        self._reader = None
        self._writer = None
        self._piece = None  # the streaming buffer, allocated on first use
        self.connects = 0
        self.requests = 0

    @property
    def connected(self):
        return self._writer is not None

    def close(self):
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            try:
                # The asyncio Stream's own close() does nothing: without this every
                # connection's socket and TLS session would live on until collected.
                writer.s.close()
            except (AttributeError, OSError):
                pass

    async def request(self, method, target, headers=None, body=None, sink=None, limit=None):
        """With sink, a 2xx answer's body is not kept: it goes to sink(memoryview) in
        pieces of at most 1 KB through one buffer (Response.body is then b""), and a
        body over `limit` bytes is refused. Whatever sink raises ends the request."""
        reused = self.connected
        for attempt in (1, 2):
            try:
                return await self._exchange(method, target, headers, body, sink, limit)
            except HttpError as e:
                self.close()
                # An idle keep-alive connection the server has dropped fails before any
                # answer arrives: that one request is worth resending on a new connection.
                if not (reused and e.kind == "stale" and attempt == 1):
                    if e.kind == "stale":
                        e.kind = "closed"
                    raise
            except Exception:
                self.close()  # e.g. the sink refused: the rest of the body is unread
                raise

    async def _exchange(self, method, target, headers, body, sink=None, limit=None):
        if not self.connected:
            await self._connect()
        self.requests += 1
        await self._send(method, target, headers, body)
        status, response_headers = await self._read_head()
        has_body = method != "HEAD" and status >= 200 and status not in (204, 304)
        if sink is not None and 200 <= status < 300:
            await self._stream_body(response_headers, sink, limit)
            data = b""
        else:
            data = await self._read_body(response_headers) if has_body else b""
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, response_headers, data)

    async def _connect(self):
        if self._address is None:
            try:
                info = socket.getaddrinfo(self.host, self.port, socket.AF_INET, socket.SOCK_STREAM)
                self._address = info[0][-1]
            except OSError as e:
                raise HttpError("dns", str(e))
        ip = _address_text(self._address)
        try:
            self._reader, self._writer = await asyncio.wait_for_ms(
                asyncio.open_connection(ip, self.port, ssl=self._ctx, server_hostname=self.host),
                self.timeout_ms,
            )
        except asyncio.TimeoutError:
            self._address = None
            raise HttpError("timeout", "connect")
        except (OSError, ValueError) as e:
            self._address = None
            raise _io_error(e, "connect")
        self.connects += 1

    async def _send(self, method, target, headers, body):
        lines = ["%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: SpottyPottySense\r\n" % (
            method, target, self._host_header)]
        for name, value in (headers or {}).items():
            lines.append("%s: %s\r\n" % (name, value))
        if body is not None or method in ("PUT", "POST"):
            lines.append("Content-Length: %d\r\n" % (len(body) if body else 0))
        lines.append("\r\n")
        try:
            self._writer.write("".join(lines).encode())
            if body:
                self._writer.write(body)
            await asyncio.wait_for_ms(self._writer.drain(), self.timeout_ms)
        except asyncio.TimeoutError:
            raise HttpError("timeout", "send")
        except (OSError, ValueError) as e:  # the TLS handshake happens on the first write
            raise _io_error(e, "stale")

    async def _readline(self):
        try:
            line = await asyncio.wait_for_ms(self._reader.readline(), self.timeout_ms)
        except asyncio.TimeoutError:
            raise HttpError("timeout", "read")
        except (OSError, ValueError) as e:
            raise _io_error(e, "closed")
        if len(line) > _LINE_MAX:
            raise HttpError("too_large", "line over %d bytes" % _LINE_MAX)
        return line

    async def _read_head(self):
        try:
            line = await self._readline()
        except HttpError as e:
            if e.kind == "closed":
                e.kind = "stale"
            raise
        if not line:
            raise HttpError("stale", "connection closed before the answer")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError("malformed", "status line")
        headers = {}
        while True:
            line = await self._readline()
            if line in (b"\r\n", b"\n"):
                return int(parts[1]), headers
            if not line:
                raise HttpError("closed", "in headers")
            if len(headers) >= _HEADERS_MAX:
                raise HttpError("too_large", "too many headers")
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise HttpError("malformed", "header line")
            headers[name.strip().lower().decode()] = value.strip().decode()

    async def _read_body(self, headers):
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked()
        length = headers.get("content-length")
        if length is None:
            data = await self._read_until_close()
            self.close()
            return data
        if not length.isdigit():
            raise HttpError("malformed", "content-length")
        size = int(length)
        if size > self.max_body:
            raise HttpError("too_large", "body of %d bytes" % size)
        return await self._read_exactly(size)

    async def _read_exactly(self, size):
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            piece = await self._read(min(_CHUNK, size - got))
            if not piece:
                raise HttpError("closed", "body cut short")
            view[got:got + len(piece)] = piece
            got += len(piece)
        return bytes(buf)

    async def _read(self, size):
        try:
            return await asyncio.wait_for_ms(self._reader.read(size), self.timeout_ms)
        except asyncio.TimeoutError:
            raise HttpError("timeout", "read")
        except (OSError, ValueError) as e:
            raise _io_error(e, "closed")

    async def _stream_body(self, headers, sink, limit):
        if "chunked" in headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size = await self._chunk_size()
                if size == 0:
                    break
                total += size
                if limit is not None and total > limit:
                    raise HttpError("too_large", "chunked body over %d bytes" % limit)
                await self._pipe(size, sink)
                if await self._readline() not in (b"\r\n", b"\n"):
                    raise HttpError("malformed", "chunk end")
            await self._skip_trailers()
            return
        length = headers.get("content-length")
        if length is None:
            await self._pipe(None, sink, limit)
            self.close()
            return
        if not length.isdigit():
            raise HttpError("malformed", "content-length")
        if limit is not None and int(length) > limit:
            raise HttpError("too_large", "body of %s bytes, over %d" % (length, limit))
        await self._pipe(int(length), sink)

    async def _pipe(self, size, sink, limit=None):
        """Pass size bytes (None: up to the end of the stream) to sink."""
        if self._piece is None:
            self._piece = bytearray(_CHUNK)
        view = memoryview(self._piece)
        left = size
        total = 0
        while left is None or left > 0:
            want = _CHUNK if left is None else min(_CHUNK, left)
            got = await self._read_into(view[:want])
            if got is None:
                continue  # only part of a TLS record so far
            if not got:
                if left is None:
                    return
                raise HttpError("closed", "body cut short")
            total += got
            if limit is not None and total > limit:
                raise HttpError("too_large", "body over %d bytes" % limit)
            sink(view[:got])
            if left is not None:
                left -= got

    async def _read_into(self, view):
        try:
            return await asyncio.wait_for_ms(self._reader.readinto(view), self.timeout_ms)
        except asyncio.TimeoutError:
            raise HttpError("timeout", "read")
        except (OSError, ValueError) as e:
            raise _io_error(e, "closed")

    async def _chunk_size(self):
        line = await self._readline()
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("malformed", "chunk size")

    async def _skip_trailers(self):
        while await self._readline() not in (b"\r\n", b"\n", b""):
            pass

    async def _read_chunked(self):
        parts = []
        total = 0
        while True:
            size = await self._chunk_size()
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise HttpError("too_large", "chunked body")
            parts.append(await self._read_exactly(size))
            if await self._readline() not in (b"\r\n", b"\n"):
                raise HttpError("malformed", "chunk end")
        await self._skip_trailers()
        return b"".join(parts)

    async def _read_until_close(self):
        parts = []
        total = 0
        while True:
            piece = await self._read(_CHUNK)
            if not piece:
                return b"".join(parts)
            total += len(piece)
            if total > self.max_body:
                raise HttpError("too_large", "body without length")
            parts.append(piece)


def _address_text(address):
    # getaddrinfo gives ("1.2.3.4", port) on the unix port and a sockaddr
    # object on bare-metal ports; inet_ntop turns the latter into text.
    if isinstance(address, tuple):
        return address[0]
    return socket.inet_ntop(socket.AF_INET, address[4:8])


def _io_error(error, kind):
    """mbedTLS reports certificate problems as ValueError and its own failures as
    OSError with a negative code; everything else is a plain socket failure."""
    code = error.args[0] if error.args else None
    if isinstance(error, ValueError) or (isinstance(code, int) and code < -0x1000):
        return HttpError("tls", str(error))
    return HttpError(kind, str(error))
