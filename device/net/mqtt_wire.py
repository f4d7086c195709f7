# MQTT 3.1.1 packets built and parsed by pure functions over bytes, with no I/O,
# so the same cases run on CPython and MicroPython.
import io
import json

from micropython import const

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # the flags 0b0010 are mandatory for SUBSCRIBE
SUBACK = const(0x90)
PINGRESP = const(0xD0)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

SUBACK_FAILURE = const(0x80)
SUBSCRIBE_MAX_TOPICS = const(8)  # AWS IoT takes at most 8 topics in one SUBSCRIBE
MAX_REMAINING = const(268435455)  # four bytes of 7-bit groups
_LEVEL_3_1_1 = const(4)
_PIECE = const(240)  # bytes of a JSON payload per piece: 15 heap blocks

_CONNACK_REASONS = (
    "accepted",
    "unacceptable protocol version",
    "client identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


def encode_length(n):
    """The remaining-length field: 7 bits a byte, least significant group first."""
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length out of range")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_step(value, index, byte):
    """Adds the index-th byte (0..3) of a remaining-length field to value.

    Returns (value, done). Streams read one byte at a time and call this.
    """
    value |= (byte & 0x7F) << (7 * index)
    if not byte & 0x80:
        return value, True
    if index >= 3:
        raise ValueError("remaining length over four bytes")
    return value, False


def u16(n):
    return bytes((n >> 8 & 0xFF, n & 0xFF))


def read_u16(data, offset=0):
    if offset + 2 > len(data):
        raise ValueError("field cut short")
    return data[offset] << 8 | data[offset + 1]


def string(text):
    """A length-prefixed UTF-8 string field."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if len(raw) > 0xFFFF:
        raise ValueError("string field over 65535 bytes")
    return u16(len(raw)) + raw


def _packet(first_byte, body):
    return bytes((first_byte,)) + encode_length(len(body)) + body


def connect(client_id, keepalive_s, clean=True):
    """CONNECT: no will, no user name (AWS IoT authenticates the TLS client certificate)."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError("keepalive out of range")
    head = string("MQTT") + bytes((_LEVEL_3_1_1, 0x02 if clean else 0)) + u16(keepalive_s)
    return _packet(CONNECT, head + string(client_id))


def parse_connack(body):
    """(session_present, return_code) from the CONNACK body."""
    if len(body) != 2 or body[0] & 0xFE:
        raise ValueError("malformed CONNACK")
    return bool(body[0] & 1), body[1]


def connack_reason(code):
    if 0 <= code < len(_CONNACK_REASONS):
        return _CONNACK_REASONS[code]
    return "unknown return code %d" % code


def subscribe_all(packet_id, topics):
    """One SUBSCRIBE for [(topic, qos), ...]; the SUBACK answers in the same order."""
    if not 0 < len(topics) <= SUBSCRIBE_MAX_TOPICS:
        raise ValueError("1..%d topics in one SUBSCRIBE" % SUBSCRIBE_MAX_TOPICS)
    fields = [u16(packet_id)]
    for topic, qos in topics:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        fields.append(string(topic) + bytes((qos,)))
    return _packet(SUBSCRIBE, b"".join(fields))


def parse_suback_all(body):
    """(packet_id, bytes of the granted qos or SUBACK_FAILURE, one a topic)."""
    if len(body) < 3:
        raise ValueError("malformed SUBACK")
    granted = bytes(body[2:])
    for code in granted:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise ValueError("malformed SUBACK")
    return read_u16(body), granted


def publish_head(topic, payload_len, qos=0, retain=False, packet_id=0, dup=False):
    """Fixed header, topic and packet id of a PUBLISH; the payload follows as is."""
    if qos not in (0, 1):
        raise ValueError("qos must be 0 or 1")
    first = PUBLISH | qos << 1 | (0x08 if dup else 0) | (0x01 if retain else 0)
    variable = string(topic)
    if qos:
        variable += u16(packet_id)
    return bytes((first,)) + encode_length(len(variable) + payload_len) + variable


def publish_qos(first_byte):
    """QoS of an incoming PUBLISH from its first byte; 3 is a protocol violation."""
    qos = first_byte >> 1 & 3
    if qos == 3:
        raise ValueError("PUBLISH with qos 3")
    return qos


def payload_length(remaining, topic_len, qos):
    """Payload size of a PUBLISH whose topic is topic_len bytes long."""
    size = remaining - 2 - topic_len - (2 if qos else 0)
    if size < 0:
        raise ValueError("PUBLISH shorter than its topic")
    return size


def puback(packet_id):
    return bytes((PUBACK, 2)) + u16(packet_id)


def parse_puback(body):
    if len(body) != 2:
        raise ValueError("malformed PUBACK")
    return read_u16(body)


class _JsonWindow(io.IOBase):
    """Where json.dump writes: counts the bytes, and copies those from `start` on that
    fit into buf, if any."""

    def __init__(self, buf=None, start=0):
        self.buf = buf
        self.start = start
        self.at = 0

    def write(self, data):
        if isinstance(data, str):  # CPython's json writes text
            data = data.encode()
        n = len(data)
        buf = self.buf
        if buf is not None:
            # The overlap of data's bytes [at, at + n) with the window [start, start + len).
            first = max(self.at, self.start)
            last = min(self.at + n, self.start + len(buf))
            if first < last:
                buf[first - self.start:last - self.start] = \
                    memoryview(data)[first - self.at:last - self.at]
        self.at += n
        return n


def publish_json(topic, document, qos=0, retain=False, packet_id=0):
    """(the pieces of a PUBLISH packet carrying document as JSON, its payload size).
    The pieces come from a generator: the head, then the payload _PIECE bytes at a time,
    each rendered into one buffer by running json.dump again. A several-KB shadow update
    then needs a few hundred bytes of heap, not a copy of its size: near a full heap,
    that is what decides. The document must not change until the last piece is sent."""
    count = _JsonWindow()
    json.dump(document, count)
    size = count.at
    return _pieces(publish_head(topic, size, qos, retain, packet_id), document, size), size


def _pieces(head, document, size):
    yield head
    buf = bytearray(min(_PIECE, size))
    for start in range(0, size, _PIECE):
        json.dump(document, _JsonWindow(buf, start))
        yield memoryview(buf)[:min(_PIECE, size - start)]
