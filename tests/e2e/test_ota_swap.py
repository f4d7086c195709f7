"""The file swap at boot (device/ota/boot.py) in the simulator, running the firmware from
its flash directory: a bundle staged on flash is verified again and swapped in, and a
power cut (kill -9) at any journal phase or between two file moves leaves a device that
boots and plays music, running the old or (here always) the new version whole."""

import json

import pytest
from otakit import OLD, build, compiled, matches, stage_on_flash, variant

from conftest import api_calls
from host_tools.ota import bundles as ota
from host_tools.sim import runner as sim

NEW = "0.2.0"
VISIT = [{"at": 1.0, "pir": 1}, {"at": 1.5, "pir": 0}]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    key_path, pub_path = ota.keygen(root / "keys")
    new_files = compiled(variant(root, NEW))
    data = build(root / "new.bundle", new_files, NEW, key_path)
    broken = build(root / "broken.bundle", compiled(variant(root, "0.3.0", crash=True)),
                   "0.3.0", key_path)
    return {"pub": pub_path.read_bytes(), "bundle": data, "new": new_files, "broken": broken,
            "old": compiled(variant(root, OLD)), "root": root}


def boot_with_staged(mock, tmp_path, release, cut=None, data=None, until=3.0, version=NEW):
    flash = tmp_path / "flash"
    flash.mkdir()
    scenario = sim.validate_scenario({
        "config": {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0},
        "events": VISIT, "until": until})
    stage_on_flash(flash, data or release["bundle"])  # the installed firmware leaves it
    (flash / "ota" / "state.json").write_text(json.dumps(  # as the app notes what it staged
        {"version": OLD, "pending": {"version": version, "key": "k1"}}))
    result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash,
                     install_firmware=True, files={"ota/pub.bin": release["pub"]}, cut=cut)
    return result, flash


def assert_runs_whole(result, flash, files, version):
    ready = result.named("ready")
    assert ready and ready[-1]["version"] == version, result.console[-20:]
    assert matches(flash, files) == [], "files of another version are left"
    assert not (flash / "ota" / "journal.json").exists()
    assert not (flash / "ota" / "staged").exists()
    assert len(result.named("play")) == 1 and len(result.named("pause")) == 1
    assert result.returncode == 0


def test_a_staged_bundle_is_verified_swapped_in_and_put_on_trial(mock, tmp_path, release):
    result, flash = boot_with_staged(mock, tmp_path, release)
    assert [e["ev"] for e in result.events[:3]] == ["ota_apply", "ota_applied", "reset"]
    assert_runs_whole(result, flash, release["new"], NEW)
    # The replaced files wait in ota/previous for a rollback; the sim board stays.
    assert matches(flash / "ota" / "previous", release["old"]) == []
    assert (flash / "board" / "sim.mpy").exists()
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["version"] == NEW and state["previous"] == OLD
    assert state["trial"] is False and state["report"]["status"] == "applied"  # healthy
    assert api_calls(mock, "PUT", "/v1/me/player/play")


# Before the journal, within each phase that moves files, and at the commit.
CUTS = ["apply:verified", "apply:backup:4", "apply:install:0", "apply:install:17",
        "apply:retire", "apply:commit"]


@pytest.mark.parametrize("cut", CUTS)
def test_a_power_cut_during_the_swap_leaves_a_whole_firmware(mock, tmp_path, release, cut):
    result, flash = boot_with_staged(mock, tmp_path, release, cut=cut)
    [power_cut] = [e for e in result.named("reboot") if e["why"] == "power_cut"]
    assert result.named("cut")[0]["point"] == cut and power_cut["boot"] == 2
    if cut != "apply:verified":
        assert result.named("ota_resume"), "the journal was not resumed"
    assert_runs_whole(result, flash, release["new"], NEW)


def test_a_bundle_tampered_with_on_flash_is_refused_at_boot(mock, tmp_path, release):
    manifest_bytes, signature, contents = ota.split(release["bundle"])
    tampered = ota.encode(manifest_bytes, signature, [contents[:-1] + b"!"])
    result, flash = boot_with_staged(mock, tmp_path, release, data=tampered)
    [refused] = result.named("ota_refused")
    assert refused["reason"] == "hash_mismatch"
    assert_runs_whole(result, flash, release["old"], OLD)
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["report"]["status"] == "refused"


def test_a_version_that_crashes_at_boot_is_rolled_back_even_across_a_power_cut(
        mock, tmp_path, release):
    result, flash = boot_with_staged(mock, tmp_path, release, data=release["broken"],
                                     version="0.3.0", cut="rollback:restore:3")
    boots = [e for e in result.named("boot") if e["mode"] == "trial"]
    assert [e["boots"] for e in boots] == [1, 2, 3]  # three tries, each a crash loop
    assert all(result.named("crash", boot=e["boot"]) for e in boots)
    assert result.named("cut")[0]["point"] == "rollback:restore:3"
    [rolled] = result.named("ota_rolled_back")
    assert rolled["version"] == "0.3.0" and rolled["to"] == OLD
    assert_runs_whole(result, flash, release["old"], OLD)
    assert not (flash / "ota" / "previous").exists()
    state = json.loads((flash / "ota" / "state.json").read_text())
    assert state["version"] == OLD and state["crashes"] == 0 and not state["trial"]
    assert state["report"] == {"version": "0.3.0", "status": "rolled_back",
                               "reason": "not healthy after 3 boots", "previous": OLD}
