from core import otadesired as od
from core.shadowdoc import TOO_BIG

SHA = "ab" * 32
GOOD = {"version": "0.2.0", "url": "https://updates.example.com:8443/fw/0.2.0.bundle",
        "sha256": SHA, "size": 123456}


def test_a_good_request_is_normalised():
    job, reason = od.check(dict(GOOD, sha256=SHA.upper()))
    assert reason is None
    assert job == dict(GOOD)


def test_each_bad_key_is_refused_with_its_reason():
    bad_url = "url: https://host/path of at most 512 characters"
    cases = [
        ([1], "must be an object"),
        (dict(GOOD, files=[]), "unknown key: files"),
        (dict(GOOD, version=""), "version: a string of 1..32 characters"),
        (dict(GOOD, version="1" * 33), "version: a string of 1..32 characters"),
        (dict(GOOD, version="0.2 beta"), "version: only 0-9 A-Z a-z . + - _"),
        (dict(GOOD, url="http://host/x"), bad_url),
        (dict(GOOD, url="https://" + "h" * 600), bad_url),
        (dict(GOOD, url="https:///x"), "url: no host"),
        (dict(GOOD, url="https://host/a b"), "url: spaces or control characters"),
        (dict(GOOD, sha256="ab" * 31), "sha256: 64 hex digits"),
        (dict(GOOD, sha256="zz" * 32), "sha256: 64 hex digits"),
        (dict(GOOD, size=0), "size: 1..4194304 bytes"),
        (dict(GOOD, size=True), "size: 1..4194304 bytes"),
        (dict(GOOD, size="12"), "size: 1..4194304 bytes"),
        (dict(GOOD, size=od.SIZE_MAX + 1), "size: 1..4194304 bytes"),
    ]
    for desired, reason in cases:
        assert od.check(desired) == (None, reason), desired
    missing = dict(GOOD)
    del missing["url"]
    assert od.check(missing)[1].startswith("url:")


def test_job_key_tells_requests_apart():
    key = od.job_key(GOOD)
    assert len(key) == 16 and key == od.job_key(dict(GOOD))
    assert key != od.job_key(dict(GOOD, url=GOOD["url"] + "?2"))
    assert key != od.job_key(dict(GOOD, size=GOOD["size"] + 1))
    assert key != od.job_key(dict(GOOD, sha256="cd" * 32))


def test_decide():
    key = od.job_key(GOOD)
    assert od.decide(None, "0.1.0", None, None) == (od.NOTHING, None)
    assert od.decide(GOOD, "0.1.0", None, None) == (od.RUN, (GOOD, key))
    assert od.decide(GOOD, "0.2.0", None, None) == (od.CLEAR, None)  # already runs
    assert od.decide(GOOD, "0.1.0", key, None) == (od.CLEAR, None)  # finished before
    assert od.decide(GOOD, "0.1.0", None, key) == (od.BUSY, None)
    assert od.decide(dict(GOOD, size=-1), "0.1.0", None, None) == (
        od.REFUSE, ("0.2.0", "size: 1..4194304 bytes"))
    assert od.decide("0.2.0", "0.1.0", None, None) == (od.REFUSE, (None, "must be an object"))
    assert od.decide(TOO_BIG, "0.1.0", None, None) == (od.REFUSE, (None, "too big for the device"))


def test_transient_reasons_and_reports():
    assert od.is_transient("timeout") and od.is_transient("truncated")
    assert not od.is_transient("bad_signature") and not od.is_transient("size_mismatch")
    assert od.report("0.2.0", "refused", "bad_signature") == {
        "version": "0.2.0", "status": "refused", "reason": "bad_signature"}
    assert od.report("0.2.0", "applied", previous="0.1.0") == {
        "version": "0.2.0", "status": "applied", "previous": "0.1.0"}
