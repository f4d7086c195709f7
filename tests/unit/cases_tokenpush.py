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
        (_payload(issued_at=NOW - 7200), "older than the stored token (push it with replace)"),
        (_payload(replace=1), "replace: true or false"),
        (_payload(replace="yes"), "replace: true or false"),
    ]
    for payload, reason in cases:
        assert tp.check(payload, NOW - 3600, NOW) == (None, reason), payload


def test_without_a_clock_a_token_from_far_ahead_is_refused():
    # The attack: while the clock is unset, a push dated far ahead would be stored and
    # then block every genuine push as "older". The firmware's build date caps it.
    far = tp.LATEST + 1
    assert tp.check(_payload(issued_at=far), None, None) == (None, "issued_at: in the future")
    assert tp.check(_payload(issued_at=4102444800), NOW - 3600, None)[1] == (
        "issued_at: in the future")  # 2100
    assert tp.check(_payload(issued_at=tp.LATEST), None, None)[1] is None
    assert tp.BUILT + 2 * 365 * 86400 < tp.LATEST < tp.BUILT + 4 * 365 * 86400


def test_a_push_with_replace_takes_the_place_of_a_newer_token():
    # A token from the future got stored all the same (an older firmware took it):
    # genuine pushes are refused, until one says replace.
    stored = NOW + 365 * 86400
    genuine = _payload(issued_at=NOW - 60)
    assert tp.check(genuine, stored, NOW)[1] == "older than the stored token (push it with replace)"
    record, reason = tp.check(_payload(issued_at=NOW - 60, replace=True), stored, NOW)
    assert reason is None
    assert record == {"refresh_token": "AQD-new_token.123", "issued_at": NOW - 60}
    # replace does not lift the other checks.
    assert tp.check(_payload(issued_at=NOW + 2 * 86400, replace=True), stored, NOW)[1] == (
        "issued_at: in the future")
    assert tp.check(_payload(replace=False), NOW, NOW)[1] is not None
