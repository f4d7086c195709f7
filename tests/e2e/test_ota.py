"""Firmware updates end to end: `spotty ota push` (desired.ota in the shadow, through the
local AWS IoT stand-in and a real mosquitto), the download from a local HTTPS server,
the reboot, the swap and the report, with the firmware running from its flash directory
in the simulator (host_tools.sim.runner install_firmware)."""

import datetime
import json
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from needs import needs_mosquitto
from otakit import OLD, ShadowWatcher, build, compiled, digest, matches, variant

from conftest import api_calls, iot_target
from host_tools import cli
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient
from host_tools.ota import bundles as ota
from host_tools.ota import push as ota_push
from host_tools.ota.server import OtaServer
from host_tools.sim import runner as sim

pytestmark = needs_mosquitto
NEW = "0.2.0"
CONFIG = {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0}


@pytest.fixture(scope="module")
def iot():
    with IotLocal() as local:
        yield local


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    key_path, pub_path = ota.keygen(root / "keys")
    other_key, _ = ota.keygen(root / "other-keys")
    www = root / "www"
    www.mkdir()
    new_files = compiled(variant(root, NEW))
    build(www / "good.bundle", new_files, NEW, key_path)
    return {"root": root, "www": www, "key": key_path, "other_key": other_key,
            "pub": pub_path.read_bytes(), "new": new_files, "old": compiled(variant(root, OLD))}


@pytest.fixture(scope="module")
def server(release):
    with OtaServer(release["www"]) as running:
        yield running


_names = iter(range(1, 1000))


@pytest.fixture
def thing(iot, tmp_path):
    name = "ota-%d" % next(_names)
    target = iot_target(iot, name, tmp_path / "keys")
    watcher = ShadowWatcher(iot, name)
    yield target, ShadowClient(name, iot.endpoint_url), watcher
    watcher.close()


def run_device(mock, target, server, release, tmp_path, events, until, on_event=None,
               files=None, max_reboots=sim.MAX_REBOOTS, cut=None):
    flash = tmp_path / "flash"
    flash.mkdir(exist_ok=True)
    scenario = sim.validate_scenario({"config": CONFIG, "events": events, "until": until})
    laid = {"ota/pub.bin": release["pub"], "ca/ota/serve.der": server.ca_der}
    laid.update(files or {})
    result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash,
                     iot=target, install_firmware=True, files=laid, on_event=on_event,
                     max_reboots=max_reboots, cut=cut)
    assert result.returncode == 0, "\n".join(result.console[-30:])
    return result, flash


def when(name, action, boot=1):
    """An on_event that runs action (in a thread) at the first `name` event of `boot`."""
    fired = []

    def observe(event):
        if event["ev"] == name and event["boot"] == boot and not fired:
            fired.append(event)
            threading.Thread(target=action, daemon=True).start()

    return observe


def distinct(values):
    out = []
    for value in values:
        if value is not None and (not out or out[-1] != value):
            out.append(value)
    return out


def short_lived_ca(days):
    """A CA root that expires before every other certificate of the test setup."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Soon expiring root")])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER), int(cert.not_valid_after_utc.timestamp())


def test_a_good_update_is_downloaded_staged_applied_and_reported(
        mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    # The new version also brings its own CA roots, in their lists: they replace ca/ as
    # a whole.
    extra_der, extra_expiry = short_lived_ca(10)
    roots = [("ca/iot/local.der", target.ca_der), ("ca/ota/serve.der", server.ca_der),
             ("ca/spotify/extra.der", extra_der), ("ca/spotify/mock.der", mock.ca.cert_der)]
    bundle = release["www"] / "with-roots.bundle"
    build(bundle, release["new"] + roots, NEW, release["key"])

    def push():
        ota_push.push(target.thing, server.url_for(bundle.name), bundle, target.endpoint_url)

    visit = [{"at": 6.0, "pir": 1}, {"at": 6.5, "pir": 0}]
    result, flash = run_device(mock, target, server, release, tmp_path, visit, 9.0,
                               on_event=when("shadow_up", push))

    assert [e["version"] for e in result.named("ready")] == [OLD, NEW]
    # Into the download's own boot, into the swap, into the new version.
    assert [e["why"] for e in result.named("reboot")] == ["reset", "reset", "reset"]
    assert distinct(watcher.statuses()) == ["downloading", "applied"]
    doc = shadow.get()
    assert doc["state"]["reported"]["ota"] == {"version": NEW, "status": "applied",
                                               "previous": OLD}
    status = doc["state"]["reported"]["status"]
    assert status["firmware"] == NEW and status["safe_mode"] is False
    assert "ota" not in doc["state"].get("desired", {})  # done with: no delta left
    # The new version runs whole, on its own roots, and plays music.
    assert matches(flash, release["new"]) == []
    assert sorted(p.relative_to(flash).as_posix() for p in (flash / "ca").rglob("*.der")) == [
        path for path, _ in roots]
    assert status["cert_earliest"] == "ca/spotify/extra.der"
    assert status["cert_not_after"] == extra_expiry
    assert len(result.named("play", boot=4)) == 1
    assert len(api_calls(mock, "PUT", "/v1/me/player/pause")) == 1
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["trial"] is False  # healthy: the shadow link came up
    assert len([r for r in server.requests() if r["path"] == "/" + bundle.name]) == 1
    # The download had a boot of its own: no app, no shadow link, no Spotify beside it.
    [fetch] = result.named("ota_fetch")
    assert fetch["boot"] == 2 and result.named("ota_staged", boot=2)
    assert not [e for e in result.events if e["boot"] == 2 and e["ev"] in (
        "ready", "shadow_up", "play")]


def test_a_download_gives_way_to_music(mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    slow = release["www"] / "slow.bundle"
    slow.write_bytes((release["www"] / "good.bundle").read_bytes())
    server.throttle(slow.name, slow.stat().st_size / 8)  # some 8 s to download

    def push():
        ota_push.push(target.thing, server.url_for(slow.name), slow, target.endpoint_url)

    # The visit comes while the download runs: the push, an idle round and a reboot
    # (some 1.5 s) before it, and 8 s of download after.
    visit = [{"at": 3.5, "pir": 1}, {"at": 4.0, "pir": 0}]
    result, flash = run_device(mock, target, server, release, tmp_path, visit, 6.0,
                               on_event=when("shadow_up", push))

    names = [e["ev"] for e in result.events]
    assert "ota_postponed" in names and "play" in names
    assert names.index("ota_postponed") < names.index("play")
    # The app, the download's boot (cut short), the app again, which plays.
    assert result.boots == 3 and not result.named("ota_staged")
    assert result.named("ota_postponed", boot=2) and result.named("play", boot=3)
    assert not (flash / "ota" / "staged").exists()  # nothing half-downloaded is kept
    [download] = [r for r in server.requests() if r["path"] == "/slow.bundle"]
    assert download["sent"] < slow.stat().st_size
    assert distinct(watcher.statuses()) == ["downloading"]  # to be tried again when quiet


def test_a_download_boot_cut_off_brings_the_app_back_to_try_again_later(
        mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    good = release["www"] / "good.bundle"

    def push():
        ota_push.push(target.thing, server.url_for(good.name), good, target.endpoint_url)

    result, flash = run_device(mock, target, server, release, tmp_path, [], 4.0,
                               on_event=when("shadow_up", push), cut="ota_fetch")

    # Power cut mid-download: the next boot is the app, not another download.
    assert result.named("cut", boot=2) and not result.named("ota_fetch", boot=3)
    assert [e["version"] for e in result.named("ready")] == [OLD, OLD]
    assert not (flash / "ota" / "staged").exists()  # the half download went at boot
    assert [e["mode"] for e in result.named("boot")] == ["normal", "normal"]
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert "fetch" not in state and state["later"]["attempt"] == 1
    assert state["later"]["wait_ms"] > 0
    assert watcher.reported[-1] == {"version": NEW, "status": "refused", "reason": "interrupted",
                                    "previous": OLD, "retry": 1}


def _forge(release, name, transform):
    manifest_bytes, signature, contents = ota.split((release["www"] / "good.bundle").read_bytes())
    path = release["www"] / name
    path.write_bytes(transform(manifest_bytes, signature, contents))
    return path


def test_bad_updates_are_refused_with_reasons_and_the_old_version_keeps_playing(
        mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    good = release["www"] / "good.bundle"
    other = release["www"] / "other-key.bundle"
    build(other, release["new"], NEW, release["other_key"])
    unsigned = _forge(release, "unsigned.bundle", lambda m, s, c: ota.encode(m, bytes(64), [c]))
    corrupt = _forge(release, "corrupt.bundle",
                     lambda m, s, c: ota.encode(m, s, [c[:-1] + bytes([c[-1] ^ 1])]))
    truncated = _forge(release, "truncated.bundle", lambda m, s, c: ota.encode(m, s, [c]))
    server.cut_after(truncated.name, truncated.stat().st_size // 2)
    request = ota_push.desired_ota(server.url_for(good.name), good)
    cases = [
        ("other key", ota_push.desired_ota(server.url_for(other.name), other), "bad_signature"),
        ("unsigned", ota_push.desired_ota(server.url_for(unsigned.name), unsigned),
         "bad_signature"),
        ("corrupt", ota_push.desired_ota(server.url_for(corrupt.name), corrupt), "hash_mismatch"),
        ("wrong size", dict(request, size=request["size"] + 1), "size_mismatch"),
        ("truncated", ota_push.desired_ota(server.url_for(truncated.name), truncated),
         "truncated"),
        ("not https", dict(request, url="http://127.0.0.1/good.bundle"),
         "url: https://host/path of at most 512 characters"),
    ]
    pending = list(cases)
    finals = []  # pushed cases refused for good: the device clears desired.ota for each

    def cleared():
        return len([u for u in watcher.updates if u.get("desired", {}).get("ota", 0) is None])

    def push_next():
        deadline = time.monotonic() + 20
        while cleared() < len(finals) and time.monotonic() < deadline:
            time.sleep(0.05)  # else the clear of the last one could delete this one
        label, request, reason = pending.pop(0)
        if reason != "truncated":
            finals.append(label)
        shadow.update_desired({"ota": request})

    def observe(event):
        # Each download has a boot of its own; the next request goes out once the app
        # is back and has reported the outcome of the last one.
        if event["ev"] in ("ota_refused", "ota_retry"):
            observe.outcome = True
        elif event["ev"] == "shadow_up" and observe.outcome and pending:
            observe.outcome = False
            threading.Thread(target=push_next, daemon=True).start()

    observe.outcome = True
    # After the last refusal, with room for a slow machine: five downloads, each in a
    # boot of its own, and a refusal take some 15 s on an idle one.
    visit = [{"at": 30.0, "pir": 1}, {"at": 30.5, "pir": 0}]
    result, flash = run_device(mock, target, server, release, tmp_path, visit, 32.5,
                               on_event=observe, max_reboots=12)

    reasons = [reason for _, _, reason in cases]
    outcomes = [e for e in result.events if e["ev"] in ("ota_refused", "ota_retry")]
    assert [e["reason"] for e in outcomes] == reasons
    assert outcomes[4]["ev"] == "ota_retry"  # a network failure: tried again later
    # Each boot of the app reports its sections anew: a refusal may show more than once.
    refusals = [r for r in watcher.reported if r and r["status"] == "refused"]
    assert distinct([r["reason"] for r in refusals]) == ["bad_signature"] + reasons[2:]
    assert all(r["version"] == NEW and r["previous"] == OLD for r in refusals)
    assert [r.get("retry") for r in refusals if r["reason"] == "truncated"][0] == 1
    assert result.boots == 11 and {e["version"] for e in result.named("ready")} == {OLD}
    assert matches(flash, release["old"]) == []
    assert not (flash / "ota" / "staged").exists()
    assert len(result.named("play")) == 1 and len(result.named("pause")) == 1
    doc = shadow.get()
    assert doc["state"]["reported"]["status"]["firmware"] == OLD
    assert doc["state"]["reported"]["ota"]["status"] == "refused"


def test_an_older_bundle_signed_with_the_right_key_is_refused_as_a_downgrade(
        mock, thing, server, release, tmp_path, capsys):
    """Whoever can set desired.ota (the owner, or a leaked device key: the policy lets a
    thing update its own shadow) cannot roll a board back to an older signed build."""
    target, shadow, watcher = thing
    older = release["www"] / "older.bundle"
    build(older, release["new"], NEW, release["key"], counter=1000)
    # The board has applied a bundle with counter 2000 before (its version was OLD).
    earlier = {"version": OLD, "counter": 2000, "counter_v": OLD}

    def push():
        ota_push.push(target.thing, server.url_for(older.name), older, target.endpoint_url)

    result, flash = run_device(mock, target, server, release, tmp_path, [], 4.0,
                               on_event=when("shadow_up", push),
                               files={"ota/state.json": json.dumps(earlier).encode()})

    [refused] = result.named("ota_refused")
    assert refused["reason"] == "downgrade" and refused["boot"] == 2  # after the download
    assert [e["version"] for e in result.named("ready")] == [OLD, OLD]
    assert shadow.get()["state"]["reported"]["ota"] == {
        "version": NEW, "status": "refused", "reason": "downgrade", "previous": OLD}
    assert matches(flash, release["old"]) == [] and not (flash / "ota" / "staged").exists()
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["counter"] == 2000
    capsys.readouterr()
    assert cli.main(["ota", "status", "--thing", target.thing, "--endpoint-url",
                     target.endpoint_url]) == 0
    out = capsys.readouterr().out
    assert "last update:      0.2.0 refused (downgrade)" in out
    assert "build this version again" in out


def test_an_update_that_crashes_at_boot_is_rolled_back_reported_and_not_fetched_again(
        mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    broken = release["www"] / "broken.bundle"
    build(broken, compiled(variant(release["root"], "0.3.0", crash=True)), "0.3.0",
          release["key"])

    def push():
        ota_push.push(target.thing, server.url_for(broken.name), broken, target.endpoint_url)

    visit = [{"at": 6.0, "pir": 1}, {"at": 6.5, "pir": 0}]
    result, flash = run_device(mock, target, server, release, tmp_path, visit, 9.0,
                               on_event=when("shadow_up", push))

    trial_boots = [e for e in result.named("boot") if e["mode"] == "trial"]
    assert len(trial_boots) == 3 and all(result.named("crash", boot=e["boot"])
                                         for e in trial_boots)
    assert [e["version"] for e in result.named("ready")] == [OLD, OLD]
    doc = shadow.get()
    assert doc["state"]["reported"]["ota"] == {
        "version": "0.3.0", "status": "rolled_back", "reason": "not healthy after 3 boots",
        "previous": OLD}
    assert doc["state"]["reported"]["status"]["firmware"] == OLD
    assert "ota" not in doc["state"].get("desired", {})
    assert [r["path"] for r in server.requests()].count("/broken.bundle") == 1
    assert matches(flash, release["old"]) == []
    # Back to the version it replaced, and only by this rollback: the counter stays the
    # broken bundle's, so no older bundle can follow it.
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["counter"] == json.loads(ota.split(broken.read_bytes())[0])["counter"]
    assert len(result.named("play", boot=result.boots)) == 1


def test_safe_mode_runs_only_the_shadow_link_and_an_update_fixes_the_device(
        mock, thing, server, release, tmp_path):
    target, shadow, watcher = thing
    good = release["www"] / "good.bundle"
    seen = {}

    def check_then_push():
        seen["status"] = shadow.get()["state"]["reported"]["status"]
        seen["calls"] = len(api_calls(mock))
        ota_push.push(target.thing, server.url_for(good.name), good, target.endpoint_url)

    # Ten crashes counted across resets: the next boot is a safe one.
    crashed = json.dumps({"version": OLD, "crashes": 10}).encode()
    visit = [{"at": 0.3, "pir": 1}, {"at": 0.8, "pir": 0},
             {"at": 7.0, "pir": 1}, {"at": 7.5, "pir": 0}]
    result, flash = run_device(mock, target, server, release, tmp_path, visit, 10.0,
                               on_event=when("vacant", check_then_push),
                               files={"ota/state.json": crashed})

    [first, *_] = result.named("ready")
    assert first["safe_mode"] is True and result.named("safe_mode")
    assert seen["status"]["safe_mode"] is True and seen["status"]["state"] == "safe_mode"
    assert seen["status"]["crashes"] == 10
    assert seen["calls"] == 0 and not result.named("play", boot=1)  # no Spotify at all
    assert result.named("motion", boot=1)  # motion is still seen and counted
    assert [e["version"] for e in result.named("ready")] == [OLD, NEW]
    assert result.named("ready")[-1]["safe_mode"] is False
    assert len(result.named("play", boot=result.boots)) == 1
    status = shadow.get()["state"]["reported"]["status"]
    assert status["firmware"] == NEW and status["crashes"] == 0


def test_the_pushed_request_matches_the_bundle(release, server):
    good = release["www"] / "good.bundle"
    data = good.read_bytes()
    pub = release["root"] / "keys" / "ota_pub.bin"
    request = ota_push.desired_ota(server.url_for(good.name), good, pub)
    assert request == {"version": NEW, "url": server.url_for("good.bundle"),
                       "sha256": digest(data), "size": len(data)}
    other_pub = release["root"] / "other-keys" / "ota_pub.bin"
    with pytest.raises(Exception, match="signature"):
        ota_push.desired_ota(server.url_for(good.name), good, other_pub)
