# A small async HTTP/1.1 client over verified TLS: keep-alive, Content-Length
# and chunked bodies, every read capped, every socket operation timed out.
# A body too big for memory (a firmware bundle) can be streamed to a sink instead.
import json

from micropython import const

from net.conn import Connection

_LINE_MAX = const(1024)
_HEADERS_MAX = const(64)
_CHUNK = const(1024)
# The headers the clients read; the rest (a dozen from Spotify) are not kept.
_KEPT_HEADERS = (b"content-length", b"transfer-encoding", b"connection", b"retry-after")


class HttpError(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class Response:
    def __init__(self, status, headers, body):
        """body: bytes or a bytearray."""
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


class Client(Connection):
    def __init__(self, base_url, ssl_context, timeout_ms=10000, max_body=4096):
        host, port = _split_url(base_url)
        super().__init__(host, port, ssl_context, timeout_ms, HttpError)
        self._host_header = host if port == 443 else "%s:%d" % (host, port)
        self.max_body = max_body
        self._piece = None  # the buffer a streamed body passes through
        self.connects = 0
        self.requests = 0

    def close(self):
        super().close()
        self._piece = None  # the heap is the shadow link's until the next request

    async def request(self, method, target, headers=None, body=None, sink=None, limit=None):
        """With sink, a 2xx answer's body is not kept: it goes to sink(buffer, n) in
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

    async def _exchange(self, method, target, headers, body, sink, limit):
        if not self.connected:
            await self._open("connect")
            self.connects += 1
        self.requests += 1
        await self._send(method, target, headers, body)
        status, response_headers = await self._read_head()
        data = b""
        if method != "HEAD" and status >= 200 and status not in (204, 304):
            if sink is not None and 200 <= status < 300:
                await self._read_body(response_headers, limit,
                                      lambda size: self._pipe(size, sink, limit))
            else:
                parts = []
                await self._read_body(response_headers, self.max_body,
                                      lambda size: self._keep(size, parts))
                # One part (a Content-Length body) is returned as read, a bytearray:
                # a copy into bytes would need the body's size in heap a second time.
                data = parts[0] if len(parts) == 1 else b"".join(parts)
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, response_headers, data)

    async def _send(self, method, target, headers, body):
        lines = ["%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: SpottyPottySense\r\n" % (
            method, target, self._host_header)]
        for name, value in (headers or {}).items():
            lines.append("%s: %s\r\n" % (name, value))
        if isinstance(body, str):
            body = body.encode()
        if body is not None or method in ("PUT", "POST"):
            lines.append("Content-Length: %d\r\n" % (len(body) if body else 0))
        lines.append("\r\n")
        data = "".join(lines).encode()
        await self._write(data + body if body else data, "stale")  # one write: see _write

    async def _readline(self):
        line = await self._io(self._reader.readline(), self.timeout_ms, "read")
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
        for _ in range(_HEADERS_MAX):
            line = await self._readline()
            if line in (b"\r\n", b"\n"):
                return int(parts[1]), headers
            if not line:
                raise HttpError("closed", "in headers")
            name, sep, value = line.partition(b":")
            name = name.strip().lower()
            if not sep or not name:
                raise HttpError("malformed", "header line")
            if name in _KEPT_HEADERS:
                headers[name.decode()] = value.strip().decode()
        raise HttpError("too_large", "too many headers")

    async def _read_body(self, headers, limit, take):
        """Frames the body; await take(size) consumes size bytes of it (None: up to the
        end of the stream, within limit). A body over limit bytes (None: any) is refused."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size = await self._chunk_size()
                if size == 0:
                    break
                total += size
                if limit is not None and total > limit:
                    raise HttpError("too_large", "chunked body over %d bytes" % limit)
                await take(size)
                if await self._readline() not in (b"\r\n", b"\n"):
                    raise HttpError("malformed", "chunk end")
            while await self._readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        length = headers.get("content-length")
        if length is None:
            await take(None)
            self.close()
            return
        if not length.isdigit():
            raise HttpError("malformed", "content-length")
        if limit is not None and int(length) > limit:
            raise HttpError("too_large", "body of %s bytes, over %d" % (length, limit))
        await take(int(length))

    async def _keep(self, size, parts):
        """Reads size bytes (None: up to the end of the stream) into parts, in memory."""
        if size is None:
            await self._pipe(None, lambda buf, n: parts.append(buf[:n]), self.max_body)
            return
        part = bytearray(size)
        view = memoryview(part)
        got = 0
        while got < size:
            got += await self._read_into(view[got:], False)
        parts.append(part)

    async def _pipe(self, size, sink, limit=None):
        """Pass size bytes (None: up to the end of the stream) to sink, through one
        buffer allocated on first use."""
        if self._piece is None:
            self._piece = bytearray(_CHUNK)
        view = memoryview(self._piece)
        left = size
        total = 0
        while left is None or left > 0:
            got = await self._read_into(view[:_CHUNK if left is None else min(_CHUNK, left)],
                                        left is None)
            if not got:
                return  # the end of the stream, where it may end
            total += got
            if limit is not None and total > limit:
                raise HttpError("too_large", "body over %d bytes" % limit)
            sink(self._piece, got)
            if left is not None:
                left -= got

    async def _read_into(self, view, may_end):
        """Bytes read into view; 0 at the end of the stream if it may_end there."""
        while True:
            got = await self._io(self._reader.readinto(view), self.timeout_ms, "read")
            if got is None:
                continue  # only part of a TLS record so far
            if not got and not may_end:
                raise HttpError("closed", "body cut short")
            return got

    async def _chunk_size(self):
        line = await self._readline()
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("malformed", "chunk size")
