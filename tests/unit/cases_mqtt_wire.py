from net import mqtt_wire as wire

LENGTHS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]


def decode_length(data, offset=0):
    """(value, offset after the field), read one byte at a time as the client does."""
    value, index, done = 0, 0, False
    while not done:
        if offset + index >= len(data):
            raise ValueError("remaining length cut short")
        value, done = wire.length_step(value, index, data[offset + index])
        index += 1
    return value, offset + index


def rejects(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    raise AssertionError("accepted %r" % (args,))


def test_remaining_length_encodes_the_spec_boundaries():
    for value, encoded in LENGTHS:
        assert wire.encode_length(value) == encoded, value
    assert rejects(wire.encode_length, 268435456)
    assert rejects(wire.encode_length, -1)


def test_remaining_length_decodes_and_reports_where_it_ends():
    for value, encoded in LENGTHS:
        assert decode_length(b"\x30" + encoded + b"rest", 1) == (value, 1 + len(encoded))


def test_remaining_length_over_four_bytes_or_cut_short_is_rejected():
    assert rejects(decode_length, b"\xff\xff\xff\xff\x01")
    assert rejects(decode_length, b"\x80\x80")
    assert rejects(decode_length, b"")
    assert rejects(wire.length_step, 0, 3, 0x80)


def test_length_step_reads_one_byte_at_a_time():
    assert wire.length_step(0, 0, 0x80 | 5) == (5, False)
    assert wire.length_step(5, 1, 2) == (5 + 2 * 128, True)


def test_string_fields_are_length_prefixed_utf8():
    assert wire.string("a/b") == b"\x00\x03a/b"
    assert wire.string("\u00fc") == b"\x00\x02\xc3\xbc"
    assert wire.string(b"raw") == b"\x00\x03raw"
    assert wire.string("") == b"\x00\x00"
    assert rejects(wire.string, "x" * 65536)


def test_u16_round_trip():
    assert wire.u16(0x1234) == b"\x12\x34"
    assert wire.read_u16(b"\x00\x12\x34", 1) == 0x1234
    assert rejects(wire.read_u16, b"\x12")


def test_connect_with_clean_session_and_keepalive():
    assert wire.connect("dev1", 60) == (
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04dev1")
    assert wire.connect("dev1", 1200, clean=False)[9:12] == b"\x00\x04\xb0"


def test_connect_rejects_a_keepalive_out_of_range():
    assert rejects(wire.connect, "d", 65536)
    assert rejects(wire.connect, "d", -1)


def test_connack():
    assert wire.parse_connack(b"\x00\x00") == (False, 0)
    assert wire.parse_connack(b"\x01\x05") == (True, 5)
    assert rejects(wire.parse_connack, b"\x02\x00")  # reserved flag bits
    assert rejects(wire.parse_connack, b"\x00")
    assert wire.connack_reason(5) == "not authorized"
    assert wire.connack_reason(4) == "bad user name or password"
    assert wire.connack_reason(9) == "unknown return code 9"


def test_subscribe_and_suback_for_one_topic():
    assert wire.subscribe_all(10, [("a/b", 1)]) == b"\x82\x08\x00\x0a\x00\x03a/b\x01"
    assert rejects(wire.subscribe_all, 1, [("a", 2)])
    assert wire.parse_suback_all(b"\x00\x0a\x01") == (10, b"\x01")
    assert wire.parse_suback_all(b"\x01\x00\x80") == (256, bytes((wire.SUBACK_FAILURE,)))
    assert rejects(wire.parse_suback_all, b"\x00\x0a\x03")


def test_one_subscribe_carries_several_topics_each_with_its_qos():
    packet = wire.subscribe_all(10, (("a/b", 0), ("c", 1)))
    assert packet == b"\x82\x0c\x00\x0a" + b"\x00\x03a/b\x00" + b"\x00\x01c\x01"
    eight = [("t%d" % n, 0) for n in range(wire.SUBSCRIBE_MAX_TOPICS)]
    assert decode_length(wire.subscribe_all(1, eight), 1)[0] == 2 + 8 * 5
    assert rejects(wire.subscribe_all, 1, eight + [("t8", 0)])  # AWS IoT takes 8 at most
    assert rejects(wire.subscribe_all, 1, [])
    assert rejects(wire.subscribe_all, 1, [("a", 0), ("b", 2)])


def test_suback_for_several_topics_lists_each_grant_in_order():
    assert wire.parse_suback_all(b"\x00\x0a\x00\x01\x80") == (10, b"\x00\x01\x80")
    assert wire.parse_suback_all(memoryview(b"\x01\x00\x01")) == (256, b"\x01")
    assert rejects(wire.parse_suback_all, b"\x00\x0a")
    assert rejects(wire.parse_suback_all, b"\x00\x0a\x00\x03")


def test_publish_head_qos0():
    assert wire.publish_head("a/b", 5) == b"\x30\x0a\x00\x03a/b"


def test_publish_head_qos1_retain_dup_carries_the_packet_id():
    head = wire.publish_head("a/b", 5, qos=1, retain=True, packet_id=7, dup=True)
    assert head == b"\x3b\x0c\x00\x03a/b\x00\x07"
    assert rejects(wire.publish_head, "a", 0, 2)


def test_publish_head_of_a_large_payload_has_a_long_length():
    head = wire.publish_head("t", 20000)
    assert head[:4] == b"\x30" + wire.encode_length(20003)
    assert decode_length(head, 1) == (20003, 4)


def test_incoming_publish_fields():
    assert wire.publish_qos(0x30) == 0
    assert wire.publish_qos(0x33) == 1
    assert wire.publish_qos(0x3C) == 2
    assert rejects(wire.publish_qos, 0x36)
    assert wire.payload_length(10, 3, 0) == 5
    assert wire.payload_length(12, 3, 1) == 5
    assert wire.payload_length(5, 3, 0) == 0
    assert rejects(wire.payload_length, 4, 3, 0)
    assert rejects(wire.payload_length, 6, 3, 1)


def test_puback():
    assert wire.puback(7) == b"\x40\x02\x00\x07"
    assert wire.parse_puback(b"\xff\xfe") == 0xFFFE
    assert rejects(wire.parse_puback, b"\x00")


def test_fixed_packets():
    assert wire.PINGREQ_PACKET == b"\xc0\x00"
    assert wire.DISCONNECT_PACKET == b"\xe0\x00"


def test_publish_json_renders_the_payload_a_piece_at_a_time():
    import json

    document = {"state": {"reported": {"speaker": "Küche", "hours": list(range(200)),
                                       "note": "x" * 300}},
                "clientToken": "bath-7"}
    pieces, size = wire.publish_json("$aws/things/bath/shadow/update", document, 1, False, 9)
    payload = json.dumps(document).encode()
    head = wire.publish_head("$aws/things/bath/shadow/update", len(payload), 1, False, 9)
    assert size == len(payload)  # bytes, not characters: "ü" is two in UTF-8
    sent = [bytes(piece) for piece in pieces]  # each piece is gone once the next comes
    assert sent[0] == head
    assert len(sent) == 1 + (size + 239) // 240 > 4
    assert all(len(piece) == 240 for piece in sent[1:-1])
    assert json.loads(b"".join(sent[1:]).decode()) == document


def test_publish_json_of_a_small_document_is_its_head_and_one_piece():
    pieces, size = wire.publish_json("t", {"a": 1}, 0)
    assert size == 8
    assert [bytes(piece) for piece in pieces] == [b"\x30\x0b\x00\x01t", b'{"a": 1}']
