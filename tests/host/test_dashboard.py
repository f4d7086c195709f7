"""`spotty dashboard`'s pages against seeded shadows: the stand-in's shadow store behind its
real data-plane HTTP API (no broker needed), read and written through boto3, as against AWS."""

import json
import re
from html import unescape

import pytest
from starlette.testclient import TestClient

from host_tools import cli
from host_tools.aws import remote_config
from host_tools.aws.shadow import ShadowStore
from host_tools.aws.shadow_http import HttpApi
from host_tools.aws.shadow_service import ShadowService
from host_tools.common.errors import RefusedError
from host_tools.dashboard import graphs
from host_tools.dashboard.source import ShadowSource
from host_tools.dashboard.web import LOOPBACK_NAMES, create_app

NOW = 1796000000  # 2026-11-30 00:53 UTC, 01:53 in the devices' zone (CET)
STATUS = {"firmware": "0.1.0", "state": "idle", "error": None, "uptime_s": 3600,
          "free_heap": 96 * 1024, "rssi": -67, "token_days_left": 150,
          "cert_not_after": NOW + 400 * 86400, "cert_earliest": "ca/iot.der",
          "safe_mode": False, "crashes": 0}
CONFIG = {"enabled": True, "timeout_s": 300, "motion_gap_s": 120,
          "tz": "CET-1CEST,M3.5.0,M10.5.0/3", "spotify_device": "Bathroom", "if_busy": "skip"}


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    store = ShadowStore(clock=clock)
    api = HttpApi(ShadowService(store), token="dashboard-test-token")
    api.start()
    store.url = api.url
    yield store
    api.stop()


@pytest.fixture
def client(store, clock):
    app = create_app(ShadowSource(store.url), allowed_hosts=LOOPBACK_NAMES, clock=clock)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def report(store, clock, thing, seconds_ago=0, **sections):
    """The device reports `sections` (status, config, stats, ota...) `seconds_ago`."""
    reported = {"status": STATUS, "config": CONFIG, **sections}
    clock.now = NOW - seconds_ago
    store.update(thing, json.dumps({"state": {"reported": reported}}).encode())
    clock.now = NOW


def desire(store, thing, **config):
    store.update(thing, json.dumps({"state": {"desired": {"config": config}}}).encode())


def text(html: str) -> str:
    """The page's words, tags dropped, whitespace folded: what a reader sees."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def card_of(html: str, thing: str) -> str:
    match = re.search(r'<article class="card tone-(\w+)">((?:(?!</article>).)*%s.*?)</article>'
                      % re.escape(thing), html, re.S)
    assert match, "no card for %s" % thing
    return match.group(1) + " " + text(match.group(2))


def field_of(html: str, key: str) -> str:
    """The settings row of `key`: its input and, beside it, its status."""
    match = re.search(r'<div class="field">\s*<label for="f-%s">.*?</div>' % key, html, re.S)
    assert match, "no field %s" % key
    return match.group(0)


def form_token(client, thing) -> str:
    page = client.get("/thing/%s" % thing).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# -- the overview's cards ---------------------------------------------------------------------


def test_an_online_device_card(store, clock, client):
    stats = {"sessions": 3, "play_s": 900, "motions": 5, "last_motion": NOW - 7200,
             "by_hour": [0] * 24, "by_day": []}
    report(store, clock, "bath-ok", seconds_ago=120, stats=stats)
    card = card_of(client.get("/").text, "bath-ok")
    assert card.startswith("ok ")
    for words in ("online", "last report 2 min ago", "idle, waiting for motion", "0.1.0",
                  "150 days left", "-67 dBm (fair)", "96 KB free",
                  "Last motion 2026-11-29 23:53 (UTC+1)"):
        assert words in card, (words, card)


def test_an_offline_device_card(store, clock, client):
    report(store, clock, "bath-off", seconds_ago=7 * 3600)
    card = card_of(client.get("/").text, "bath-off")
    assert card.startswith("warn ") and "offline" in card and "last report 7 h ago" in card
    assert "No report for 7 h (it reports at least every 6 h): is it powered and on Wi-Fi?" in card


def test_an_error_card_says_what_to_do(store, clock, client):
    report(store, clock, "bath-err", status=dict(STATUS, state="error", error="needs_reauth",
                                                  token_days_left=-3))
    html = client.get("/").text
    assert "Spotify login expired: run <code>spotty spotify-login --thing bath-err</code>" in html
    card = card_of(html, "bath-err")
    assert card.startswith("error ") and "stopped until you act" in card and "expired" in card


def test_a_rate_limited_card_says_until_when_in_local_time(store, clock, client):
    report(store, clock, "bath-429", status=dict(STATUS, error="rate_limited",
                                                  rate_limited_until=NOW + 86400))
    card = card_of(client.get("/").text, "bath-429")
    assert "Spotify asked it to wait until 2026-12-01 01:53 (UTC+1)" in card, card


def test_a_clock_not_set_for_days_warns(store, clock, client):
    report(store, clock, "bath-clock", status=dict(STATUS, clock_synced=NOW - 3 * 86400))
    report(store, clock, "bath-synced", status=dict(STATUS, clock_synced=NOW - 3600))
    html = client.get("/").text
    card = card_of(html, "bath-clock")
    assert card.startswith("warn ") and "Its clock was last set 3 days ago (NTP)" in card, card
    assert card_of(html, "bath-synced").startswith("ok ")


def test_an_updating_card(store, clock, client):
    report(store, clock, "bath-ota", ota={"version": "0.2.0", "status": "downloading",
                                          "previous": "0.1.0"})
    card = card_of(client.get("/").text, "bath-ota")
    assert card.startswith("updating ") and "updating to 0.2.0: downloading" in card


def test_a_rolled_back_update_and_a_login_about_to_expire_warn(store, clock, client):
    report(store, clock, "bath-rb", status=dict(STATUS, token_days_left=9),
           ota={"version": "0.3.0", "status": "rolled_back", "previous": "0.2.0",
                "reason": "not healthy within 3 boots"})
    card = card_of(client.get("/").text, "bath-rb")
    assert card.startswith("warn ")
    assert "The update to 0.3.0 was rolled back to 0.2.0: not healthy within 3 boots" in card
    assert "The Spotify login expires in 9 days: run spotty spotify-login --thing bath-rb" in card


def test_a_thing_that_never_reported_and_one_that_is_not_ours(store, client):
    desire(store, "bath-new", timeout_s=60)
    store.update("lamp", b'{"state": {"reported": {"on": true}}}')
    html = client.get("/").text
    assert "never reported" in card_of(html, "bath-new")
    assert "Also in the registry, without a SpottyPottySense shadow: lamp." in text(html)
    assert "/thing/lamp" not in html


def test_the_overview_refreshes_itself(store, clock, client):
    report(store, clock, "bath-live")
    assert 'data-live="/live"' in client.get("/").text
    live = client.get("/live").json()
    assert "bath-live" in live["regions"]["cards"]
    report(store, clock, "bath-live", status=dict(STATUS, state="playing"))
    assert "playing music" in client.get("/live").json()["regions"]["cards"]


# -- the settings form ---------------------------------------------------------------------


def test_a_change_the_schema_refuses_is_not_sent(store, clock, client):
    report(store, clock, "bath-bad")
    version = store.document("bath-bad")["version"]
    answer = client.post("/thing/bath-bad/settings", data={
        "csrf": form_token(client, "bath-bad"), "timeout_s": "99999", "volume": "30"})
    assert answer.status_code == 400
    assert "Nothing was sent: correct the fields marked below." in answer.text
    field = field_of(answer.text, "timeout_s")
    assert 'value="99999"' in field and "must be 1..7200" in field
    assert "status-invalid" not in field_of(answer.text, "volume")
    assert store.document("bath-bad")["version"] == version  # neither key was sent


def test_a_change_goes_out_pending_then_reported(store, clock, client):
    report(store, clock, "bath-set")
    answer = client.post("/thing/bath-set/settings", follow_redirects=False, data={
        "csrf": form_token(client, "bath-set"), "timeout_s": "600", "spotify_device": "Bathroom",
        "quiet_start": "22:30"})
    assert answer.status_code == 303
    desired = store.document("bath-set")["state"]["desired"]["config"]
    assert desired == {"timeout_s": 600, "quiet_start": "22:30"}  # only what changed
    page = client.get(answer.headers["location"]).text
    assert "Sent: timeout_s, quiet_start." in text(page)
    field = field_of(page, "timeout_s")
    assert 'value="600"' in field
    assert "pending: waiting for the device to apply it (it has 300)" in field
    report(store, clock, "bath-set", config=dict(CONFIG, timeout_s=600, quiet_start="22:30"))
    live = client.get("/thing/bath-set/live").json()
    assert "applied by the device" in live["regions"]["status-timeout_s"]
    assert live["values"]["timeout_s"] == "600"


def test_null_settings_go_out_as_empty_strings(store, clock, client):
    report(store, clock, "bath-null", config=dict(CONFIG, volume=40))
    client.post("/thing/bath-null/settings", data={"csrf": form_token(client, "bath-null"),
                                                   "volume": ""})
    assert store.document("bath-null")["state"]["desired"]["config"] == {"volume": ""}


def test_a_speaker_named_like_a_number_stays_text(store, clock, client):
    report(store, clock, "bath-num")
    client.post("/thing/bath-num/settings", data={"csrf": form_token(client, "bath-num"),
                                                  "spotify_device": "123"})
    assert store.document("bath-num")["state"]["desired"]["config"] == {"spotify_device": "123"}


def test_an_unchanged_form_sends_nothing(store, clock, client):
    report(store, clock, "bath-same")
    version = store.document("bath-same")["version"]
    answer = client.post("/thing/bath-same/settings", data={
        "csrf": form_token(client, "bath-same"), "timeout_s": "300", "enabled": "true"})
    assert "Nothing changed" in answer.text
    assert store.document("bath-same")["version"] == version


def test_the_time_zone_is_read_as_the_cli_reads_it(store, clock, client):
    """IANA names are accepted exactly when `spotty config set tz=...` accepts them."""
    report(store, clock, "bath-tz")
    answer = client.post("/thing/bath-tz/settings", data={
        "csrf": form_token(client, "bath-tz"), "tz": "Europe/Berlin"})
    try:
        expected, _ = remote_config.parse_assignments(["tz=Europe/Berlin"])
    except RefusedError as e:
        assert answer.status_code == 400
        assert str(e).split("tz ", 1)[-1] in field_of(answer.text, "tz")
    else:
        assert store.document("bath-tz")["state"]["desired"]["config"] == expected


def test_the_devices_refusal_is_shown_beside_its_field(store, clock, client):
    report(store, clock, "bath-ref", config_errors={"playlist_uri": "unknown setting"})
    field = field_of(client.get("/thing/bath-ref").text, "playlist_uri")
    assert "status-refused" in field
    assert "the device refused the last value: unknown setting" in field


def test_a_post_without_the_forms_token_changes_nothing(store, clock, client):
    report(store, clock, "bath-csrf")
    version = store.document("bath-csrf")["version"]
    form_token(client, "bath-csrf")  # the browser has its cookie; the other site has no token
    for data in ({"timeout_s": "60"}, {"timeout_s": "60", "csrf": "x" * 43}):
        answer = client.post("/thing/bath-csrf/settings", data=data)
        assert answer.status_code == 403 and "nothing was changed" in answer.text
    assert store.document("bath-csrf")["version"] == version


def test_no_secret_is_rendered(store, clock, client):
    report(store, clock, "bath-sec", status=dict(STATUS, token_refused="expired token"))
    store.update("bath-sec", json.dumps({"state": {"desired": {
        "config": {"wifi_password": "hunter2"},
        "creds": {"refresh_token": "AQD-refresh", "client_secret": "s3cr3t",
                  "key": "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----"},
        "note": "-----BEGIN PRIVATE KEY-----abc"}}}).encode())
    pages = client.get("/thing/bath-sec").text + json.dumps(client.get("/thing/bath-sec/live")
                                                            .json())
    for secret in ("hunter2", "AQD-refresh", "s3cr3t", "MHcC", "PRIVATE KEY-----abc"):
        assert secret not in pages
    assert "(hidden)" in pages and "token_days_left" in pages  # the rest is shown


def test_other_host_names_are_refused(store, clock, client):
    """A page reached through another name (DNS rebinding) gets nothing."""
    report(store, clock, "bath-host")
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200


def test_a_thing_not_in_the_registry_is_not_found(store, clock, client):
    report(store, clock, "bathroom")
    answer = client.get("/thing/bathrom")
    assert answer.status_code == 404 and "no thing named 'bathrom' here" in text(answer.text)
    answer = client.post("/thing/bathrom/settings", data={
        "csrf": form_token(client, "bathroom"), "timeout_s": "60"})
    assert answer.status_code == 404
    assert store.document("bathrom") is None  # a typo makes no new shadow


def test_the_device_page_has_its_graphs_and_raw_shadow(store, clock, client):
    stats = {"sessions": 4, "play_s": 5400, "motions": 9, "last_motion": NOW - 60,
             "by_hour": [0] * 7 + [3] + [0] * 15 + [1],
             "by_day": [["2026-11-21", 1, 1800], ["2026-11-23", 3, 3600]]}
    report(store, clock, "bath-use", stats=stats)
    page = client.get("/thing/bath-use").text
    assert "Sessions and play time by day, the last 14 days" in text(page)
    assert "play time (min)" in page
    assert "4 sessions, 1 h 30 min of music, 9 motions in all" in text(page)
    assert page.count("<svg") == 2 and "hour of day, the device's local time (UTC+1)" in page
    assert '"sessions": 4' in text(page)  # the raw shadow


def test_an_unreachable_endpoint_is_said_on_the_page(clock):
    app = create_app(ShadowSource("http://127.0.0.1:9"), clock=clock)
    with TestClient(app) as test_client:
        answer = test_client.get("/")
    assert answer.status_code == 502 and "cannot reach AWS IoT to list the things" in answer.text


# -- the graphs ------------------------------------------------------------------------------


def test_the_day_axis_is_continuous_over_the_devices_14_days():
    days, counts, minutes = graphs.day_series([["2026-11-21", 1], ["2026-11-23", 3]])
    assert len(days) == 14 and str(days[0]) == "2026-11-10" and str(days[-1]) == "2026-11-23"
    assert counts[-3:] == [1, 0, 3] and sum(counts) == 4 and minutes is None
    _, _, seconds = graphs.day_series([["2026-11-22", 1, 90], ["2026-11-23", 2, 1800]])
    assert seconds[-3:] == [0, 90, 1800]  # play time by day, empty days as 0


def test_the_day_graph_draws_sessions_and_play_time_in_a_readable_unit():
    svg = graphs.by_day_svg({"by_day": [["2026-11-21", 1, 40], ["2026-11-23", 3, 95]]})
    assert "play time (s)" in svg and "sessions" in svg  # a few short sessions: seconds
    svg = graphs.by_day_svg({"by_day": [["2026-11-23", 3, 2700]]})
    assert "play time (min)" in svg
    assert [graphs.play_unit(s)[0] for s in (0, 119, 120, 3 * 3600 - 1, 3 * 3600)] == [
        "s", "s", "min", "min", "h"]
    assert "play time" not in graphs.by_day_svg({"by_day": [["2026-11-23", 3]]})


def test_the_graphs_are_svg_with_whole_session_counts():
    svg = graphs.by_hour_svg({"by_hour": [0] * 21 + [1, 0, 0]}, "UTC+1")
    assert svg.startswith("<svg") and "<text" in svg  # text stays text
    ticks = re.findall(r'id="ytick_\d+">.*?>([^<>]+)</text>', svg, re.S)
    assert ticks == ["0", "1"]


# -- the command ---------------------------------------------------------------------------


def test_the_command_warns_when_shared_on_the_network(store, monkeypatch, capsys):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    assert cli.main(["dashboard", "--endpoint-url", store.url, "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert served[-1]["host"] == "127.0.0.1" and "warning" not in err
    assert "dashboard on http://127.0.0.1:0/" in out
    assert cli.main(["dashboard", "--endpoint-url", store.url, "--host", "0.0.0.0",
                     "--port", "0"]) == 0
    _, err = capsys.readouterr()
    assert served[-1]["host"] == "0.0.0.0"
    assert "warning: the dashboard listens on 0.0.0.0" in err and "no login" in err
