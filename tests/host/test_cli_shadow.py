"""`spotty config`, `spotty stats` and `spotty ota push/status/build --ca` against the local
AWS IoT stand-in, with a paho client playing the device where one is needed."""

import json
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
    assert code == 3 and "timeout_s must be 1..7200" in err and "colour unknown setting" in err
    assert ShadowClient(THING + "-v", iot.endpoint_url).get() is None  # nothing was sent


def test_config_set_null_as_empty_string_then_get_shows_pending(capsys, iot):
    thing = THING + "-g"
    code, out, _ = run(capsys, "config", "set", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url, "timeout_s=600", "playlist_uri=null",
                       "tz=CET-1CEST,M3.5.0,M10.5.0/3")
    assert code == 0 and 'timeout_s=600' in out and 'playlist_uri=""' in out
    desired = ShadowClient(thing, iot.endpoint_url).get()["state"]["desired"]["config"]
    assert desired == {"timeout_s": 600, "playlist_uri": "", "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}
    code, out, _ = run(capsys, "config", "get", "--thing", thing, "--endpoint-url",
                       iot.endpoint_url)
    line = [row for row in out.splitlines() if row.startswith("timeout_s")][0]
    assert line.split() == ["timeout_s", "600", "-", "yes"]


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


def test_stats_table_and_plot(capsys, iot, tmp_path):
    thing = THING + "-s"
    stats = {"sessions": 3, "play_s": 5400, "motions": 7, "last_motion": 1795348800,
             "by_hour": [0] * 7 + [2] + [0] * 15 + [1], "by_day": [["2026-11-22", 3]]}
    iot.store.update(thing, json.dumps({"state": {"reported": {"stats": stats}}}).encode())
    plot = tmp_path / "use.png"
    code, out, _ = run(capsys, "stats", "--thing", thing, "--endpoint-url", iot.endpoint_url,
                       "--plot", str(plot))
    assert code == 0
    assert "sessions      3" in out and "play time     1 h 30 min" in out
    assert "07:00  ##############################" in out and "2026-11-22  3" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10000


def test_ota_build_with_ca_then_push_and_status(capsys, iot, tmp_path):
    thing = THING + "-ota"
    key, pub = ota.keygen(tmp_path / "keys")
    bundle = tmp_path / "fw.spota"
    code, out, _ = run(capsys, "ota", "build", "--version", "0.9.0", "--key", str(key),
                       "--out", str(bundle), "--source", str(DEVICE_DIR),
                       "--ca", str(REPO / "certs"))
    assert code == 0 and "version 0.9.0" in out
    paths = [f["path"] for f in ota.read_manifest(bundle, pub)["files"]]
    assert "ca/amazon-root-ca-1.der" in paths and "app.mpy" in paths
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
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "junk.der").write_bytes(b"not a certificate")
    code, _, err = run(capsys, "ota", "build", "--version", "1.0.0", "--key", str(key),
                       "--out", str(tmp_path / "b.spota"), "--ca", str(tmp_path / "ca"))
    assert code == 1 and "not a DER CA certificate" in err
    assert not (tmp_path / "b.spota").exists()
