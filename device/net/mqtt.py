# A small async MQTT 3.1.1 client over mutual TLS: QoS 0 and 1, keepalive pings,
# a cap on incoming message size, a timeout on every socket operation.
# The link is read, and kept alive, only while a coroutine awaits receive(),
# publish(qos=1) or subscribe*(): call receive() well within the keepalive.
# Reconnecting is the caller's business: after any MqttError but "refused" from
# subscribe*(), `connected` is False and connect() may be called again.
import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from net import mqtt_wire as wire
from net.conn import Connection

_TOPIC_MAX = const(256)
_SCRATCH = const(256)  # discards, and every packet body but PUBLISH, go through it
_SMALL_BODY = const(10)  # CONNACK, PUBACK, PINGRESP and a SUBACK for 8 topics fit
_FOREVER_MS = const(3600000)


class MqttError(Exception):
    """kind: refused, timeout, closed, tls, protocol, dns."""

    def __init__(self, kind, detail="", code=None):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.code = code


class Client(Connection):
    def __init__(self, host, port, client_id, ssl_context, keepalive_s=60, max_message=4096,
                 timeout_ms=10000, inbox_max=4, sink=None):
        """sink(topic): None to receive a message's payload as bytes, or an object that is
        received in its place: its feed(buffer, n) takes the payload piece by piece as it
        is read, the first n bytes of the receive buffer each time, and must not raise. A
        large message then needs no buffer of its size, and max_message does not bound it."""
        super().__init__(host, port, ssl_context, timeout_ms, MqttError)
        self.sink = sink
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.max_message = max_message  # payload bytes held whole; larger ones are skipped
        self.inbox_max = inbox_max
        self.session_present = False
        self.connects = 0
        self.subscribes = 0  # SUBSCRIBE packets sent
        self.pubacks = 0  # PUBACKs sent: AWS IoT meters each as a message
        self.pings = 0
        self.skipped = 0  # messages over max_message (and no sink), read and thrown away
        self.dropped = 0  # messages pushed out of a full inbox
        self._inbox = []
        self._pending = {}  # packet id -> None until acknowledged, then True or granted qos codes
        self._packet_id = 0
        self._scratch = bytearray(_SCRATCH)
        self._view = memoryview(self._scratch)
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._last_tx = self._last_rx = ticks_ms()
        self._ping_sent = None

    def close(self):
        self._ping_sent = None
        super().close()

    async def connect(self, clean=True):
        self.close()
        packet = wire.connect(self.client_id, self.keepalive_s, clean)
        await self._open("closed")
        self._last_tx = self._last_rx = ticks_ms()
        try:
            await self._send(packet)
            await self._fill(self._view[:1], "CONNACK")
            if self._scratch[0] != wire.CONNACK:
                raise self._fail("protocol", "expected CONNACK")
            body = await self._read_small(await self._read_length())
            try:
                present, code = wire.parse_connack(body)
            except ValueError as e:
                raise self._fail("protocol", str(e))
            if code:
                raise self._fail("refused", wire.connack_reason(code), code)
        except (MqttError, asyncio.CancelledError):
            self.close()
            raise
        self.session_present = present
        self.connects += 1

    async def subscribe_all(self, topics):
        """Subscribes to [(topic, qos), ...] in as few SUBSCRIBE packets as the broker
        takes; returns the granted qos of each. A refusal raises "refused" (link stays up)."""
        granted = []
        for first in range(0, len(topics), wire.SUBSCRIBE_MAX_TOPICS):
            batch = topics[first:first + wire.SUBSCRIBE_MAX_TOPICS]
            packet_id = self._new_packet_id()
            self.subscribes += 1
            codes = await self._exchange(packet_id, wire.subscribe_all(packet_id, batch), "SUBACK")
            if len(codes) != len(batch):
                raise self._fail("protocol", "SUBACK for %d topics, not %d" % (
                    len(codes), len(batch)))
            for i, code in enumerate(codes):
                if code == wire.SUBACK_FAILURE:
                    raise MqttError("refused", "subscription to " + batch[i][0], code)
            granted.extend(codes)
        return granted

    async def publish(self, topic, payload, qos=0, retain=False):
        """QoS 1 returns once the broker has acknowledged the message."""
        if isinstance(payload, str):
            payload = payload.encode()
        if not qos:
            await self._send(wire.publish_head(topic, len(payload), 0, retain), payload)
            return
        packet_id = self._new_packet_id()
        head = wire.publish_head(topic, len(payload), qos, retain, packet_id)
        await self._exchange(packet_id, head, "PUBACK", payload)

    async def publish_json(self, topic, document):
        """Publishes document as JSON at QoS 1; returns the payload's size in bytes."""
        packet_id = self._new_packet_id()
        packet, size = wire.publish_json(topic, document, 1, False, packet_id)
        await self._exchange(packet_id, packet, "PUBACK")
        return size

    async def receive(self, timeout_ms=None):
        """(topic, payload) of the next message, or None after timeout_ms (None: no limit)."""
        if not self._inbox:
            self._require_link()
            await self._service(self._has_mail, timeout_ms)
        return self._inbox.pop(0) if self._inbox else None

    async def disconnect(self):
        if self._writer is not None:
            try:
                await self._send(wire.DISCONNECT_PACKET)
            except MqttError:
                pass
        self.close()

    # -- the link

    def _require_link(self):
        if self._writer is None:
            raise MqttError("closed", "not connected")

    def _stream(self):
        reader = self._reader
        if reader is None:  # closed by another task meanwhile
            raise MqttError("closed", "not connected")
        return reader

    async def _send(self, packet, payload=None):
        self._require_link()
        async with self._write_lock:
            if not isinstance(packet, (bytes, bytearray)):  # publish_json's pieces
                for piece in packet:
                    await self._write(piece)
            else:
                await self._write(packet + payload if payload else packet)
        self._last_tx = ticks_ms()

    async def _exchange(self, packet_id, packet, answer, payload=None):
        """Sends a packet and waits for the acknowledgement carrying packet_id."""
        pending = self._pending
        pending[packet_id] = None
        try:
            await self._send(packet, payload)
            if not await self._service(lambda: pending.get(packet_id) is not None,
                                       self.timeout_ms):
                raise self._fail("timeout", "no " + answer)
            return pending[packet_id]
        finally:
            pending.pop(packet_id, None)

    def _new_packet_id(self):
        self._packet_id = self._packet_id % 0xFFFF + 1
        return self._packet_id

    def _has_mail(self):
        return bool(self._inbox)

    # -- reading: one reader at a time, which handles whatever arrives for everyone

    async def _service(self, done, timeout_ms):
        """Reads and handles packets until done() or timeout_ms; pings when due."""
        deadline = None if timeout_ms is None else ticks_add(ticks_ms(), timeout_ms)
        while not done():
            self._require_link()
            if _left_ms(deadline) <= 0:
                return False
            if not await self._lock_reading(_left_ms(deadline)):
                continue
            try:
                if not done() and self._writer is not None:
                    wait = await self._keepalive()
                    await self._read_one(max(0, min(wait, _left_ms(deadline))))
            finally:
                self._read_lock.release()
        return True

    async def _lock_reading(self, wait_ms):
        lock = self._read_lock
        if not lock.locked():
            await lock.acquire()
            return True
        try:
            await asyncio.wait_for_ms(lock.acquire(), wait_ms)
            return True
        except asyncio.TimeoutError:
            return False

    async def _keepalive(self):
        """Sends PINGREQ when due; returns ms until the next keepalive step."""
        if not self.keepalive_s:
            return _FOREVER_MS
        now = ticks_ms()
        if self._ping_sent is not None:
            left = self.timeout_ms - ticks_diff(now, self._ping_sent)
            if left <= 0:
                raise self._fail("timeout", "no PINGRESP")
            return left
        # Silence either way counts: a client that only publishes QoS 0 still
        # needs an answer now and then to know the link is alive.
        idle = max(ticks_diff(now, self._last_tx), ticks_diff(now, self._last_rx))
        every = self.keepalive_s * 500  # half the keepalive leaves room for a late caller
        if idle < every:
            return every - idle
        await self._send(wire.PINGREQ_PACKET)
        self._ping_sent = now
        self.pings += 1
        return self.timeout_ms

    async def _read_one(self, wait_ms):
        """Reads and handles one packet, if one starts within wait_ms."""
        got = await self._io(self._stream().readinto(self._view[:1]), wait_ms, "read", idle=True)
        if got is None:  # nothing yet, or only part of a TLS record
            return
        if not got:
            raise self._fail("closed", "read")
        first = self._scratch[0]
        try:
            await self._handle(first, await self._read_length())
        except asyncio.CancelledError:
            self.close()  # a packet read in part leaves the stream out of step
            raise

    async def _read_length(self):
        remaining = 0
        done = False
        index = 0
        while not done:
            await self._fill(self._view[:1], "length")
            try:
                remaining, done = wire.length_step(remaining, index, self._scratch[0])
            except ValueError as e:
                raise self._fail("protocol", str(e))
            index += 1
        self._last_rx = ticks_ms()
        return remaining

    async def _handle(self, first, remaining):
        if first & 0xF0 == wire.PUBLISH:
            await self._on_publish(first, remaining)
            return
        body = await self._read_small(remaining)
        try:
            if first == wire.PUBACK:
                self._acknowledge(wire.parse_puback(body), True)
            elif first == wire.SUBACK:
                packet_id, granted = wire.parse_suback_all(body)
                self._acknowledge(packet_id, granted)
            elif first == wire.PINGRESP and not remaining:
                self._ping_sent = None
            else:
                raise ValueError("unexpected packet 0x%02x" % first)
        except ValueError as e:
            raise self._fail("protocol", str(e))

    def _acknowledge(self, packet_id, value):
        if packet_id in self._pending:  # else a late answer to an abandoned request
            self._pending[packet_id] = value

    async def _fill(self, view, what):
        got = 0
        while got < len(view):
            n = await self._io(self._stream().readinto(view[got:]), self.timeout_ms, what)
            if n == 0:
                raise self._fail("closed", what)
            if n:  # None: only part of a TLS record has arrived
                got += n

    async def _read_small(self, size):
        if size > _SMALL_BODY:
            raise self._fail("protocol", "packet body of %d bytes" % size)
        view = self._view[:size]
        await self._fill(view, "body")
        return view

    async def _read_bytes(self, size, what):
        """size bytes in one allocation (the stream's readexactly() would build them
        by concatenation: several blocks of growing size, for an 8 KB message)."""
        data = bytearray(size)
        await self._fill(memoryview(data), what)
        return data

    async def _discard(self, size, feed=None):
        """Reads size bytes through the scratch buffer, handing each piece to feed()."""
        while size:
            n = min(size, _SCRATCH)
            await self._fill(self._view[:n], "payload")
            if feed:
                feed(self._scratch, n)
            size -= n

    async def _on_publish(self, first, remaining):
        try:
            qos = wire.publish_qos(first)
        except ValueError as e:
            raise self._fail("protocol", str(e))
        if qos == 2:  # we never subscribe with qos 2, so the broker may not send it
            raise self._fail("protocol", "PUBLISH with qos 2")
        await self._fill(self._view[:2], "topic length")
        topic_len = wire.read_u16(self._scratch)
        try:
            size = wire.payload_length(remaining, topic_len, qos)
        except ValueError as e:
            raise self._fail("protocol", str(e))
        keep = topic_len <= _TOPIC_MAX
        topic = payload = None
        if keep:
            try:
                topic = (await self._read_bytes(topic_len, "topic")).decode()
            except UnicodeError:
                raise self._fail("protocol", "topic is not UTF-8")
        else:
            await self._discard(topic_len)
        packet_id = 0
        if qos:
            await self._fill(self._view[:2], "packet id")
            packet_id = wire.read_u16(self._scratch)
        if keep:
            payload = self.sink(topic) if self.sink else None
            keep = payload is not None or size <= self.max_message
        if not keep:
            await self._discard(size)
        elif payload is None:
            payload = await self._read_bytes(size, "payload")
        else:
            await self._discard(size, payload.feed)
        if qos:  # also for a skipped message, or the broker would send it again
            await self._send(wire.puback(packet_id))
            self.pubacks += 1
        if keep:
            self._deliver(topic, payload)
        else:
            self.skipped += 1

    def _deliver(self, topic, payload):
        if len(self._inbox) >= self.inbox_max:
            self._inbox.pop(0)
            self.dropped += 1
        self._inbox.append((topic, payload))


def _left_ms(deadline):
    return _FOREVER_MS if deadline is None else ticks_diff(deadline, ticks_ms())
