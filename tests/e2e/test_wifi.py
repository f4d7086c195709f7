"""Wi-Fi that comes and goes: the scenario's `wifi` events cut the simulated board's network
(every connection it has open through the relays is closed, new ones are refused, and
the board's network_ok() says so) and restore it. The firmware notices, reconnects with
backoff, syncs its clock, counts the reconnect in status, and loses nothing."""

import threading
import time

import pytest
from needs import needs_mosquitto

from conftest import api_calls, iot_target
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.common.errors import SpottyError
from host_tools.sim.network import Network

CUT_AT = 1.5
BACK_AT = 6.0  # the 2 s timeout has long passed: the pause waits for Wi-Fi
VISIT_AND_CUT = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}, {"at": CUT_AT, "wifi": 0},
                 {"at": BACK_AT, "wifi": 1}]


def names(result, *wanted):
    return [e["ev"] for e in result.events if e["ev"] in wanted]


def at(result, name, nth=0):
    return result.named(name)[nth]["t"]


def test_music_that_played_through_a_wifi_cut_is_paused_once_wifi_is_back(mock, run_sim):
    stamps = []  # host time of the cut and the restore, to compare with the mock's log

    def on_event(event):
        if event["ev"] == "wifi":
            stamps.append(time.monotonic())

    result = run_sim(VISIT_AND_CUT, 8.0, on_event=on_event)
    assert names(result, "play", "wifi", "wifi_down", "wifi_up", "pause", "session_end") == [
        "play", "wifi", "wifi_down", "wifi", "wifi_up", "pause", "session_end"]
    [cut, back] = result.named("wifi")
    assert (cut["wifi"], back["wifi"]) == (0, 1)
    # Noticed within the worker's second; back within a connect poll of the restore.
    assert at(result, "wifi_down") - cut["t"] < 1500
    assert 0 <= at(result, "wifi_up") - back["t"] < 1000
    assert result.named("wifi_up")[0]["reconnects"] == 1
    # The pause waited for Wi-Fi (a call during the cut would have failed, and been
    # retried) and went through at the first try.
    [pause] = api_calls(mock, "PUT", "/v1/me/player/pause")
    assert pause["t"] > stamps[1] and pause["status"] == 204
    assert at(result, "pause") > back["t"] and not result.named("retry")
    assert not [e for e in result.named("error") if cut["t"] <= e["t"]]
    assert mock.playback()["is_playing"] is False
    # The clock was set again after the reconnect, as after a boot.
    assert [e for e in result.named("clock_sync") if e.get("t", -1) >= back["t"]]
    [end] = result.named("session_end")
    assert end["duration_s"] >= BACK_AT - 1  # the music played on through the cut


def test_a_network_cut_closes_open_connections_and_refuses_new_ones(mock):
    import socket
    import ssl

    with Network() as network:
        url = network.url(mock.url)
        port = int(url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cadata=mock.ca.cert_pem.decode())
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"GET /v1/me/player HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(12).startswith(b"HTTP/1.1")
        assert not network.flag.exists()
        network.set(False)
        assert network.flag.exists()  # what the simulated board reads
        tls.settimeout(5)
        with pytest.raises((OSError, ssl.SSLError)):
            while tls.recv(4096):  # the rest of the answer, then the cut
                pass
            raise OSError("closed")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        network.set(True)
        again = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                    server_hostname="127.0.0.1")
        again.sendall(b"GET /v1/me/player HTTP/1.1\r\nHost: x\r\n\r\n")
        assert again.recv(12).startswith(b"HTTP/1.1")
        again.close()
        assert not network.flag.exists()
        # Only a server on this computer can be cut: the firmware looks up the name itself.
        with pytest.raises(SpottyError, match="10.1.2.3 is elsewhere"):
            network.url("https://10.1.2.3:8443/v1")


@needs_mosquitto
def test_the_shadow_link_recovers_and_the_statistics_lose_nothing(mock, run_sim, tmp_path):
    with IotLocal() as iot:
        target = iot_target(iot, "wifi-1", tmp_path / "keys")
        shadow = ShadowClient("wifi-1", iot.endpoint_url)
        # A visit (the link is down from its play to its end, about 3 s), the cut while the
        # link is up again, and a second visit once Wi-Fi is back.
        # The cut is long enough for the link's backoff to reach 8 s.
        events = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}, {"at": 4.0, "wifi": 0},
                  {"at": 12.0, "wifi": 1}, {"at": 14.0, "pir": 1}, {"at": 14.5, "pir": 0}]
        result = run_sim(events, 19.0, iot=target)
        cut, back = [e["t"] for e in result.named("wifi")]
        ups = [e["t"] for e in result.named("shadow_up")]
        downs = [e["t"] for e in result.named("shadow_down")]
        assert [t for t in ups if t < cut], ups  # up after the first visit, then cut
        # The link the cut closed came back.
        assert [t for t in downs if cut <= t < cut + 500], (downs, cut)
        assert not [t for t in ups if cut < t < back]
        # Back as soon as Wi-Fi is (some 90 ms), not after the backoff of the failures
        # meanwhile, nor at the worker's next idle round (a second later).
        [up] = [e["t"] for e in result.named("wifi_up")]
        assert [t for t in ups if up <= t < up + 700], (ups, up)
        assert [e for e in result.named("error") if e["error"] == "shadow_link"
                and cut <= e["t"] < back]  # new connections were refused meanwhile
        assert len(result.named("pause")) == 2 and len(result.named("session_end")) == 2
        reported = shadow.get()["state"]["reported"]
        stats, status = reported["stats"], reported["status"]
        assert stats["sessions"] == 2 and stats["motions"] == 2
        durations = [e["duration_s"] for e in result.named("session_end")]
        assert stats["play_s"] == sum(durations)
        assert stats["by_day"][0][1:] == [2, sum(durations)]
        assert status["wifi_reconnects"] == 1
        assert status["clock_synced"] >= 1795435200 + 12 - 1  # after the reconnect


@needs_mosquitto
def test_a_wifi_cut_during_an_ota_download_restarts_it_and_harms_nothing(mock, tmp_path):
    from otakit import OLD, ShadowWatcher, build, compiled, matches, variant

    from host_tools.ota import bundles as ota
    from host_tools.ota import push as ota_push
    from host_tools.ota.server import OtaServer
    from host_tools.sim import runner as sim

    new = "0.2.0"
    key, pub = ota.keygen(tmp_path / "keys")
    www = tmp_path / "www"
    www.mkdir()
    old_files, new_files = compiled(variant(tmp_path, OLD)), compiled(variant(tmp_path, new))
    bundle = www / "fw.bundle"
    build(bundle, new_files, new, key)
    with IotLocal() as iot, OtaServer(www) as server, Network() as network:
        server.throttle(bundle.name, bundle.stat().st_size / 4)  # some 4 s to download
        target = iot_target(iot, "wifi-ota", tmp_path / "thing")
        watcher = ShadowWatcher(iot, "wifi-ota")
        flash = tmp_path / "flash"
        flash.mkdir()
        seen = {}

        def push():
            ota_push.push(target.thing, network.url(server.url_for(bundle.name)), bundle,
                          target.endpoint_url)

        def cut_mid_download():
            time.sleep(1.0)
            network.set(False)
            time.sleep(2.5)
            seen["old_files"] = matches(flash, old_files)
            seen["staged_while_cut"] = (flash / "ota" / "staged" / "manifest.json").exists()
            network.set(True)

        def observe(event):
            if event["ev"] == "shadow_up" and event["boot"] == 1 and "push" not in seen:
                seen["push"] = True
                threading.Thread(target=push, daemon=True).start()
            elif event["ev"] == "ota_fetch" and "cut" not in seen:
                seen["cut"] = True
                threading.Thread(target=cut_mid_download, daemon=True).start()

        # The timeline counts the time the board is up, the download's boot too (some 8 s).
        scenario = sim.validate_scenario({"config": {"spotify_device": "Bathroom"},
                                          "events": [], "until": 16.0})
        result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash,
                         iot=target, install_firmware=True, network=network, on_event=observe,
                         files={"ota/pub.bin": pub.read_bytes(),
                                "ca/ota/serve.der": server.ca_der})
        watcher.close()
        assert result.returncode == 0, "\n".join(result.console[-30:])
        # The old version stayed whole while the download was cut short.
        assert seen["old_files"] == [] and seen["staged_while_cut"] is False
        [lost] = result.named("ota_wifi_lost")
        assert lost["boot"] == 2 and lost["tries"] == 1
        assert lost["reason"] in ("truncated", "closed")
        # The download started over once Wi-Fi was back, in the same boot.
        downloads = [r for r in server.requests() if r["path"] == "/" + bundle.name]
        assert len(downloads) == 2 and downloads[0]["sent"] < bundle.stat().st_size
        assert downloads[1]["sent"] == bundle.stat().st_size
        assert result.named("ota_staged", boot=2) and not result.named("ota_retry")
        assert [e["version"] for e in result.named("ready")] == [OLD, new]
        assert matches(flash, new_files) == []
        assert watcher.reported[-1] == {"version": new, "status": "applied", "previous": OLD}
