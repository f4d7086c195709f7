"""The device's Spotify credentials: PKCE only (a client id, never a secret), the
refresh token kept across answers that carry none, rotated ones stored at once."""

import json
import os
import random
import signal
import subprocess
import time

from conftest import api_calls
from host_tools.common.devicepath import DEVICE_DIR
from host_tools.sim import runner as sim
from host_tools.sim.runtime import micropython_env, micropython_path
from host_tools.spotify.mock import MockSpotify
from host_tools.spotify.mock_accounts import SECRET

VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}]
CLOCK = "2026-11-23T12:00:00Z"
APP_SECRET = "s3cret-of-the-app-0000"


def visit(until=1.5):
    return sim.validate_scenario({"clock": CLOCK, "config": {"spotify_device": "Bathroom"},
                                  "events": VISIT, "until": until})


def token_requests(mock):
    return [r for r in mock.requests() if r["path"] == "/api/token"]


def test_the_refresh_names_the_client_and_carries_no_secret():
    """The app has a secret, as every Spotify app does; the device never sends one."""
    with MockSpotify(client_secret=APP_SECRET) as mock:
        result = sim.run(visit(), sim.SpotifyTarget(mock.url, mock.ca.cert_der))
        tokens = token_requests(mock)
        assert len(result.named("play")) == 1
    assert tokens and all(r["auth"] == "none" and r["status"] == 200 for r in tokens)
    assert tokens[0]["body"] == {"grant_type": "refresh_token", "refresh_token": "refresh-0",
                                 "client_id": "spotty-test-client"}


def test_a_secret_left_by_an_older_provisioning_leaves_the_flash(tmp_path):
    """A board provisioned when a secret went on it, updated over the air: its first
    boot deletes the secret from secrets.json. Nothing on the flash, firmware included,
    holds it afterwards, and the refresh still goes without it."""
    flash = tmp_path / "flash"
    flash.mkdir()
    with MockSpotify(client_secret=APP_SECRET) as mock:
        target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
        sim.prepare_flash(flash, visit(), target)
        provisioned = json.loads((flash / "secrets.json").read_text())
        old = dict(provisioned, spotify_client_secret=APP_SECRET)
        result = sim.run(visit(), target, flash=flash, install_firmware=True,
                         files={"secrets.json": json.dumps(old).encode()})
        tokens = token_requests(mock)
        assert len(result.named("play")) == 1
    assert len(result.named("client_secret_removed")) == 1
    assert json.loads((flash / "secrets.json").read_text()) == provisioned
    deployed = [p for p in flash.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mpy" for p in deployed)  # the firmware as a board holds it
    for path in deployed:
        assert APP_SECRET.encode() not in path.read_bytes(), path
    assert tokens and all(r["auth"] == "none" for r in tokens)
    output = json.dumps(result.events) + "\n".join(result.console)
    assert APP_SECRET not in output


def test_a_refresh_token_bound_to_the_secret_needs_a_new_login():
    """A login made with the secret (before PKCE only) gave a token Spotify refreshes
    only with the secret: the device says needs_reauth, and calls nothing else."""
    with MockSpotify(client_secret=APP_SECRET, refresh_token_flow=SECRET) as mock:
        result = sim.run(visit(), sim.SpotifyTarget(mock.url, mock.ca.cert_der))
        tokens = token_requests(mock)
        assert api_calls(mock, "PUT", "/v1/me/player/play") == []
    assert [e["error"] for e in result.named("error")][:1] == ["needs_reauth"]
    assert tokens and all(r["status"] == 400 and r["auth"] == "none" for r in tokens)


def test_an_answer_without_a_refresh_token_keeps_the_current_one(tmp_path):
    """Spotify's answer to a PKCE refresh since mid-2026 carries no refresh_token: the
    token on flash stays, through many refreshes and a reboot."""
    flash = tmp_path / "flash"
    flash.mkdir()
    # A 1 s access token: the firmware refreshes again and again.
    with MockSpotify(access_token_ttl=1) as mock:
        target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
        first = sim.run(visit(3.0), target, flash=flash)
        tokens = token_requests(mock)
        kept = (flash / "token.json").read_bytes()
        mock.clear_log()
        mock.set_playback(None, is_playing=False)  # the reboot's visit starts the music again
        again = sim.run(visit(), target, flash=flash, files={"token.json": kept})
        after_reboot = token_requests(mock)
    assert len(tokens) >= 3 and all(r["status"] == 200 for r in tokens)
    assert {r["body"]["refresh_token"] for r in tokens} == {"refresh-0"}
    assert not first.named("token_rotated")
    assert json.loads(kept) == {"refresh_token": "refresh-0", "issued_at": sim.parse_clock(CLOCK)}
    assert len(first.named("play")) == 1 and len(again.named("play")) == 1
    assert after_reboot[0]["body"]["refresh_token"] == "refresh-0"
    assert after_reboot[0]["status"] == 200


def test_a_rotated_refresh_token_is_stored_at_once_and_used_after_a_reboot(tmp_path):
    with MockSpotify(rotate_refresh_tokens=True) as mock:
        flash = tmp_path / "flash"
        flash.mkdir()
        target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
        result = sim.run(visit(), target, flash=flash)
        stored = json.loads((flash / "token.json").read_text())
        assert stored["refresh_token"] == mock.refresh_token != "refresh-0"
        assert len(result.named("token_rotated")) == 1
        assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 1
        mock.clear_log()
        mock.set_playback(None, is_playing=False)
        again = sim.run(visit(), target, flash=flash,
                        files={"token.json": (flash / "token.json").read_bytes()})
        first_refresh = token_requests(mock)[0]
    assert first_refresh["body"]["refresh_token"] == stored["refresh_token"]
    assert first_refresh["status"] == 200  # Spotify no longer takes refresh-0
    assert len(again.named("play")) == 1


def test_kill_9_during_token_rotation_leaves_a_valid_file(tmp_path):
    """Power cuts at random moments while the firmware keeps rotating its token."""
    with MockSpotify(rotate_refresh_tokens=True, access_token_ttl=1) as mock:
        # A 1 s access token makes the idle firmware refresh (and rotate) continuously.
        scenario = sim.validate_scenario({"events": [], "until": 60})
        flash = tmp_path / "flash"
        flash.mkdir()
        sim.prepare_flash(flash, scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der))
        env = micropython_env()
        env["SPOTTY_SIM"] = str(flash / sim.SIM_FILE)
        rng = random.Random(7)
        seen = set()
        for _ in range(12):
            proc = subprocess.Popen([micropython_path(), str(DEVICE_DIR / "main.py")], cwd=flash,
                                    env=env, stdout=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.5))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stored = json.loads((flash / "token.json").read_text())  # never torn
            assert set(stored) == {"refresh_token", "issued_at"}
            seen.add(stored["refresh_token"])
            # Resume from what is on flash, as a rebooted device would.
            mock.accept_refresh_token(stored["refresh_token"])
        assert len(seen) > 3  # rotations really happened between the cuts
