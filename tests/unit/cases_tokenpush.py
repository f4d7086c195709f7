from core import tokenpush as tp

NOW = 1795000000


def _payload(**fields):
    import json

    message = {"refresh_token": "AQD-new_token.123", "issued_at": NOW - 60}
    message.update(fields)
    return json.dumps(message).encode()


def test_a_good_token_is_accepted():
    record, reason = tp.check(_payload(), NOW - 3600, NOW)
    assert reason is None
    assert record == {"refresh_token": "AQD-new_token.123", "issued_at": NOW - 60}
    assert tp.check(_payload(), None, None)[0] == record


def test_bad_payloads_are_refused_without_quoting_them():
    cases = [
        (b"{not json", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_payload(extra=1), "unknown key"),
        (_payload(refresh_token=""), "refresh_token: a string of 1..512 characters"),
        (_payload(refresh_token=5), "refresh_token: a string of 1..512 characters"),
        (_payload(refresh_token="x" * 513), "refresh_token: a string of 1..512 characters"),
        (_payload(refresh_token="two words"), "refresh_token: printable ASCII without spaces"),
        (_payload(issued_at="1"), "issued_at: unix seconds"),
        (_payload(issued_at=True), "issued_at: unix seconds"),
        (_payload(issued_at=1000), "issued_at: unix seconds"),
        (_payload(issued_at=NOW + 2 * 86400), "issued_at: in the future"),
        (_payload(issued_at=NOW - 7200), "older than the stored token"),
    ]
    for payload, reason in cases:
        assert tp.check(payload, NOW - 3600, NOW) == (None, reason), payload
