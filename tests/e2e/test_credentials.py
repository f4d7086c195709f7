"""Token refresh for both kinds of Spotify client, and rotated refresh tokens on flash."""

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

VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}]


def test_confidential_client_uses_basic_auth(tmp_path):
    with MockSpotify(client_id="web-app", client_secret="s3cret-value") as mock:
        scenario = sim.validate_scenario({"config": {"spotify_device": "Bathroom"},
                                          "events": VISIT, "until": 1.5})
        target = sim.SpotifyTarget(mock.url, mock.ca.cert_der, "web-app", "s3cret-value")
        result = sim.run(scenario, target)
        tokens = [r for r in mock.requests() if r["path"] == "/api/token"]
        assert tokens and all(r["auth"] == "basic" and r["status"] == 200 for r in tokens)
        assert "client_id" not in tokens[0]["body"]
        assert len(result.named("play")) == 1
        output = json.dumps(result.events) + "\n".join(result.console)
        assert "s3cret-value" not in output and mock.refresh_token not in output


def test_rotated_refresh_token_is_stored_at_once(tmp_path):
    with MockSpotify(rotate_refresh_tokens=True) as mock:
        scenario = sim.validate_scenario({"config": {"spotify_device": "Bathroom"},
                                          "events": VISIT, "until": 1.5})
        flash = tmp_path / "flash"
        flash.mkdir()
        result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), flash=flash)
        stored = json.loads((flash / "token.json").read_text())
        assert stored["refresh_token"] == mock.refresh_token != "refresh-0"
        assert len(result.named("token_rotated")) == 1
        assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 1


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
