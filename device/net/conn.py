# One verified TLS connection to host:port, opened on demand, shared by the HTTPS
# and the MQTT client: the DNS answer is cached, every stream operation is timed
# out, and a failure becomes the client's own error type, named by kind.
import asyncio
import socket

# host -> address. A look-up blocks the event loop (MicroPython's getaddrinfo returns
# only with the answer), and on a one-TLS board the clients are made anew each turn:
# the answers are kept here, for the life of the boot, until a connection fails.
_addresses = {}


class Connection:
    def __init__(self, host, port, ssl_context, timeout_ms, error):
        """error(kind, detail, ...) -> the exception the client raises."""
        self.host = host
        self.port = port
        self._ctx = ssl_context
        self.timeout_ms = timeout_ms
        self._error = error
        self._reader = None
        self._writer = None
        self._proven = False  # has a write gone through, the TLS handshake with it?

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

    async def _open(self, kind):
        """Opens the stream; a plain socket failure is raised as `kind`."""
        host = self.host
        address = _addresses.get(host)
        if address is None:
            try:
                info = socket.getaddrinfo(host, self.port, socket.AF_INET, socket.SOCK_STREAM)
                address = _addresses[host] = address_text(info[0][-1])
            except (OSError, IndexError) as e:
                raise self._error("dns", str(e))
        self._proven = False
        try:
            self._reader, self._writer = await asyncio.wait_for_ms(
                asyncio.open_connection(address, self.port, ssl=self._ctx,
                                        server_hostname=host),
                self.timeout_ms,
            )
        except asyncio.TimeoutError:
            raise self._fail("timeout", "connect")
        except (OSError, ValueError) as e:
            raise self._fail(failure_kind(e, kind), "connect: " + str(e))

    def _fail(self, kind, detail, *more):
        """Closes the connection and returns the error to raise. A connection that
        failed before its first write went through (refused, timed out, or its TLS
        handshake) forgets the DNS answer: the name may point elsewhere by the next
        attempt."""
        if not self._proven:
            _addresses.pop(self.host, None)
        self.close()
        return self._error(kind, detail, *more)

    async def _write(self, data, kind="closed"):
        """Sends data in one write: one TLS record, as a second small record would wait
        out the peer's delayed ACK (Nagle), some 40 ms a request or message."""
        writer = self._writer
        if writer is None:  # closed by another task meanwhile
            raise self._error("closed", "not connected")
        try:
            writer.write(data)
        except (OSError, ValueError) as e:
            raise self._fail(failure_kind(e, kind), "send: " + str(e))
        try:
            await self._io(writer.drain(), self.timeout_ms, "send", kind)
        except asyncio.CancelledError:
            self.close()  # data sent in part leaves the stream out of step
            raise
        self._proven = True

    async def _io(self, awaitable, timeout_ms, what, kind="closed", idle=False):
        """One stream operation with a timeout; any failure closes the connection.
        idle: a timeout returns None. A plain socket failure is raised as `kind`."""
        try:
            return await asyncio.wait_for_ms(awaitable, timeout_ms)
        except asyncio.TimeoutError:
            if idle:
                return None
            raise self._fail("timeout", what)
        except EOFError:  # readexactly() at the end of the stream
            raise self._fail(kind, what)
        except (OSError, ValueError) as e:  # the TLS handshake happens on the first write
            raise self._fail(failure_kind(e, kind), what + ": " + str(e))


def address_text(address):
    # getaddrinfo gives ("1.2.3.4", port) on the unix port and a sockaddr
    # object on bare-metal ports; inet_ntop turns the latter into text.
    if isinstance(address, tuple):
        return address[0]
    return socket.inet_ntop(socket.AF_INET, address[4:8])


def failure_kind(error, kind):
    """mbedTLS reports certificate problems as ValueError and its own failures as
    OSError with a negative code: "tls"; anything else is a plain socket `kind`."""
    code = error.args[0] if error.args else None
    if isinstance(error, ValueError) or (isinstance(code, int) and code < -0x1000):
        return "tls"
    return kind
