"""`spotty config`, `spotty stats` and `spotty ota push/status/build --ca` against the local
AWS IoT stand-in, with a paho client playing the device where one is needed."""

import json
import shutil
import threading

import pytest
from needs import needs_mosquitto

from host_tools import cli
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.common.devicepath import DEVICE_DIR, REPO
from host_tools.ota import bundles as ota

pytestmark = needs_mosquitto
THING = "cli-bath"


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as local:
        yield local


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_set_validates_before_sending(capsys, iot):
    code, _, err = run(capsys, "config", "set", "--thing", THING + "-v", "--endpoint-url",
                       iot.endpoint_url, "timeout_s=99999", "colour=red")
    assert code == 3 and "timeout_s: must be 1..7200" in err and "colour: unknown setting" in err
    assert len(err.splitlines()) == 1
    assert ShadowClient(THING + "-v", iot.endpoint_url).get() is None  # nothing was sent


def test_an_unknown_setting_lists_the_valid_ones(capsys, iot):
    listed = "(the settings: enabled, timeout_s, motion_gap_s, quiet_start, quiet_end, tz, " \
        "spotify_device, playlist_uri, volume, if_busy)"
    code, _, err = run(capsys, "config", "set", "--thing", THING + "-v", "--endpoint-url",
                       iot.endpoint_url, "timeout=60")
    assert code == 3
    assert err == "spotty: refused: timeout: unknown setting, did you mean timeout_s? %s\n" % listed
    code, _, err = run(capsys, "config", "unset", "--thing", THING + "-v", "--endpoint-url",
                       iot.endpoint_url, "colour")
    assert (code, err) == (3, "spotty: refused: colour: unknown setting %s\n" % listed)
    assert ShadowClient(THING + "-v", iot.endpoint_url).get() is None


def test_config_set_takes_a_zone_name_and_a_short_hour_and_shows_what_it_sends(capsys, iot):
    thing = THING + "-tz"
    code, out, err = run(capsys, "config", "set", "--thing", thing, "--endpoint-url",
                         iot.endpoint_url, "tz=Europe/Berlin", "quiet_start=7:00")
    assert code == 0, err
    assert "tz: Europe/Berlin -> CET-1CEST,M3.5.0,M10.5.0/3 (its POSIX TZ string" in out
    assert 'tz="CET-1CEST,M3.5.0,M10.5.0/3", quiet_start="07:00"' in out
    desired = ShadowClient(thing, iot.endpoint_url).get()["state"]["desired"]["config"]
    assert desired == {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "quiet_start": "07:00"}


@pytest.mark.parametrize("value, message", [
    ("Europe/Berln", "tz: unknown time zone 'Europe/Berln' (did you mean Europe/Berlin?)"),
    ("Berlin", "tz: not a POSIX TZ string (number expected at 6); give a zone name such as "
               "Europe/Berlin or a POSIX TZ string"),
])
def test_config_set_refuses_a_zone_it_cannot_read(capsys, iot, value, message):
    code, _, err = run(capsys, "config", "set", "--thing", THING + "-v", "--endpoint-url",
                       iot.endpoint_url, "tz=" + value)
    assert (code, err) == (3, "spotty: refused: %s\n" % message)


def test_config_set_null_then_get_shows_null_and_pending(capsys, iot):
    thing = THING + "-g"
    iot.store.update(thing, json.dumps({"state": {"reported": {"config": {}}}}).encode())
    code, out, err = run(capsys, "config", "set", "--thing", thing, "--endpoint-url",
                         iot.endpoint_url, "timeout_s=600", "playlist_uri=null",
                         "tz=CET-1CEST,M3.5.0,M10.5.0/3")
    assert code == 0 and err == ""
    assert 'timeout_s=600' in out and 'playlist_uri=null' in out and '""' not in out
    desired = ShadowClient(thing, iot.endpoint_url).get()["state"]["desired"]["config"]
    assert desired == {"timeout_s": 600, "playlist_uri": "", "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}
    code, out, _ = run(capsys, "config", "get", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url)
    rows = {row.split()[0]: row.split() for row in out.splitlines()[1:] if row}
    assert rows["timeout_s"] == ["timeout_s", "600", "-", "yes"]
    assert rows["playlist_uri"][:2] == ["playlist_uri", "null"]


def test_the_thing_and_endpoint_come_from_the_environment(capsys, iot, monkeypatch):
    thing = THING + "-env"
    iot.store.update(thing, json.dumps({"state": {"reported": {"config": {"volume": 7}}}})
                     .encode())
    monkeypatch.setenv("SPOTTY_THING", thing)
    monkeypatch.setenv("SPOTTY_ENDPOINT_URL", iot.endpoint_url)
    code, out, err = run(capsys, "config", "get")
    assert code == 0 and err == ""
    assert [row.split()[:3] for row in out.splitlines() if row.startswith("volume")] == \
        [["volume", "-", "7"]]


def test_config_unset_says_back_to_the_default(capsys, iot):
    thing = THING + "-u"
    iot.store.update(thing, json.dumps({"state": {"reported": {"config": {}}}}).encode())
    code, out, err = run(capsys, "config", "unset", "--thing", thing, "--endpoint-url",
                         iot.endpoint_url, "volume", "timeout_s")
    assert code == 0 and err == ""
    assert out.splitlines()[:2] == ["volume: back to the default",
                                    "timeout_s: back to the default (300)"]
    assert '""' not in out
    desired = ShadowClient(thing, iot.endpoint_url).get()["state"]["desired"]["config"]
    assert desired == {"volume": "", "timeout_s": 300}


def test_config_set_warns_when_the_thing_has_never_reported(capsys, iot):
    code, out, err = run(capsys, "config", "set", "--thing", "bathrom", "--endpoint-url",
                         iot.endpoint_url, "volume=30")
    assert code == 0 and "desired config of bathrom updated" in out
    assert err == ("spotty: warning: bathrom has never reported to its shadow: is the thing "
                   "name right? The change waits there until a device of that name connects\n")


def test_config_set_wait_times_out_clearly_when_the_device_is_offline(capsys, iot):
    code, _, err = run(capsys, "config", "set", "--thing", THING + "-o", "--endpoint-url",
                       iot.endpoint_url, "volume=30", "--wait", "--timeout", "1")
    assert code == 4 and "offline" in err


def test_config_set_wait_returns_once_the_device_reports(capsys, iot):
    thing = THING + "-w"

    def device_reports():
        report = {"state": {"reported": {"config": {"volume": 30}}}}
        iot.store.update(thing, json.dumps(report).encode())

    threading.Timer(1.5, device_reports).start()
    code, out, _ = run(capsys, "config", "set", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url, "volume=30", "--wait", "--timeout", "10")
    assert code == 0 and "the device applied it" in out


STATS = {"sessions": 7, "play_s": 5400, "motions": 9, "last_motion": 1795348800,
         "by_hour": [0] * 7 + [4] + [0] * 15 + [2],
         "by_day": [["2026-11-20", 2, 1800], ["2026-11-22", 1, 600], ["2026-11-23", 3, 3000]]}
TITLE = "cli-bath-s, 2026-11-20 to 2026-11-23\n7 sessions, 1 h 30 min of music, 9 motions in all"


def bar_runs(image, colour) -> list[tuple[int, int, int]]:
    """(first column, last column, height) of each bar of `colour`, read off the pixels."""
    width, height = image.size
    pixels = image.load()
    rows = [y for y in range(height) if any(pixels[x, y] == colour for x in range(width))]
    base = max(rows) - 1  # just above the x axis
    runs, start = [], None
    for x in range(width + 1):
        inside = x < width and pixels[x, base] == colour
        if inside and start is None:
            start = x
        elif not inside and start is not None:
            middle = (start + x - 1) // 2
            tall = sum(1 for y in range(height) if pixels[middle, y] == colour)
            runs.append((start, x - 1, tall))
            start = None
    return runs


def test_stats_table_and_plot(capsys, iot, tmp_path):
    from PIL import Image

    thing = THING + "-s"
    config = {"tz": "CET-1CEST,M3.5.0,M10.5.0/3"}
    report = {"state": {"reported": {"stats": STATS, "config": config}}}
    iot.store.update(thing, json.dumps(report).encode())
    plot = tmp_path / "use.png"
    code, out, _ = run(capsys, "stats", "--thing", thing, "--endpoint-url", iot.endpoint_url,
                       "--plot", str(plot))
    assert code == 0
    assert "sessions      7" in out and "play time     1 h 30 min" in out
    assert "last motion   2026-11-22 13:00 CET" in out
    assert "sessions by hour of day (local time, CET/CEST)" in out
    assert "07:00  ##############################" in out
    assert "2026-11-21    0  0 h 00 min" in out  # a day without sessions is shown
    assert "2026-11-23    3  0 h 50 min" in out

    image = Image.open(plot)
    assert image.format == "PNG" and image.info["Title"] == TITLE
    rgb = image.convert("RGB")
    width, _ = rgb.size
    top = [rgb.getpixel((x, y)) for x in range(width // 4, 3 * width // 4) for y in range(40)]
    assert sum(1 for p in top if sum(p) < 200) > 200  # the title is drawn, at the top

    # The date axis is continuous: the empty 21st leaves a gap one day wide between
    # the bars of the 20th and the 22nd; heights follow the counts 2, 1, 3.
    (a, b, c) = bar_runs(rgb, (0x19, 0x14, 0x14))
    centre = [(run[0] + run[1]) / 2 for run in (a, b, c)]
    day = centre[2] - centre[1]
    assert abs((centre[1] - centre[0]) - 2 * day) <= 2
    assert abs((a[1] - a[0]) - 0.8 * day) <= 2  # bars 0.8 days wide
    unit = b[2]  # one session, in pixels (an edge pixel or so is antialiased)
    assert abs(a[2] - 2 * unit) <= 3 and abs(c[2] - 3 * unit) <= 5
    hours = bar_runs(rgb, (0x1D, 0xB9, 0x54))
    assert len(hours) == 2 and abs(hours[0][2] - 2 * hours[1][2]) <= 3


def test_ota_build_with_ca_then_push_and_status(capsys, iot, tmp_path):
    thing = THING + "-ota"
    key, pub = ota.keygen(tmp_path / "keys")
    bundle = tmp_path / "fw.spota"
    code, out, _ = run(capsys, "ota", "build", "--version", "0.9.0", "--key", str(key),
                       "--out", str(bundle), "--source", str(DEVICE_DIR),
                       "--ca", str(REPO / "certs"))
    assert code == 0 and "version 0.9.0" in out
    paths = [f["path"] for f in ota.read_manifest(bundle, pub)["files"]]
    assert "ca/iot/amazon-root-ca-1.der" in paths and "app.mpy" in paths
    assert "ca/spotify/digicert-global-root-g2.der" in paths
    code, out, _ = run(capsys, "ota", "push", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url, "--url", "https://example.test/fw.spota",
                       "--bundle", str(bundle), "--pub", str(pub))
    assert code == 0
    desired = ShadowClient(thing, iot.endpoint_url).get()["state"]["desired"]["ota"]
    assert desired["version"] == "0.9.0" and desired["size"] == bundle.stat().st_size
    code, out, _ = run(capsys, "ota", "status", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url)
    assert code == 0 and "requested:        0.9.0" in out


def test_ota_build_refuses_a_ca_dir_without_roots(capsys, tmp_path):
    key, _ = ota.keygen(tmp_path / "keys")
    ca = tmp_path / "ca"
    (ca / "spotify").mkdir(parents=True)
    (ca / "spotify" / "junk.der").write_bytes(b"not a certificate")

    def build():
        return run(capsys, "ota", "build", "--version", "1.0.0", "--key", str(key),
                   "--out", str(tmp_path / "b.spota"), "--ca", str(ca))

    code, _, err = build()
    assert code == 1 and "not a DER CA certificate" in err
    shutil.copy(REPO / "certs" / "spotify" / "digicert-global-root-g2.der", ca / "spotify" /
                "junk.der")
    code, _, err = build()
    assert code == 1 and "no *.der CA roots in %s" % (ca / "iot") in err
    # A root outside the lists would vouch for every use: refused, with where it goes.
    (ca / "iot").mkdir()
    shutil.copy(REPO / "certs" / "iot" / "amazon-root-ca-1.der", ca / "iot")
    shutil.copy(REPO / "certs" / "iot" / "amazon-root-ca-1.der", ca / "loose.der")
    code, _, err = build()
    assert code == 1 and "loose.der outside a trust list" in err
    assert not (tmp_path / "b.spota").exists()
