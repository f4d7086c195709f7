"""The host's Spotify login against the mock accounts service, with a scripted browser."""

import base64
import json
import socket
import ssl
import stat
import string
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from host_tools.common.errors import SpottyError, UsageError
from host_tools.spotify import login as sl
from host_tools.spotify.mock import MockSpotify

CLIENT_ID = "spotty-test-client"
CLIENT_SECRET = "c0ffee-client-secret-0000"


@pytest.fixture
def mock():
    with MockSpotify(client_id=CLIENT_ID) as server:
        yield server


def _opener(mock: MockSpotify) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cadata=mock.ca.cert_pem.decode())
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )


class Browser:
    """Opens the authorize URL at the mock, which approves at once and redirects to the
    loopback server; `answer` replaces the mock's answer with one of the test's."""

    def __init__(self, mock: MockSpotify, answer: dict | None = None):
        self.opener = _opener(mock)
        self.answer = answer
        self.urls: list[str] = []
        self.pages: list[tuple[int, str]] = []

    def __call__(self, url: str) -> bool:
        self.urls.append(url)
        if self.answer is not None:
            query = dict(parse_qsl(urlsplit(url).query))
            answer = {k: query["state"] if v is STATE else v for k, v in self.answer.items()}
            url = query["redirect_uri"] + "?" + urlencode(answer)
        try:
            with self.opener.open(url, timeout=10) as page:
                self.pages.append((page.status, page.read().decode()))
        except urllib.error.HTTPError as e:
            self.pages.append((e.code, e.read().decode()))
        return True


STATE = object()  # in Browser.answer: the state the login sent


def log_in(mock, browser, **kwargs) -> tuple[sl.SpotifyToken, list[str]]:
    said: list[str] = []
    args = dict(port=0, accounts_url=mock.url, ca=mock.ca.cert_der, open_browser=browser,
                timeout_s=10, say=said.append, now=lambda: 1_760_000_000.5)
    args.update(kwargs)
    return sl.login(CLIENT_ID, **args), said


def token_requests(mock) -> list[dict]:
    return [r for r in mock.requests() if r["path"] == "/api/token"]


# -- PKCE ---------------------------------------------------------------------------


def test_the_s256_challenge_matches_rfc_7636s_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert sl.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifiers_are_long_random_and_url_safe():
    allowed = set(string.ascii_letters + string.digits + "-._~")
    verifiers = {sl.new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128 and set(verifier) <= allowed


def test_the_redirect_uri_is_a_loopback_ip_literal():
    assert sl.redirect_uri(8888) == "http://127.0.0.1:8888/callback"


# -- the whole login ----------------------------------------------------------------


def test_a_public_client_logs_in_with_pkce(mock):
    browser = Browser(mock)
    token, said = log_in(mock, browser)
    assert token.refresh_token == mock.refresh_token
    assert token.client_id == CLIENT_ID and token.issued_at == 1_760_000_000
    assert set(token.scope.split()) == set(sl.SCOPES.split())

    query = dict(parse_qsl(urlsplit(browser.urls[0]).query))
    assert urlsplit(browser.urls[0]).path == "/authorize"
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["scope"] == "user-read-playback-state user-modify-playback-state"
    assert query["redirect_uri"].startswith("http://127.0.0.1:")
    assert query["redirect_uri"].endswith("/callback")
    assert len(query["state"]) >= 16
    assert browser.pages == [(200, browser.pages[0][1])]
    assert "Spotify login done" in browser.pages[0][1]

    (exchange,) = token_requests(mock)
    assert exchange["status"] == 200 and exchange["auth"] == "none"  # no Authorization
    form = exchange["body"]
    assert set(form) == {"grant_type", "code", "redirect_uri", "client_id", "code_verifier"}
    assert form["client_id"] == CLIENT_ID and form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == query["redirect_uri"]
    assert sl.code_challenge(form["code_verifier"]) == query["code_challenge"]
    shown = "\n".join(said)
    assert browser.urls[0] in shown  # for when no browser opens
    for secret in (token.refresh_token, form["code"], form["code_verifier"]):
        assert secret not in shown


def test_the_logins_refresh_token_refreshes_by_client_id_and_refuses_the_secret():
    """The app has a secret (every Spotify app has one), but the login never uses it, so
    the token it yields is bound to PKCE: the device refreshes it with its id alone."""
    with MockSpotify(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as mock:
        token, _ = log_in(mock, Browser(mock))
        (exchange,) = token_requests(mock)
        refresh = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
        pair = base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
        with_secret = post_form(mock, refresh, {"Authorization": "Basic " + pair})
        by_id = post_form(mock, dict(refresh, client_id=CLIENT_ID))
    assert exchange["auth"] == "none" and "client_secret" not in exchange["body"]
    assert with_secret == (400, {"error": "invalid_grant",
                                 "error_description": "Invalid refresh token"})
    assert by_id[0] == 200 and by_id[1]["access_token"]


def post_form(mock, form, headers=None) -> tuple[int, dict]:
    request = urllib.request.Request(
        mock.url + "/api/token", data=urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    try:
        with _opener(mock).open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_verifier_that_does_not_match_the_challenge_is_refused(mock, monkeypatch):
    """The mock checks the S256 challenge: a login that sent the challenge of another
    verifier gets no token."""
    challenge = sl.code_challenge
    monkeypatch.setattr(sl, "code_challenge", lambda verifier: challenge(verifier + "x"))
    with pytest.raises(SpottyError, match="invalid_grant .code_verifier was incorrect"):
        log_in(mock, Browser(mock))
    (exchange,) = token_requests(mock)
    assert exchange["status"] == 400


def test_a_client_secret_in_the_environment_is_refused_clearly():
    with pytest.raises(UsageError) as failure:
        sl.refuse_client_secret({"SPOTIFY_CLIENT_SECRET": CLIENT_SECRET})
    message = str(failure.value)
    assert "SPOTIFY_CLIENT_SECRET is set" in message and "PKCE" in message
    assert "unset SPOTIFY_CLIENT_SECRET" in message and CLIENT_SECRET not in message
    sl.refuse_client_secret({"SPOTIFY_CLIENT_SECRET": ""})  # set but empty: nothing to say
    sl.refuse_client_secret({})


def test_refusing_in_the_browser_is_a_clear_error(mock):
    browser = Browser(mock, {"error": "access_denied", "state": STATE})
    with pytest.raises(SpottyError, match="refused in the browser"):
        log_in(mock, browser)
    assert browser.pages[0][0] == 400 and "failed" in browser.pages[0][1]
    assert token_requests(mock) == []


def test_an_answer_for_another_login_is_refused(mock):
    browser = Browser(mock, {"code": "stolen-code", "state": "forged"})
    with pytest.raises(SpottyError, match="state mismatch"):
        log_in(mock, browser)
    assert token_requests(mock) == []  # the code is never exchanged


def test_no_answer_in_time_is_a_clear_error(mock):
    with pytest.raises(SpottyError, match="no answer from Spotify within"):
        log_in(mock, lambda url: False, timeout_s=0.3)


def test_a_port_in_use_is_a_clear_error(mock):
    with sl.LoopbackReceiver(0, "s") as busy:
        with pytest.raises(SpottyError, match="cannot listen on 127.0.0.1:%d" % busy.port):
            log_in(mock, Browser(mock), port=busy.port)


def test_the_loopback_server_only_answers_the_callback(mock):
    with sl.LoopbackReceiver(0, "s") as receiver:
        opener = _opener(mock)
        with pytest.raises(urllib.error.HTTPError) as missing:
            opener.open("http://127.0.0.1:%d/favicon.ico" % receiver.port, timeout=5)
        assert missing.value.code == 404
        opener.open(receiver.redirect_uri + "?code=c&state=s", timeout=5).read()
        opener.open(receiver.redirect_uri + "?code=later&state=s", timeout=5).read()
        assert receiver.wait(1) == {"code": "c", "state": "s"}  # the first answer counts


def test_an_idle_connection_does_not_hold_up_the_answer(mock):
    with sl.LoopbackReceiver(0, "s") as receiver:
        idle = socket.create_connection(("127.0.0.1", receiver.port))  # a browser preconnect
        try:
            _opener(mock).open(receiver.redirect_uri + "?code=c&state=s", timeout=5).read()
            assert receiver.wait(1)["code"] == "c"
        finally:
            idle.close()


def test_an_untrusted_accounts_server_is_refused(mock):
    other = MockSpotify(client_id=CLIENT_ID)  # another CA
    with pytest.raises(SpottyError, match="CERTIFICATE_VERIFY_FAILED"):
        log_in(mock, Browser(mock), ca=other.ca.cert_der)


# -- the saved login ----------------------------------------------------------------


def test_the_saved_login_is_0600_in_a_0700_directory_and_replaced_atomically(mock, tmp_path):
    token, _ = log_in(mock, Browser(mock))
    path = tmp_path / "config" / "spotty" / "spotify-token.json"
    sl.save_token(path, token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "refresh_token": token.refresh_token, "issued_at": token.issued_at,
        "client_id": CLIENT_ID, "scope": token.scope,
    }
    path.chmod(0o644)
    sl.save_token(path, token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temp file left
    assert sl.load_token(path) == token
    assert token.refresh_token not in repr(token)


def test_loading_a_missing_or_broken_login_is_a_clear_error(tmp_path):
    with pytest.raises(SpottyError, match="run `spotty spotify-login` first"):
        sl.load_token(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"refresh_token": "x"}')
    with pytest.raises(SpottyError, match="not a saved Spotify login"):
        sl.load_token(tmp_path / "bad.json")


def test_a_grant_without_the_playback_scopes_is_refused():
    with pytest.raises(SpottyError, match="user-modify-playback-state"):
        sl.token_from_answer({"refresh_token": "r", "scope": "user-read-playback-state"},
                             CLIENT_ID, 0)


# -- handing the token to the device ------------------------------------------------


def test_the_push_is_one_qos_1_message_on_the_devices_own_topic():
    sent = []
    token = sl.SpotifyToken("AQD-new", 1_760_000_000, CLIENT_ID, sl.SCOPES)
    sl.push_token(lambda topic, payload, qos: sent.append((topic, payload, qos)),
                  "bathroom-1", token)
    ((topic, payload, qos),) = sent
    assert topic == "spotty/bathroom-1/token" and qos == 1
    assert json.loads(payload) == {"refresh_token": "AQD-new", "issued_at": 1_760_000_000}


class FakeShadow:
    """Reports the token after `after` looks; a fake clock that sleep advances."""

    def __init__(self, issued_at, after: int):
        self.issued_at, self.after, self.looks, self.now = issued_at, after, 0, 0.0

    def get(self):
        self.looks += 1
        if self.looks <= self.after:
            return {"state": {"reported": {"status": {"token_issued_at": 1}}}}
        return {"state": {"reported": {"status": {"token_issued_at": self.issued_at}}}}

    def sleep(self, seconds):
        self.now += seconds


def test_waiting_ends_when_the_device_reports_the_new_token():
    shadow = FakeShadow(1_760_000_000, after=3)
    sl.wait_for_device(shadow.get, "bathroom-1", 1_760_000_000, 60,
                       clock=lambda: shadow.now, sleep=shadow.sleep)
    assert shadow.looks == 4


def test_a_device_that_never_confirms_is_a_clear_error():
    shadow = FakeShadow(1_760_000_000, after=10**6)
    with pytest.raises(SpottyError, match="bathroom-1 has not confirmed .* within 10 s"):
        sl.wait_for_device(shadow.get, "bathroom-1", 1_760_000_000, 10, poll_s=2,
                           clock=lambda: shadow.now, sleep=shadow.sleep)
    assert shadow.now >= 10


def test_a_thing_without_a_shadow_is_waited_for():
    assert sl.reported_token_issued_at(None) is None
    assert sl.reported_token_issued_at({"state": {"reported": {"status": None}}}) is None
